"""When an idle worker should try to claim again.

Owns: `wait_for_work`: on PostgreSQL it sleeps on the store's notifier
(started on first use) until a NOTIFY, the next retry or lease expiry
(lightbox_next_due, migration 0004), or a short recheck of work that looked
runnable; on SQLite it polls `_claimable` with a growing sleep, which the
doorbell (queue/doorbell.py) cuts short when a commit makes work runnable. Must not:
claim or change anything (it only reads); return later than the caller's
timeout.
"""

from __future__ import annotations

import logging
import random
import time

from sqlalchemy import func, select

from services.common.errors import ServiceUnavailable
from services.jobs.models import jobs
from services.jobs.store.plumbing.sql import _as_utc, _status_is
from services.jobs.store.plumbing.tx import _retry_once, _Retryable
from services.jobs.store.queue.claim import ClaimMixin
from services.jobs.store.queue.notifier import (
    POLL_FIRST_SLEEP_SECONDS,
    POLL_MAX_SLEEP_SECONDS,
    _Notifier,
)
from services.jobs.store.records import STATUS_PROCESSING, STATUS_QUEUED

log = logging.getLogger(__name__)

# PostgreSQL: how soon a waiter looks again at work that looked runnable but
# that its claim did not get (another claim was taking it).
CLAIMABLE_RECHECK_SECONDS = 0.05


class WakeupsMixin(ClaimMixin):
    """Waiting for work (see the module docstring)."""

    def wait_for_work(self, timeout: float) -> None:
        """Return when a claim may succeed, or after `timeout` seconds.

        PostgreSQL: sleeps on LISTEN until a submit, requeue or freed slot
        NOTIFYs, or until the next scheduled retry or lease expiry is due.
        SQLite: polls for claimable work with a growing sleep (0.05 s up to 1 s),
        woken early by the doorbell a submit or requeue rings.
        Either may return early; callers loop on claim().
        """
        if timeout <= 0:
            return
        deadline = time.monotonic() + timeout
        if self._dialect == "postgresql":
            self._wait_postgres(deadline)
        else:
            self._wait_polling(deadline, timeout)

    def _seconds_until_due(self) -> tuple[bool, float | None]:
        """(claimable now, seconds until the next retry or lease expiry falls due)."""
        if self._dialect == "postgresql":
            return self._seconds_until_due_postgres()
        with self._tx(write=False) as conn:
            now = self._clock()
            runnable = self._claimable(conn, now)
            # Two index lookups rather than one filtered aggregate, which
            # would read the whole table.
            next_due = (
                conn.execute(
                    select(func.min(jobs.c.run_after)).where(
                        _status_is(jobs, STATUS_QUEUED), jobs.c.run_after > now
                    )
                ).scalar_one(),
                conn.execute(
                    select(func.min(jobs.c.lease_expires_at)).where(
                        _status_is(jobs, STATUS_PROCESSING), jobs.c.lease_expires_at > now
                    )
                ).scalar_one(),
            )
        due = [moment for moment in next_due if moment is not None]
        if not due:
            return runnable, None
        # Naive values can come back from an aggregate on SQLite, which loses the column type.
        soonest = min(_as_utc(moment) for moment in due)
        return runnable, max(0.0, (soonest - now).total_seconds())

    @_retry_once
    def _seconds_until_due_postgres(self) -> tuple[bool, float | None]:
        """`_seconds_until_due` as one call of lightbox_next_due (migration 0004)."""
        now = self._clock()
        with self._statement(retry_safe=True) as driver:
            row = driver.execute(_NEXT_DUE_PG, (now,), prepare=True).fetchone()
        assert row is not None
        claimable, due = row
        if due is None:
            return bool(claimable), None
        return bool(claimable), max(0.0, (due - now).total_seconds())

    def _wait_polling(self, deadline: float, timeout: float) -> None:
        sleep = min(POLL_FIRST_SLEEP_SECONDS, timeout)
        cap = min(POLL_MAX_SLEEP_SECONDS, timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._doorbell is not None:
                # A ring (a commit somewhere made work runnable) ends the sleep early.
                self._doorbell.wait(min(sleep, remaining))
            else:
                time.sleep(min(sleep, remaining))
            sleep = min(sleep * 2, cap)
            try:
                with self._tx(write=False) as conn:
                    claimable = self._claimable(conn, self._clock())
            except (_Retryable, ServiceUnavailable) as exc:
                log.warning("wait_for_work: %s", exc)
                continue
            if claimable:
                return

    def _wait_postgres(self, deadline: float) -> None:
        notifier, fresh = self._listening()
        if fresh:
            # Notifications sent before LISTEN began are lost; the caller claims again.
            return
        mark = getattr(self._claims, "mark", None)
        # A notification this thread's last claim could not have seen means work may exist.
        if notifier.take(mark):
            return
        try:
            claimable, due_in = self._seconds_until_due()
        except (_Retryable, ServiceUnavailable) as exc:
            log.warning("wait_for_work: %s", exc)
            claimable, due_in = False, POLL_MAX_SLEEP_SECONDS
        wait = deadline - time.monotonic()
        if claimable:
            # The caller's claim just found nothing, yet a job looks runnable:
            # another claim is taking it, it fell due a moment ago, or its
            # account is at its cap (an expired lease). Look again soon, not at
            # once: never a tight loop.
            wait = min(wait, CLAIMABLE_RECHECK_SECONDS * random.uniform(0.5, 1.5))
        elif due_in is not None:
            wait = min(wait, due_in)
        if wait > 0:
            notifier.wait(wait, mark)

    def _listening(self) -> tuple[_Notifier, bool]:
        """The store's notifier, started on first use (and whether it was just started)."""
        with self._notifier_lock:
            if self._notifier is not None:
                return self._notifier, False
            # A connection of its own, outside the pool: it is held for the life
            # of the store and must not take a slot meant for transactions.
            conninfo = self._engine.url.set(drivername="postgresql").render_as_string(
                hide_password=False
            )
            self._notifier = _Notifier(conninfo)
            self._notifier.start()
            return self._notifier, True


_NEXT_DUE_PG = "SELECT claimable, next_due FROM lightbox_next_due(%s)"
