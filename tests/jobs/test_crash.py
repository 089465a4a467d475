"""Crashes and database faults, with real worker processes (the real Worker and
webhook dispatchers, a pipeline that only sleeps): workers SIGKILLed mid-stage
and restarted, and (PostgreSQL) every database connection of the services
terminated mid-run. Every job completes exactly once, every credit adds up,
every webhook arrives."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from services.common.blobstore import LocalBlobStore
from services.common.errors import ServiceUnavailable
from services.jobs.models import job_events, jobs, ledger, webhooks
from services.jobs.retention import sweep_orphans
from services.jobs.store import AccountRecord, JobStore
from tests.jobs.crash_worker import spawn
from tests.jobs.webhook_receiver import Receiver

PRICE = 3.0
LEASE = "2"


class Fleet:
    """Worker processes by slot; a killed one is replaced under a new id."""

    def __init__(self, db_url: str, home: Path, options: list[str]) -> None:
        self.db_url, self.home, self.options = db_url, home, options
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.generation = 0

    def start(self, count: int) -> None:
        for _ in range(count):
            self._spawn()

    def _spawn(self) -> str:
        self.generation += 1
        worker_id = f"w{self.generation}"
        self.procs[worker_id] = spawn(self.db_url, self.home, worker_id, *self.options)
        return worker_id

    def kill_and_replace(self, worker_id: str) -> None:
        proc = self.procs.pop(worker_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self._spawn()

    def alive(self) -> list[str]:
        return [w for w, p in self.procs.items() if p.poll() is None]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted(self.home.glob("w*.log"))
        )


@pytest.fixture
def fleet_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "blobs").mkdir(parents=True)
    return home


def _fill(store: JobStore, n: int, webhook_url: str) -> tuple[AccountRecord, list[str]]:
    account = store.create_account("crash", credits=n * PRICE + 1, max_concurrent_jobs=n)
    ids = []
    for i in range(n):
        job, _ = store.submit(
            account_id=account.id,
            operation="remove-background",
            params={"n": i},
            inputs={"image": f"inputs/20260101/{i:022d}.png"},
            credits=PRICE,
            pipeline=["remove-background"],
            estimated_seconds=1,
            # Every fifth job also has a webhook, delivered by the workers' dispatchers.
            webhook_url=webhook_url if i % 5 == 0 else None,
            max_attempts=20,
        )
        ids.append(job.id)
    return account, ids


def _statuses(store: JobStore) -> Counter[str]:
    with store.engine.connect() as conn:
        return Counter(
            dict(conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all())
        )


def _webhooks_settled(store: JobStore) -> bool:
    with store.engine.connect() as conn:
        return (
            conn.execute(
                select(func.count()).select_from(webhooks).where(webhooks.c.status != "delivered")
            ).scalar_one()
            == 0
        )


def _assert_exactly_once(
    store: JobStore,
    account: AccountRecord,
    ids: list[str],
    blobs: LocalBlobStore,
    receiver: Receiver,
) -> None:
    with store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(jobs))}
        events = list(conn.execute(select(job_events).order_by(job_events.c.id)))
        money = list(conn.execute(select(ledger)))
        box = {r.job_id: r for r in conn.execute(select(webhooks))}
    assert {rows[i].status for i in ids} == {"completed"}
    # One completed transition per job, one claim per attempt.
    assert Counter(e.job_id for e in events if e.status == "completed") == {i: 1 for i in ids}
    claims = Counter(e.job_id for e in events if e.status == "processing")
    assert all(claims[i] == rows[i].attempts for i in ids)
    # One output blob per job: its own, stored, with its content. Blobs of
    # killed attempts are orphans nobody refers to, and the sweep removes them.
    keys = [rows[i].output_key for i in ids]
    assert len(set(keys)) == len(ids)
    assert all(blobs.get(rows[i].output_key) == f"result of {i}".encode() for i in ids)
    stored = {key for key, _ in blobs.list("outputs")}
    orphans = stored - set(keys)
    assert sweep_orphans(store, blobs, min_age_seconds=0) == len(orphans)
    assert {key for key, _ in blobs.list("outputs")} == set(keys)
    # The ledger: one charge per job, no refund, balance = grants - charges.
    charges = Counter(r.job_id for r in money if r.reason == "charge")
    assert charges == {i: 1 for i in ids}
    assert [r for r in money if r.reason == "refund"] == []
    grants = sum(r.delta_milli for r in money if r.reason == "grant") / 1000
    assert store.balance(account.id) == pytest.approx(grants - PRICE * len(ids))
    # Webhooks: every one delivered, each POST signed; a dispatcher killed
    # mid-send may cause a repeat (at least once), never a loss.
    hooked = {i for i in ids if rows[i].webhook_url}
    assert set(box) == hooked and {b.status for b in box.values()} == {"delivered"}
    assert {r.job_id for r in receiver.received} == hooked
    assert all(r.verified and r.json()["status"] == "completed" for r in receiver.received)


def _wait_ready(home: Path, fleet: Fleet, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = [
            w for w in fleet.procs if "ready" in (home / f"{w}.log").read_text(errors="replace")
        ]
        if len(ready) == len(fleet.procs):
            return
        time.sleep(0.05)
    raise AssertionError(f"workers did not start:\n{fleet.logs()}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(secret="")
    yield r
    r.close()


def test_sigkilled_workers_complete_every_job_exactly_once(
    db_url: str, fleet_home: Path, receiver: Receiver
) -> None:
    store = JobStore(db_url)
    account, ids = _fill(store, 50, receiver.url)
    receiver.secret = account.webhook_secret
    fleet = Fleet(db_url, fleet_home, ["--lease", LEASE, "--stage-ms", "20,70", "--webhooks", "1"])
    rng = random.Random(4)
    kills: list[tuple[str, str]] = []
    try:
        fleet.start(4)
        _wait_ready(fleet_home, fleet)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if _statuses(store)["completed"] == len(ids) and _webhooks_settled(store):
                break
            time.sleep(rng.uniform(0.1, 0.3))
            if len(kills) >= 10:
                continue
            # A worker in the middle of a stage, killed at a random moment of it.
            with store.engine.connect() as conn:
                busy = conn.execute(
                    select(jobs.c.lease_owner, jobs.c.stage).where(
                        jobs.c.status == "processing", jobs.c.stage.is_not(None)
                    )
                ).all()
            busy = [(w, stage) for w, stage in busy if w in fleet.alive()]
            if busy:
                victim, stage = rng.choice(busy)
                time.sleep(rng.uniform(0, 0.03))
                fleet.kill_and_replace(victim)
                kills.append((victim, stage))
        else:
            raise AssertionError(f"not finished: {_statuses(store)}\n{fleet.logs()}")
    finally:
        fleet.stop()
    assert len(kills) >= 5, kills
    with store.engine.connect() as conn:
        taken_over = conn.execute(
            select(func.count()).where(job_events.c.detail == "lease_expired")
        ).scalar_one()
    assert taken_over >= 3  # killed mid-job: their jobs were resumed by others
    _assert_exactly_once(store, account, ids, LocalBlobStore(fleet_home / "blobs"), receiver)
    store.close()


@pytest.mark.postgres
def test_workers_survive_terminated_database_connections(
    store_pg_url: str, fleet_home: Path, receiver: Receiver
) -> None:
    store = JobStore(store_pg_url)
    account, ids = _fill(store, 60, receiver.url)
    receiver.secret = account.webhook_secret
    fleet = Fleet(
        store_pg_url, fleet_home, ["--lease", LEASE, "--stage-ms", "10,40", "--webhooks", "1"]
    )
    conninfo = make_url(store_pg_url).set(drivername="postgresql").render_as_string(False)
    terminated = 0
    try:
        fleet.start(3)
        _wait_ready(fleet_home, fleet)
        with psycopg.connect(conninfo, autocommit=True) as admin:
            deadline = time.monotonic() + 120
            rounds = 0
            while time.monotonic() < deadline:
                try:
                    done = _statuses(store)["completed"] == len(ids) and _webhooks_settled(store)
                except (ServiceUnavailable, OperationalError):
                    # This observer's own pooled connections are terminated too.
                    done = False
                if done:
                    break
                time.sleep(0.3)
                if rounds < 6:
                    rounds += 1
                    terminated += len(
                        admin.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        ).fetchall()
                    )
            else:
                raise AssertionError(f"not finished: {_statuses(store)}\n{fleet.logs()}")
        # The same processes reconnected: none died.
        assert sorted(fleet.alive()) == ["w1", "w2", "w3"], fleet.logs()
    finally:
        fleet.stop()
    assert terminated >= 10  # the services held connections each round, and lost them
    _assert_exactly_once(store, account, ids, LocalBlobStore(fleet_home / "blobs"), receiver)
    store.close()
