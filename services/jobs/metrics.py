"""The worker's Prometheus metrics: how long each pipeline stage takes and how
jobs end. A worker serves them on its own port (Prometheus scrapes every worker
process; the gateway's /metrics covers the HTTP side and the queue)."""

from __future__ import annotations

import logging
import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

# Stages run from milliseconds (decode) to minutes (diffusion on CPU).
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.stage_seconds = Histogram(
            "lightbox_worker_stage_seconds",
            "Time spent in one pipeline stage of one job attempt.",
            ["operation", "stage"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.job_seconds = Histogram(
            "lightbox_worker_job_seconds",
            "Time from claim to outcome of one job attempt.",
            ["operation"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.jobs = Counter(
            "lightbox_worker_jobs_total",
            "Job attempts by outcome (completed, failed, lease_lost, error).",
            ["operation", "outcome"],
            registry=registry,
        )

    def timer(self, operation: str) -> StageTimer:
        return StageTimer(self, operation)


class StageTimer:
    """Times consecutive stages of one attempt: entering a stage closes the last."""

    def __init__(self, metrics: WorkerMetrics, operation: str) -> None:
        self._metrics = metrics
        self._operation = operation
        self._started = time.monotonic()
        self._stage: str | None = None
        self._stage_started = self._started

    def enter(self, stage: str) -> None:
        now = time.monotonic()
        self._close(now)
        self._stage, self._stage_started = stage, now

    def finish(self, outcome: str) -> None:
        now = time.monotonic()
        self._close(now)
        self._stage = None
        self._metrics.job_seconds.labels(self._operation).observe(now - self._started)
        self._metrics.jobs.labels(self._operation, outcome).inc()

    def _close(self, now: float) -> None:
        if self._stage is not None:
            self._metrics.stage_seconds.labels(self._operation, self._stage).observe(
                now - self._stage_started
            )


def serve(port: int) -> bool:
    """Expose the default registry on `port` (0: not at all). A port already in use
    costs the metrics, not the worker: jobs keep running and the failure is logged."""
    if port <= 0:
        return False
    try:
        start_http_server(port, addr="0.0.0.0")
    except OSError as exc:
        log.warning("worker metrics not served: port %d: %s", port, exc)
        return False
    log.info("worker metrics on port %d", port)
    return True


METRICS = WorkerMetrics()
