"""How the store talks to its database, whatever the concern: transactions and
single statements with their retry rules (tx.py), and the small SQL and row
helpers the concerns share (sql.py). Nothing here knows about accounts, jobs
or webhooks."""
