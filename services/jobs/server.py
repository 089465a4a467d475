"""Wiring of the jobs API process: store, availability checks, gRPC server."""

from __future__ import annotations

import logging
import signal
import threading
import time

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import HealthServicer
from lightbox.v1 import accounts_pb2_grpc, catalog_pb2_grpc, compositor_pb2_grpc, jobs_pb2_grpc

from services.common.grpcutil import channel, make_server, mark_serving
from services.common.logs import setup_logging
from services.common.operations import load_operations
from services.jobs.api import AccountService, JobService
from services.jobs.availability import Availability
from services.jobs.catalog_api import CatalogService
from services.jobs.catalog_store import CatalogStore
from services.jobs.engines import TritonEngines
from services.jobs.settings import JobsSettings
from services.jobs.store import JobStore

log = logging.getLogger(__name__)

DATABASE_HEALTH = "lightbox.v1.Database"


def build_server(
    settings: JobsSettings, store: JobStore, address: str | None = None
) -> tuple[grpc.Server, int]:
    compositor = compositor_pb2_grpc.CompositorServiceStub(channel(settings.compositor_addr))
    engines = TritonEngines(settings.triton_grpc_addr, timeout_s=5.0)
    availability = Availability(
        compositor, engines.ready_models, matting_engine=settings.matting_engine
    )
    server, port, health = make_server(address or settings.bind_address(settings.jobs_addr))
    operations = load_operations()
    jobs_pb2_grpc.add_JobServiceServicer_to_server(
        JobService(store, operations, availability, settings), server
    )
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(
        CatalogService(CatalogStore(store), operations, availability, settings), server
    )
    accounts_pb2_grpc.add_AccountServiceServicer_to_server(AccountService(store), server)
    mark_serving(
        health, "lightbox.v1.JobService", "lightbox.v1.AccountService", "lightbox.v1.CatalogService"
    )
    threading.Thread(
        target=_watch_database, args=(store, health), daemon=True, name="db-health"
    ).start()
    return server, port


def _watch_database(store: JobStore, health: HealthServicer, every_s: float = 2.0) -> None:
    """Publish the database's reachability as the `lightbox.v1.Database` health
    service, so the gateway's /readyz can report it without touching SQL."""
    last = None
    while True:
        try:
            store.ping()
            status = health_pb2.HealthCheckResponse.SERVING
        except Exception as exc:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
            if last != status:
                log.warning("database unreachable: %s", exc)
        health.set(DATABASE_HEALTH, status)
        last = status
        time.sleep(every_s)


def main() -> None:
    settings = JobsSettings()
    setup_logging(settings.log_level, "jobs")
    store = JobStore(settings.database_url)
    store.migrate()
    server, port = build_server(settings, store)
    server.start()
    log.info("jobs API listening on port %d", port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=5).wait()
    store.close()
