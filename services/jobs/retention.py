"""Retention: what is deleted when, from the blob store and the jobs database.

- Inputs: the blobs a job read, `input_grace_seconds` after the job ended.
- Outputs: a completed job's result at its `output_expires_at`, which the
  worker sets from the output TTL of the job's API flavour and operation
  (`output_ttl`); the signed link expires at the same moment, so the link
  answers 410 (expired) and, the blob being gone, a fresh link answers 404.
- Job rows: `job_retention_seconds` after the job ended, once its blobs are
  gone and its webhook has settled, together with its events, webhook records
  and idempotency key. Ledger rows are never deleted.
- Orphans: output blobs that no job refers to (a worker died between storing
  its result and recording it), once older than `orphan_min_age_seconds`.

Queued and processing jobs are never touched: every query and every update
requires a terminal status, and a terminal status is final. A pass is
idempotent (a blob is deleted before its job is marked, so a crash in between
only repeats the delete), so several worker processes may run passes at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from services.common.blobstore import LocalBlobStore
from services.jobs.settings import JobsSettings
from services.jobs.store import JobRecord, JobStore

log = logging.getLogger(__name__)

V1 = "v1"
V2 = "v2"
# The job param by which the gateway marks a job submitted through /v2.
FLAVOUR_PARAM = "api"
BATCH = 500
# A pass stops after this many batches of one kind and leaves the rest to the next.
MAX_BATCHES = 100
ORPHAN_KINDS = ("outputs",)


def api_flavour(job: JobRecord) -> str:
    """The flavour "v2" for a job submitted through the Segmind-style /v2 API (the gateway
    stores params["api"] = "v2"), otherwise "v1"."""
    return V2 if str(job.params.get(FLAVOUR_PARAM) or "") == V2 else V1


def output_ttl(
    default_seconds: float, overrides: Mapping[str, float], operation: str, flavour: str
) -> float:
    """Seconds an output of `operation` submitted through `flavour` is kept.

    The most specific override wins: "<flavour>:<operation>", then
    "<flavour>", then "<operation>"; else the default.
    """
    for key in (f"{flavour}:{operation}", flavour, operation):
        if key in overrides:
            return float(overrides[key])
    return default_seconds


def output_ttl_for(settings: JobsSettings, job: JobRecord) -> float:
    """The output TTL of this job under the settings (what the worker records)."""
    return output_ttl(
        settings.output_ttl_seconds, settings.output_ttl_overrides, job.operation, api_flavour(job)
    )


@dataclass
class RetentionReport:
    inputs_deleted: int = 0
    outputs_deleted: int = 0
    jobs_deleted: int = 0
    orphans_deleted: int = 0

    def __str__(self) -> str:
        return (
            f"inputs={self.inputs_deleted} outputs={self.outputs_deleted} "
            f"jobs={self.jobs_deleted} orphans={self.orphans_deleted}"
        )


def purge_inputs(store: JobStore, blobs: LocalBlobStore, grace: timedelta) -> int:
    """Delete the input blobs of jobs that ended more than `grace` ago; returns blobs deleted."""
    deleted = 0
    for _ in range(MAX_BATCHES):
        batch = store.jobs_with_inputs_to_purge(grace, limit=BATCH)
        for _job_id, inputs in batch:
            deleted += sum(blobs.delete(key) for key in inputs.values())
        store.mark_inputs_purged([job_id for job_id, _ in batch])
        if len(batch) < BATCH:
            break
    return deleted


def purge_outputs(store: JobStore, blobs: LocalBlobStore) -> int:
    """Delete the output blobs of completed jobs past output_expires_at."""
    deleted = 0
    for _ in range(MAX_BATCHES):
        batch = store.jobs_with_outputs_to_purge(limit=BATCH)
        deleted += sum(blobs.delete(key) for _, key in batch)
        store.mark_output_purged([job_id for job_id, _ in batch])
        if len(batch) < BATCH:
            break
    return deleted


def purge_job_rows(store: JobStore, older_than: timedelta) -> int:
    deleted = 0
    for _ in range(MAX_BATCHES):
        ids = store.delete_old_jobs(older_than, limit=BATCH)
        deleted += len(ids)
        if len(ids) < BATCH:
            break
    return deleted


def sweep_orphans(
    store: JobStore, blobs: LocalBlobStore, min_age_seconds: float, now: float | None = None
) -> int:
    """Delete output blobs older than `min_age_seconds` that no job refers to.

    The age guard keeps a result that a live worker has stored but not yet
    recorded: storing and recording take well under a lease.
    """
    cutoff = (time.time() if now is None else now) - min_age_seconds
    deleted = 0
    for kind in ORPHAN_KINDS:
        candidates = [key for key, mtime in blobs.list(kind) if mtime <= cutoff]
        for start in range(0, len(candidates), BATCH):
            chunk = candidates[start : start + BATCH]
            kept = store.referenced_output_keys(chunk)
            deleted += sum(blobs.delete(key) for key in chunk if key not in kept)
    return deleted


def sweep_uploads(blobs: LocalBlobStore, ttl_seconds: float, now: float | None = None) -> int:
    """Delete uploads (POST /v1/uploads) older than their TTL: their ids have
    expired; a batch that used one has its own copy among its jobs' inputs."""
    cutoff = (time.time() if now is None else now) - ttl_seconds
    return sum(blobs.delete(key) for key, mtime in list(blobs.list("uploads")) if mtime <= cutoff)


def run_retention(
    store: JobStore,
    blobs: LocalBlobStore,
    *,
    input_grace_seconds: float,
    job_retention_seconds: float,
    orphan_min_age_seconds: float,
    upload_ttl_seconds: float = 3600.0,
) -> RetentionReport:
    """One full pass; `job_retention_seconds` 0 keeps job rows."""
    report = RetentionReport()
    report.inputs_deleted = purge_inputs(store, blobs, timedelta(seconds=input_grace_seconds))
    report.outputs_deleted = purge_outputs(store, blobs)
    if job_retention_seconds > 0:
        report.jobs_deleted = purge_job_rows(store, timedelta(seconds=job_retention_seconds))
    report.orphans_deleted = sweep_orphans(store, blobs, orphan_min_age_seconds)
    report.orphans_deleted += sweep_uploads(blobs, upload_ttl_seconds)
    store.purge_expired_idempotency_keys()
    return report


def run_retention_with(
    settings: JobsSettings, store: JobStore, blobs: LocalBlobStore
) -> RetentionReport:
    """One pass with the settings' periods."""
    return run_retention(
        store,
        blobs,
        input_grace_seconds=settings.input_grace_seconds,
        job_retention_seconds=settings.job_retention_seconds,
        orphan_min_age_seconds=settings.orphan_min_age_seconds,
        upload_ttl_seconds=settings.upload_ttl_seconds,
    )


def start_retention_thread(
    settings: JobsSettings, store: JobStore, blobs: LocalBlobStore, stop: threading.Event
) -> threading.Thread | None:
    """Run a pass every retention_interval_seconds until `stop`; None when off."""
    if settings.retention_interval_seconds <= 0:
        return None

    def loop() -> None:
        while not stop.wait(settings.retention_interval_seconds):
            try:
                report = run_retention_with(settings, store, blobs)
            except Exception:
                log.exception(
                    "retention pass failed; next one in %.0f s", settings.retention_interval_seconds
                )
                continue
            if any(vars(report).values()):
                log.info("retention: deleted %s", report)

    thread = threading.Thread(target=loop, name="retention", daemon=True)
    thread.start()
    return thread
