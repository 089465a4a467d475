"""Job queue benchmark: submit -> claim -> complete with no-op stages.

    .venv/bin/python bench/jobs_bench.py [--backends sqlite,postgresql] [--workers 1,4,16]
        [--jobs 2000] [--latency-rate 100] [--latency-seconds 10] [--out bench/results/jobs.json]

What runs: the real JobStore and the real services.jobs.worker.Worker, with a
pipeline that returns a tiny result at once (no stage calls of its own; the
worker still writes the output blob and records completion, claiming its next
job in the same round trip as it does in production). Workers are separate
processes, as deployed: W workers run as min(W, 4) processes of W / processes
threads each. Submitters are two separate processes calling JobStore.submit
(what the jobs API does per request).

Two measurements per backend and worker count, each on a fresh database:
- throughput: --jobs jobs submitted as fast as two submitters can, while the
  workers drain them; jobs/s = jobs / (first submit -> last completion);
- claim latency: jobs offered at a fixed --latency-rate (open loop) for
  --latency-seconds; latency = claimed (as the worker sees it) - created_at
  (stamped by the submit), p50 and p99.

Each case runs --repeat times (default 3) and the table gives the median of
the runs; every run's figures are kept in the JSON. Before each phase the
machine idles for --settle seconds (default 15): on these 2-core VMs a
minute of sustained load slows the next run by up to a half, which would
otherwise make the order of the cases decide the result.

Results go to --out as JSON and are printed as a markdown table. The machine's
load average is recorded with each row: on a shared machine, read the numbers
with it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# LIGHTBOX_BENCH_SRC: import `services` from another checkout (a before/after comparison).
SOURCE = Path(os.environ.get("LIGHTBOX_BENCH_SRC", REPO))
sys.path.insert(0, str(SOURCE))

PG_ADMIN_URL = os.environ.get("LIGHTBOX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MAX_PROCESSES = int(os.environ.get("LIGHTBOX_BENCH_MAX_PROCESSES", "4"))
SUBMITTERS = 2


# -- worker side ---------------------------------------------------------------------------


class NoopPipeline:
    def __init__(self, blobs: Any) -> None:
        self.blobs = blobs

    def run(self, job: Any, stage: Any) -> Any:
        from services.jobs.pipeline import Result

        return Result(b"x", "png", 1, 1, {"bench": "noop"}, list(job.pipeline))


class ClaimClock:
    """Wraps the store: notes when each claim returned, for the latency figures."""

    def __init__(self, store: Any, sink: list[tuple[float, float]]) -> None:
        self._store = store
        self._sink = sink

    def claim(self, worker_id: str, lease_seconds: float) -> Any:
        return self._note(self._store.claim(worker_id, lease_seconds))

    def complete_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        done, job = self._store.complete_and_claim(*args, **kwargs)
        return done, self._note(job)

    def _note(self, job: Any) -> Any:
        if job is not None:
            self._sink.append((job.created_at.timestamp(), time.time()))
        return job

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def worker_process(url: str, home: str, threads: int, ready: Any, stop: Any, out: Any) -> None:
    from services.common.blobstore import LocalBlobStore
    from services.jobs.settings import JobsSettings
    from services.jobs.store import JobStore
    from services.jobs.worker import Worker

    settings = JobsSettings(home=Path(home), database_url=url, lease_seconds=30)
    store = JobStore(url)
    claims: list[tuple[float, float]] = []
    timed = ClaimClock(store, claims)
    pipeline = NoopPipeline(LocalBlobStore(Path(home) / "blobs"))
    halt = threading.Event()
    workers = [
        threading.Thread(
            target=Worker(settings, timed, pipeline, worker_id=f"{os.getpid()}.{n}").run_forever,  # type: ignore[arg-type]
            args=(halt,),
        )
        for n in range(threads)
    ]
    store.ping()
    ready.release()
    for t in workers:
        t.start()
    stop.wait()
    halt.set()
    for t in workers:
        t.join()
    out.put(claims)
    store.close()


# -- submitter side ------------------------------------------------------------------------


def submit_process(
    url: str, account_ids: list[str], count: int, rate: float, go: Any, done: Any
) -> None:
    """Submit `count` jobs round-robin over the accounts; paced at `rate` jobs/s
    when rate > 0 (open loop)."""
    from services.jobs.store import JobStore

    store = JobStore(url)
    store.ping()
    go.wait()
    start = time.monotonic()
    for i in range(count):
        if rate > 0:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        store.submit(
            account_id=account_ids[i % len(account_ids)],
            operation="remove-background",
            params={"n": i},
            inputs={"image": "inputs/20260101/" + "b" * 22 + ".png"},
            credits=1,
            pipeline=["remove-background"],
            estimated_seconds=1,
        )
    done.put(time.monotonic())
    store.close()


# -- one run -------------------------------------------------------------------------------


def fresh_database(backend: str, scratch: Path) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{scratch / f'bench-{secrets.token_hex(4)}.db'}", None
    import psycopg

    name = f"lightbox_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", drop


def _process_cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "postgres":
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def cpu_snapshot(pool: list[Any], submitters: list[Any]) -> dict[str, float]:
    """CPU seconds used so far by the worker processes, the submitters, every
    PostgreSQL process on the machine (Linux /proc; empty elsewhere), and the
    whole machine's busy time."""
    if not os.path.exists("/proc/stat"):
        return {}
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait
    return {
        "workers": _process_cpu_seconds([p.pid for p in pool]),
        "submitters": _process_cpu_seconds([p.pid for p in submitters]),
        "postgres": _process_cpu_seconds(_postgres_pids()),
        "machine": busy,
    }


def cpu_per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, int]:
    """Microseconds of CPU per job, by who spent them, over one throughput phase.
    (PostgreSQL backends that exited during the phase are not counted.)"""
    return {key: round((after[key] - before[key]) / jobs * 1e6) for key in before if key in after}


def completed(store: Any) -> int:
    from sqlalchemy import func, select

    from services.jobs.models import jobs

    with store.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(jobs.c.status == "completed")).scalar_one()
        )


def run_case(
    scratch_root: Path,
    backend: str,
    workers: int,
    accounts: int,
    jobs: int,
    rate: float,
    seconds: float,
    settle: float,
) -> dict[str, Any]:
    from services.jobs.store import JobStore

    ctx = mp.get_context("spawn")
    processes = min(workers, MAX_PROCESSES)
    threads = workers // processes
    result: dict[str, Any] = {
        "backend": backend,
        "workers": workers,
        "worker_processes": processes,
        "threads_per_process": threads,
        "accounts": accounts,
        "load_avg_1m_before": os.getloadavg()[0],
    }
    for phase, count, pace in (("throughput", jobs, 0.0), ("latency", int(rate * seconds), rate)):
        time.sleep(settle)
        # Kept until the whole benchmark has run (see main).
        scratch = Path(tempfile.mkdtemp(dir=scratch_root))
        url, drop = fresh_database(backend, scratch)
        try:
            store = JobStore(url)
            store.migrate()
            account_ids = [
                store.create_account(
                    f"bench{n}", credits=10 * count + 10, max_concurrent_jobs=10_000
                ).id
                for n in range(accounts)
            ]
            ready, stop, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
            pool = [
                ctx.Process(
                    target=worker_process, args=(url, str(scratch), threads, ready, stop, out)
                )
                for _ in range(processes)
            ]
            for p in pool:
                p.start()
            for _ in pool:
                ready.acquire()
            go, done = ctx.Event(), ctx.Queue()
            per = [count // SUBMITTERS + (i < count % SUBMITTERS) for i in range(SUBMITTERS)]
            submitters = [
                ctx.Process(
                    target=submit_process,
                    args=(url, account_ids, n, pace / SUBMITTERS, go, done),
                )
                for n in per
            ]
            for p in submitters:
                p.start()
            time.sleep(1.0)  # let them connect
            cpu_before = cpu_snapshot(pool, submitters)
            t0 = time.monotonic()
            go.set()
            deadline = t0 + 600
            while completed(store) < count and time.monotonic() < deadline:
                time.sleep(0.05)
            elapsed = time.monotonic() - t0
            cpu = cpu_per_job(cpu_before, cpu_snapshot(pool, submitters), count)
            submit_done = max(done.get() for _ in submitters) - t0
            finished = completed(store)
            stop.set()
            claims = [c for _ in pool for c in out.get()]
            for p in [*pool, *submitters]:
                p.join()
            store.close()
        finally:
            if drop is not None:
                drop()
        if phase == "throughput":
            result.update(
                jobs=count,
                completed=finished,
                seconds=round(elapsed, 2),
                jobs_per_s=round(finished / elapsed, 1),
                submit_seconds=round(submit_done, 2),
                cpu_us_per_job=cpu,
            )
        else:
            waits = sorted((claimed - created) * 1000 for created, claimed in claims)
            result.update(
                latency_rate=rate,
                latency_jobs=len(waits),
                claim_p50_ms=round(statistics.median(waits), 1),
                claim_p99_ms=round(waits[min(len(waits) - 1, int(len(waits) * 0.99))], 1),
                claim_max_ms=round(waits[-1], 1),
            )
    result["load_avg_1m_after"] = os.getloadavg()[0]
    return result


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for a case: the median of its runs, with every run's figures."""
    row = dict(runs[0])
    for key in (
        "jobs_per_s",
        "claim_p50_ms",
        "claim_p99_ms",
        "claim_max_ms",
        "seconds",
        "submit_seconds",
    ):
        values = [r[key] for r in runs]
        row[key] = round(statistics.median(values), 1)
        row[f"{key}_runs"] = values
    cpu_runs = [r.get("cpu_us_per_job") or {} for r in runs]
    row["cpu_us_per_job"] = {
        key: round(statistics.median(c[key] for c in cpu_runs))
        for key in cpu_runs[0]
        if all(key in c for c in cpu_runs)
    }
    row["cpu_us_per_job_runs"] = cpu_runs
    row["load_avg_1m_before"] = max(r["load_avg_1m_before"] for r in runs)
    row["runs"] = len(runs)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | accounts | workers (proc x thr) | jobs/s | claim p50 ms | claim p99 ms"
        " | offered/s | CPU us/job: workers / submitters / postgres / machine | runs | load 1m |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = r.get("cpu_us_per_job") or {}
        spent = " / ".join(
            str(cpu.get(key, "-")) for key in ("workers", "submitters", "postgres", "machine")
        )
        lines.append(
            f"| {r['backend']} | {r['accounts']}"
            f" | {r['workers']} ({r['worker_processes']}x{r['threads_per_process']})"
            f" | {r['jobs_per_s']} | {r['claim_p50_ms']} | {r['claim_p99_ms']}"
            f" | {r['latency_rate']:g} | {spent} | {r['runs']} | {r['load_avg_1m_before']:.1f} |"
        )
    return "\n".join(lines)


def run_all(args: argparse.Namespace, scratch_root: Path) -> list[dict[str, Any]]:
    rows = []
    for backend in args.backends.split(","):
        for accounts in (int(a) for a in args.accounts.split(",")):
            for workers in (int(w) for w in args.workers.split(",")):
                runs = [
                    run_case(
                        scratch_root,
                        backend,
                        workers,
                        accounts,
                        args.jobs,
                        args.latency_rate,
                        args.latency_seconds,
                        args.settle,
                    )
                    for _ in range(args.repeat)
                ]
                row = median_of(runs)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument(
        "--accounts", default="1", help="comma-separated; jobs are spread over this many accounts"
    )
    parser.add_argument("--latency-rate", type=float, default=100.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "jobs.json")
    parser.add_argument("--label", default="", help="recorded with the results")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median reported)")
    parser.add_argument("--settle", type=float, default=15.0, help="idle seconds before each phase")
    args = parser.parse_args()

    # Every run's files (output blobs, SQLite databases) stay until the end. On
    # ext4, creating a file skips inodes freed in the last ~30 s (a scan that
    # grows with how many were freed), so deleting one run's thousands of
    # output blobs would slow the next run's writes: the order of the runs,
    # not the code, would set the result.
    scratch_root = Path(tempfile.mkdtemp(prefix="lightbox-jobs-bench-"))
    try:
        rows = run_all(args, scratch_root)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    report = {
        "label": args.label,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "source": str(SOURCE),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
