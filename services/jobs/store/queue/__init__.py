"""The durable job queue, the worker's side of the store.

- claim.py: taking a job (a lease) and, between two jobs, completing one and
  claiming the next in one round trip;
- leases.py: what a lease holder may do: heartbeat, record QA, complete,
  fail (retry with back-off, or fail and refund), block;
- wakeups.py: when an idle worker should try to claim again (LISTEN on
  PostgreSQL, polling on SQLite);
- notifier.py: the LISTEN connection and its wake-up bookkeeping.

Each holds its SQLite implementation and the PostgreSQL SQL function calls
(migrations 0003, 0004) that follow it.
"""
