"""The worker: claims queued jobs under a lease, keeps the lease alive while a
stage runs, and records the outcome. A worker that dies mid-job simply stops
heartbeating; the lease expires and another worker takes the job over."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid

from lightbox.v1 import compositor_pb2_grpc

from services.common.blobstore import LocalBlobStore
from services.common.grpcutil import channel
from services.common.logs import request_id, setup_logging
from services.jobs import metrics
from services.jobs.batches import start_batch_thread
from services.jobs.engines import TritonEngines
from services.jobs.pipeline import Pipeline, elapsed_ms, is_transient
from services.jobs.retention import output_ttl_for, start_retention_thread
from services.jobs.settings import JobsSettings
from services.jobs.store import JobRecord, JobStore
from services.jobs.webhooks import start_webhook_threads

log = logging.getLogger(__name__)


class _Lease:
    """The lease on the job a worker is running, renewed every heartbeat_seconds
    from a side thread. The thread lives as long as the worker and sleeps while
    no job is held: starting and joining a thread per job cost more than the
    job's own database calls."""

    def __init__(self, store: JobStore, worker_id: str, settings: JobsSettings) -> None:
        self.store, self.worker_id, self.settings = store, worker_id, settings
        self.job_id: str | None = None
        self.stage: str | None = None
        self.lost = threading.Event()
        self._due = 0.0
        self._closed = False
        self._idle = False  # the thread sleeps until hold() or close() wakes it
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, job_id: str) -> _Lease:
        """Start renewing `job_id`'s lease (claimed just now); use as a context
        manager, which stops renewing on exit."""
        with self._cond:
            self.job_id, self.stage = job_id, None
            self.lost = threading.Event()
            self._due = time.monotonic() + self.settings.heartbeat_seconds
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="lease", daemon=True)
                self._thread.start()
            elif self._idle:
                # Otherwise it wakes at the previous due time and sleeps on.
                self._cond.notify()
        return self

    def __enter__(self) -> _Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self.job_id = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def set_stage(self, stage: str) -> None:
        """Record the stage now (it shows on the job) and renew the lease."""
        self.stage = stage
        job_id = self.job_id
        if job_id is not None:
            self._renew(job_id, self.lost)

    def _renew(self, job_id: str, lost: threading.Event) -> None:
        with self._cond:
            self._due = time.monotonic() + self.settings.heartbeat_seconds
        try:
            ok = self.store.heartbeat(
                job_id, self.worker_id, self.settings.lease_seconds, stage=self.stage
            )
        except Exception:
            log.warning("heartbeat for %s failed; will retry", job_id, exc_info=True)
            return
        if not ok:
            lost.set()

    def _beat(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self.job_id is None or time.monotonic() < self._due):
                    self._idle = self.job_id is None
                    self._cond.wait(None if self._idle else self._due - time.monotonic())
                    self._idle = False
                if self._closed:
                    return
                job_id, lost = self.job_id, self.lost
            if job_id is not None:
                self._renew(job_id, lost)


class Worker:
    def __init__(
        self,
        settings: JobsSettings,
        store: JobStore,
        pipeline: Pipeline,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pipeline = pipeline
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._lease = _Lease(store, self.worker_id, settings)

    def run_once(self) -> bool:
        """Claim and run one job; False when the queue had nothing runnable."""
        job = self.store.claim(self.worker_id, self.settings.lease_seconds)
        if job is None:
            return False
        self._run(job, claim_next=False)
        return True

    def _run(self, job: JobRecord, *, claim_next: bool) -> JobRecord | None:
        """Run one claimed job to its outcome. With `claim_next`, the completion
        also claims this worker's next job (one round trip on PostgreSQL), which
        is returned; None when there is none or the job did not complete."""
        token = request_id.set(job.id)
        start = time.monotonic()
        timer = metrics.METRICS.timer(job.operation)
        outcome = "error"
        log.info("claimed %s (%s), attempt %d", job.id, job.operation, job.attempts)
        try:
            with self._lease.hold(job.id) as lease:

                def stage(name: str) -> None:
                    timer.enter(name)
                    lease.set_stage(name)

                try:
                    result = self.pipeline.run(job, stage)
                except Exception as err:
                    transient = is_transient(err)
                    code = getattr(err, "code", "internal_error")
                    message = getattr(err, "message", None) or "internal error"
                    if not isinstance(code, str):
                        code = "internal_error"
                    log.log(
                        logging.WARNING if transient else logging.INFO,
                        "%s failed in %s (%s): %s",
                        job.id,
                        lease.stage,
                        "transient" if transient else "permanent",
                        message,
                        exc_info=not hasattr(err, "code"),
                    )
                    if lease.lost.is_set():
                        outcome = "lease_lost"
                        return None
                    outcome = "failed"
                    self.store.fail(
                        job.id,
                        self.worker_id,
                        code=code,
                        message=message,
                        transient=transient,
                        retry_base_seconds=self.settings.retry_base_seconds,
                    )
                    return None
                if lease.lost.is_set():
                    outcome = "lease_lost"
                    log.warning("lease on %s lost; dropping its result", job.id)
                    return None
                # No lease write for this stage: completion follows at once and
                # settles the lease (a slow store is still covered by the beat).
                timer.enter("store")
                lease.stage = "store"
                suffix = "." + ("jpg" if result.format == "jpeg" else result.format)
                key = self.pipeline.blobs.put(result.data, "outputs", suffix)
                recorded = {
                    "output_key": key,
                    "width": result.width,
                    "height": result.height,
                    "format": result.format,
                    "processing_ms": elapsed_ms(start),
                    "engines": result.engines,
                    "pipeline": result.pipeline,
                    "output_ttl_seconds": output_ttl_for(self.settings, job),
                }
                next_job = None
                if result.qa is not None and not self.store.record_qa(
                    job.id, self.worker_id, result.qa
                ):
                    outcome = "lease_lost"
                    self.pipeline.blobs.delete(key)
                    log.warning("QA of %s not recorded: lease lost", job.id)
                    return None
                if claim_next:
                    done, next_job = self.store.complete_and_claim(
                        job.id,
                        self.worker_id,
                        lease_seconds=self.settings.lease_seconds,
                        **recorded,
                    )
                else:
                    done = self.store.complete(job.id, self.worker_id, **recorded)
                if not done:
                    # Someone else owns the job now; our output is an orphan.
                    outcome = "lease_lost"
                    self.pipeline.blobs.delete(key)
                    log.warning("completion of %s refused: lease lost", job.id)
                else:
                    outcome = "completed"
                    log.info("completed %s in %d ms", job.id, elapsed_ms(start))
                return next_job
        finally:
            timer.finish(outcome)
            request_id.reset(token)

    def run_forever(self, stop: threading.Event) -> None:
        """Claim and run jobs until `stop`; a job already claimed (the next one,
        claimed with a completion) is run before stopping, not left to expire."""
        job: JobRecord | None = None
        try:
            while job is not None or not stop.is_set():
                try:
                    if job is None:
                        job = self.store.claim(self.worker_id, self.settings.lease_seconds)
                        if job is None:
                            self.store.wait_for_work(timeout=1.0)
                            continue
                    job = self._run(job, claim_next=not stop.is_set())
                except Exception:
                    log.exception("worker loop error; backing off")
                    job = None
                    stop.wait(1.0)
        finally:
            self._lease.close()


def build_worker(settings: JobsSettings, store: JobStore) -> Worker:
    pipeline = Pipeline(
        LocalBlobStore(settings.blob_root),
        TritonEngines(
            settings.triton_grpc_addr,
            timeout_s=settings.triton_timeout_seconds,
            matting_engine=settings.matting_engine,
        ),
        compositor_pb2_grpc.CompositorServiceStub(channel(settings.compositor_addr)),
        settings.compositor_timeout_seconds,
        settings.qa_thresholds,
    )
    return Worker(settings, store, pipeline)


def main() -> None:
    settings = JobsSettings()
    setup_logging(settings.log_level, "worker")
    store = JobStore(settings.database_url)
    store.migrate()
    assert settings.worker_metrics_port is not None
    metrics.serve(settings.worker_metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [
        threading.Thread(target=build_worker(settings, store).run_forever, args=(stop,))
        for _ in range(settings.worker_threads)
    ]
    for t in threads:
        t.start()
    # Housekeeping rides along in every worker process: webhook dispatchers and
    # retention passes coordinate through the database like the workers do.
    webhook_threads = start_webhook_threads(settings, store, stop)
    start_retention_thread(settings, store, LocalBlobStore(settings.blob_root), stop)
    start_batch_thread(settings, store, stop)
    log.info(
        "worker started with %d thread(s), %d webhook dispatcher(s), retention every %.0f s",
        len(threads),
        len(webhook_threads),
        settings.retention_interval_seconds,
    )
    for t in threads:
        t.join()
    store.close()
