"""Test-only worker process: the real services.jobs.worker.Worker (and, when
asked, real webhook dispatchers) with a pipeline that does no pixel work.

    python -m tests.jobs.crash_worker --db URL --home DIR --worker-id ID [options]

It prints "ready" once its store is open, waits for --start-file if given,
then runs until SIGTERM (or dies by SIGKILL, which is the point).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from services.common.blobstore import LocalBlobStore
from services.jobs.settings import JobsSettings
from services.jobs.store import JobRecord, JobStore
from services.jobs.webhooks import Dispatcher, JobBodyRenderer
from services.jobs.worker import Worker
from tests.jobs.fakes import FakePipeline


class _ClaimLog:
    """Appends one JSON line per successful claim, as the worker saw it."""

    def __init__(self, store: JobStore, path: Path) -> None:
        self._store = store
        self._file = path.open("a", buffering=1)
        self._lock = threading.Lock()

    def claim(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        return self._log(worker_id, self._store.claim(worker_id, lease_seconds))

    def complete_and_claim(
        self, job_id: str, worker_id: str, **kwargs: Any
    ) -> tuple[bool, JobRecord | None]:
        done, job = self._store.complete_and_claim(job_id, worker_id, **kwargs)
        return done, self._log(worker_id, job)

    def _log(self, worker_id: str, job: JobRecord | None) -> JobRecord | None:
        if job is not None:
            line = {
                "job": job.id,
                "worker": worker_id,
                "attempt": job.attempts,
                "at": time.time(),
                "lease_expires_at": job.lease_expires_at.timestamp() if job.lease_expires_at else 0,
            }
            with self._lock:
                self._file.write(json.dumps(line) + "\n")
        return job

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


REPO = Path(__file__).resolve().parents[2]


def spawn(db_url: str, home: Path, worker_id: str, *options: str) -> subprocess.Popen[bytes]:
    """Start one worker process; its output goes to home/<worker_id>.log."""
    log = (home / f"{worker_id}.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.jobs.crash_worker",
            "--db",
            db_url,
            "--home",
            str(home),
            "--worker-id",
            worker_id,
            *options,
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument("--stage-ms", default="0,0", help="low,high sleep per stage")
    parser.add_argument("--webhooks", type=int, default=0, help="dispatcher threads")
    parser.add_argument("--claims-log", type=Path)
    parser.add_argument("--start-file", type=Path)
    args = parser.parse_args()

    settings = JobsSettings(
        home=args.home,
        database_url=args.db,
        blob_dir=args.home / "blobs",
        lease_seconds=args.lease,
        heartbeat_seconds=args.heartbeat,
        retry_base_seconds=0.1,
    )
    store = JobStore(args.db)
    low, high = (float(x) / 1000 for x in args.stage_ms.split(","))
    pipeline = FakePipeline(
        LocalBlobStore(settings.blob_root),
        stage_seconds=(low, high),
        stages=("decode", "matte", "compose"),
    )
    worker_store = _ClaimLog(store, args.claims_log) if args.claims_log else store
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [
        threading.Thread(
            target=Worker(
                settings,
                worker_store,  # type: ignore[arg-type]
                pipeline,  # type: ignore[arg-type]
                worker_id=f"{args.worker_id}.{n}" if args.threads > 1 else args.worker_id,
            ).run_forever,
            args=(stop,),
        )
        for n in range(args.threads)
    ]
    render = JobBodyRenderer("http://lightbox.test", "crash-test-link-secret")
    for n in range(args.webhooks):
        dispatcher = Dispatcher(
            store,
            render,
            dispatcher_id=f"{args.worker_id}.wh{n}",
            timeout_s=1.0,
            retry_base_s=0.2,
            retry_max_s=1.0,
            poll_s=0.1,
            allow_loopback=True,
            lease_s=2.0,
        )
        threads.append(threading.Thread(target=dispatcher.run_forever, args=(stop,), daemon=True))
    print("ready", flush=True)
    while args.start_file and not args.start_file.exists() and not stop.is_set():
        time.sleep(0.01)
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(timeout=10)
    store.close()


if __name__ == "__main__":
    main()
