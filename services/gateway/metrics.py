"""The gateway's Prometheus metrics: requests by route template and status,
latency, and the queue depth the jobs service reports. Stage timings come from
the workers' own metrics port (services/jobs/metrics.py)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The *_created series double the output and no dashboard here reads them.
disable_created_metrics()

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    """One registry per app, so several apps in one process (tests) stay apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lightbox_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lightbox_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "lightbox_queue_depth",
            "Jobs waiting to run (read from the jobs service at scrape time).",
            registry=self.registry,
        )
        self.jobs_api_up = Gauge(
            "lightbox_jobs_api_up",
            "1 if the jobs service answered the last scrape's queue query.",
            registry=self.registry,
        )
        self.submits = Counter(
            "lightbox_jobs_submitted_total",
            "Accepted submissions by operation (replays of an Idempotency-Key excluded).",
            ["operation"],
            registry=self.registry,
        )
        self.ratelimit_store_errors = Counter(
            "lightbox_ratelimit_store_errors_total",
            "Rate-limit hits counted in-process because Redis did not answer.",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
