"""The PostgreSQL wake-up bookkeeping: one waiter per notification, and no
wake-up owed for a notification that a later, empty claim already answered."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from services.jobs.store import JobStore
from services.jobs.store.queue.notifier import _Notifier

from .test_store import submit


def _notifier() -> _Notifier:
    # Not started: the tests play the LISTEN thread by calling _wake.
    return _Notifier("postgresql://unused")


def test_notifications_that_arrived_while_busy_are_owed_one_each() -> None:
    notifier = _notifier()
    for _ in range(3):
        notifier._wake()
    assert [notifier.take(None) for _ in range(4)] == [True, True, True, False]


def test_a_claim_that_began_after_them_settles_them() -> None:
    notifier = _notifier()
    for _ in range(3):
        notifier._wake()
    mark = notifier.mark()  # a claim begins, and finds nothing
    assert notifier.take(mark) is False
    # ... for every thread: they were one job each, and it is gone.
    assert notifier.take(None) is False
    notifier._wake()  # news the claim could not have seen
    assert notifier.take(mark) is True
    assert notifier.take(mark) is False


def test_one_waiter_per_notification() -> None:
    notifier = _notifier()
    woken: list[float] = []
    start = time.monotonic()

    def wait() -> None:
        notifier.wait(2.0, notifier.mark())
        woken.append(time.monotonic() - start)

    waiters = [threading.Thread(target=wait, daemon=True) for _ in range(2)]
    for t in waiters:
        t.start()
    time.sleep(0.2)  # both are waiting
    notifier._wake()
    for t in waiters:
        t.join(10)
    early, late = sorted(woken)
    assert early < 1.0 <= late  # one returned at once, the other at its timeout


def test_a_reconnection_wakes_everyone_whose_claim_came_before_it() -> None:
    notifier = _notifier()
    before = notifier.mark()
    returned = threading.Event()
    waiter = threading.Thread(
        target=lambda: (notifier.wait(60, before), returned.set()), daemon=True
    )
    waiter.start()
    time.sleep(0.1)
    notifier._wake(everyone=True)  # what the LISTEN thread does after reconnecting
    assert returned.wait(10)
    # A thread still busy with a claim from before the gap claims again too,
    assert notifier.take(before) is True
    # but not one whose claim began after it.
    assert notifier.take(notifier.mark()) is False


@pytest.mark.postgres
def test_a_burst_of_submits_during_busy_work_costs_no_empty_claims(
    store_pg_url: str,
) -> None:
    """Five jobs are announced while this store's worker is busy and another
    worker takes them all; the worker's next claim finds nothing, and its wait
    does not return at once for any of the five notifications."""
    busy, other = JobStore(store_pg_url), JobStore(store_pg_url)
    try:
        account = busy.create_account("acme", credits=100, max_concurrent_jobs=100)
        busy.wait_for_work(0.01)  # starts this store's LISTEN connection
        notifier: Any = busy._notifier
        for _ in range(5):
            submit(other, account, credits=1)
        for _ in range(200):  # until the LISTEN thread has read all five
            if notifier.mark()[1] == 5:
                break
            time.sleep(0.025)
        assert notifier.mark()[1] == 5
        while other.claim("other", 30) is not None:
            pass
        assert busy.claim("w1", 30) is None
        started = time.monotonic()
        busy.wait_for_work(0.5)
        assert time.monotonic() - started >= 0.4
        # News after that claim still wakes it at once.
        returned = threading.Event()
        waiter = threading.Thread(
            target=lambda: (busy.wait_for_work(600), returned.set()), daemon=True
        )
        waiter.start()
        submit(other, account, credits=1)
        assert returned.wait(60)
        assert busy.claim("w1", 30) is not None
    finally:
        busy.close()
        other.close()


@pytest.mark.postgres
def test_the_look_ahead_never_hides_a_job_from_a_claim(store_pg_url: str) -> None:
    """An idle worker's look-ahead reads without locking: a claim running at
    the same moment still gets the job. (Probes that locked their row made the
    claim skip it and wait for the next notification.)"""
    store = JobStore(store_pg_url)
    try:
        account = store.create_account("acme", credits=100)
        job = submit(store, account, credits=1)[0]
        dsn = store.engine.url.set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(dsn) as looking:  # a transaction left open after the look
            row = looking.execute("SELECT claimable FROM lightbox_next_due(now())").fetchone()
            assert row == (True,)
            claimed = store.claim("w1", 30)
            assert claimed is not None and claimed.id == job.id
            looking.rollback()
    finally:
        store.close()
