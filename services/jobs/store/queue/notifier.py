"""PostgreSQL's LISTEN side of the queue: one connection per store, read by a
daemon thread, turning NOTIFYs into counted wake-ups.

Owns: the `lightbox_jobs` channel name and `_Notifier` (connect, reconnect,
count notifications, hand one to each waiter, settle those a claim made
moot). Must not: query jobs or decide whether work exists (wakeups.py
does); block anything but its own thread and the waiters that asked.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "lightbox_jobs"

# wait_for_work's polling on SQLite starts soon and backs off to this (see
# queue/wakeups.py); the LISTEN connection's reconnects back off the same way.
POLL_FIRST_SLEEP_SECONDS = 0.05
POLL_MAX_SLEEP_SECONDS = 1.0


class _Notifier:
    """One LISTEN connection per store, read by a daemon thread. Each
    notification wakes one waiting thread, not all of them: a submit must not
    send every idle worker thread of a process racing for the one new job.

    Wake-ups are counted, not queued: notifications that arrived while every
    thread was busy are owed to the next threads that wait, except those a
    claim has made moot. A claim that began after a notification arrived saw
    the job it announced; if it came back empty, that job is taken (or not
    yet due, which the waiter's look-ahead covers). So a waiter passes the
    mark() taken when its last claim began, and notifications up to it are
    settled for everyone. Without that, a burst of submits during busy work
    left dozens of wake-ups owed, each one an empty claim later.

    A (re)connection starts a new epoch, which wakes every waiter and every
    thread whose last claim began in an earlier epoch: notifications may have
    been missed while the connection was down.
    """

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._cond = threading.Condition()
        self._epoch = 0
        self._received = 0  # notifications read in this epoch
        self._settled = 0  # of those, handed to a waiter or made moot by a claim
        self._stopped = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._read, name="listen", daemon=True)

    def start(self) -> None:
        # LISTEN in the caller's thread: a notification sent once start()
        # returned is not missed.
        self._connect()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._close()
        with self._cond:
            self._epoch += 1
            self._cond.notify_all()

    def mark(self) -> tuple[int, int]:
        """(epoch, notifications received so far): taken when a claim begins."""
        with self._cond:
            return self._epoch, self._received

    def take(self, mark: tuple[int, int] | None) -> bool:
        """Whether a wake-up is owed to a thread whose last claim began at
        `mark` (None: it never claimed); consumes it."""
        with self._cond:
            return self._take(mark)

    def wait(self, timeout: float, mark: tuple[int, int] | None) -> None:
        """Until a wake-up is owed (one waiter per notification), a new epoch,
        or the timeout."""
        with self._cond:
            if self._take(mark):
                return
            epoch = self._epoch
            self._cond.wait_for(
                lambda: self._epoch != epoch or self._received > self._settled, timeout
            )
            if self._epoch == epoch and self._received > self._settled:
                self._settled += 1

    def _take(self, mark: tuple[int, int] | None) -> bool:
        if mark is not None:
            epoch, seen = mark
            if epoch != self._epoch:
                return True
            self._settled = max(self._settled, seen)
        if self._received > self._settled:
            self._settled += 1
            return True
        return False

    def _wake(self, everyone: bool = False) -> None:
        with self._cond:
            if everyone:
                self._epoch += 1
                self._received = self._settled = 0
                self._cond.notify_all()
            else:
                self._received += 1
                self._cond.notify(1)

    def _connect(self) -> bool:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error as exc:
            log.warning("wait_for_work: cannot LISTEN (%s)", exc)
            return False
        self._conn = conn
        return True

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it may already be broken
                pass

    def _read(self) -> None:
        delay = POLL_FIRST_SLEEP_SECONDS
        while not self._stopped.is_set():
            conn = self._conn
            if conn is None or conn.closed:
                if not self._connect():
                    self._stopped.wait(delay)
                    delay = min(delay * 2, POLL_MAX_SLEEP_SECONDS)
                    continue
                delay = POLL_FIRST_SLEEP_SECONDS
                self._wake(everyone=True)
                continue
            try:
                for _ in conn.notifies(timeout=POLL_MAX_SLEEP_SECONDS):
                    self._wake()
            except psycopg.Error as exc:
                if self._stopped.is_set():
                    return
                log.warning("wait_for_work: LISTEN connection lost (%s); reconnecting", exc)
                self._close()
