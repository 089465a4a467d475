"""Eight worker processes race on 1,000 queued jobs (SQLite and PostgreSQL):
no job is claimed while another worker's lease on it is alive. Claims are
recorded twice: by each worker as it sees them (a log line with its clock)
and by the store (job_events, written in the claiming transaction)."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

from sqlalchemy import func, select

from services.jobs.models import job_events, jobs
from services.jobs.store import JobStore
from tests.jobs.crash_worker import spawn

JOBS = 1000
WORKERS = 8


def test_eight_workers_never_share_a_live_lease(db_url: str, tmp_path: Path) -> None:
    store = JobStore(db_url)
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
    home = tmp_path / "home"
    (home / "blobs").mkdir(parents=True)
    start = home / "go"
    procs = [
        spawn(
            db_url,
            home,
            f"racer{n}",
            "--lease",
            "30",
            "--claims-log",
            str(home / f"racer{n}.claims"),
            "--start-file",
            str(start),
        )
        for n in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while (
            sum("ready" in (home / f"racer{n}.log").read_text() for n in range(WORKERS)) < WORKERS
        ):
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.05)
        start.touch()  # all at once
        deadline = time.monotonic() + 120
        while True:
            with store.engine.connect() as conn:
                done = conn.execute(
                    select(func.count()).where(jobs.c.status == "completed")
                ).scalar_one()
            if done == JOBS:
                break
            assert time.monotonic() < deadline, f"only {done} of {JOBS} completed"
            time.sleep(0.2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)

    seen = [
        json.loads(line)
        for n in range(WORKERS)
        for line in (home / f"racer{n}.claims").read_text().splitlines()
    ]
    with store.engine.connect() as conn:
        recorded = list(conn.execute(select(job_events).where(job_events.c.status == "processing")))
    store.close()

    # Every job was claimed, and no job twice while a lease on it was alive:
    # a later claim of a job must start after the earlier claim's lease ended.
    by_job: dict[str, list[dict]] = defaultdict(list)
    for claim in seen:
        by_job[claim["job"]].append(claim)
    assert set(by_job) == ids
    overlaps = []
    for claims in by_job.values():
        claims.sort(key=lambda c: c["at"])
        for earlier, later in zip(claims, claims[1:], strict=False):
            if later["at"] < earlier["lease_expires_at"]:
                overlaps.append((earlier, later))
    assert overlaps == []
    # With 30 s leases and no crash, that means exactly one claim each, and
    # the store recorded the same claims the workers saw.
    assert Counter(c["job"] for c in seen) == {i: 1 for i in ids}
    assert Counter((e.job_id, e.worker) for e in recorded) == Counter(
        (c["job"], c["worker"]) for c in seen
    )
    # They really raced: every worker got a share, and their claims interleave. The
    # share is not even: on SQLite under a loaded 2-core `make test` one of the eight
    # took only 12 of 1,000 (the bound was 15, once); what matters is that each won some.
    per_worker = Counter(c["worker"] for c in seen)
    assert len(per_worker) == WORKERS and min(per_worker.values()) >= JOBS // (WORKERS * 40)
    # Interleave, counted as hand-overs in time order: workers taking turns in
    # blocks would make a handful; racing ones made ~360 on SQLite (which
    # serialises claims) and ~1,000 on PostgreSQL for 1,000 jobs here. (Not
    # "every worker's first claim before any worker's last": one worker process
    # descheduled for a moment under a loaded suite broke that once.)
    in_order = [c["worker"] for c in sorted(seen, key=lambda c: c["at"])]
    handovers = sum(a != b for a, b in zip(in_order, in_order[1:], strict=False))
    assert handovers >= JOBS // 20, handovers
