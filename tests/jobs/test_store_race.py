"""Concurrent claimers never share a job while its lease is alive: threads on
both backends, and on SQLite also separate processes (each with its own
connection pool, as embedded workers run)."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from services.jobs.store import JobStore

JOBS = 200
THREADS = 4
PROCESSES = 3
# Far longer than the test: every claim stays alive, so a second claim of any
# job would be a double claim.
LEASE_SECONDS = 3600.0


def _fill_queue(store: JobStore) -> set[str]:
    account = store.create_account("race", credits=JOBS, max_concurrent_jobs=JOBS)
    ids = set()
    for i in range(JOBS):
        job, _ = store.submit(
            account_id=account.id,
            operation="remove-background",
            params={"n": i},
            inputs={"image": f"in/{i}"},
            credits=1,
            pipeline=["remove-background"],
            estimated_seconds=1,
        )
        ids.add(job.id)
    return ids


def _claim_until_empty(store: JobStore, worker_id: str) -> list[str]:
    claimed = []
    while (job := store.claim(worker_id, LEASE_SECONDS)) is not None:
        assert job.lease_owner == worker_id and job.attempts == 1
        claimed.append(job.id)
    return claimed


def _claim_in_process(url: str, worker_id: str, start: Any, results: Any) -> None:
    store = JobStore(url)
    try:
        start.wait()
        results.put((worker_id, _claim_until_empty(store, worker_id)))
    finally:
        store.close()


def _claim_in_threads(store: JobStore, start: threading.Barrier | Any) -> dict[str, list[str]]:
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def run(worker_id: str) -> None:
        start.wait()
        try:
            results[worker_id] = _claim_until_empty(store, worker_id)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"thread-{i}",)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def _assert_each_job_claimed_once(queued: set[str], claims: dict[str, list[str]]) -> None:
    counts = Counter(job_id for ids in claims.values() for job_id in ids)
    assert [job_id for job_id, n in counts.items() if n > 1] == []
    assert set(counts) == queued


def test_threads_never_claim_a_job_twice(db_url: str) -> None:
    store = JobStore(db_url)
    try:
        queued = _fill_queue(store)
        claims = _claim_in_threads(store, threading.Barrier(THREADS))
        _assert_each_job_claimed_once(queued, claims)
        assert store.queue_depth() == 0
    finally:
        store.close()


def test_processes_and_threads_never_claim_a_job_twice_on_sqlite(tmp_path: Path) -> None:
    # PostgreSQL's guarantee (SKIP LOCKED) does not depend on the client process;
    # SQLite's rests on file locking between processes, so test that here.
    db_url = f"sqlite:///{tmp_path / 'race.db'}"
    store = JobStore(db_url)
    store.migrate()
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES + THREADS)
    results = context.Queue()
    processes = [
        context.Process(target=_claim_in_process, args=(db_url, f"process-{i}", start, results))
        for i in range(PROCESSES)
    ]
    try:
        queued = _fill_queue(store)
        for p in processes:
            p.start()
        claims = _claim_in_threads(store, start)
        for _ in processes:
            worker_id, ids = results.get(timeout=120)
            claims[worker_id] = ids
        for p in processes:
            p.join(timeout=60)
        assert [p.exitcode for p in processes] == [0] * PROCESSES
        _assert_each_job_claimed_once(queued, claims)
    finally:
        for p in processes:
            if p.is_alive():
                p.kill()
        store.close()


def test_concurrent_claims_respect_each_accounts_cap(db_url: str) -> None:
    store = JobStore(db_url)
    cap = 2
    try:
        accounts = [
            store.create_account(f"capped-{i}", credits=100, max_concurrent_jobs=cap)
            for i in range(3)
        ]
        for _ in range(6):
            for account in accounts:
                store.submit(
                    account_id=account.id,
                    operation="upscale",
                    params={},
                    inputs={"image": "in/x"},
                    credits=1,
                    pipeline=["upscale"],
                    estimated_seconds=1,
                )
        claims = _claim_in_threads(store, threading.Barrier(THREADS))
        claimed = [store.get(job_id) for ids in claims.values() for job_id in ids]
        per_account = Counter(job.account_id for job in claimed)
        assert per_account == {account.id: cap for account in accounts}
        assert store.queue_depth() == 3 * 6 - 3 * cap
    finally:
        store.close()
