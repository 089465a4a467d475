"""Gateway process: the FastAPI app on uvicorn (uvloop and httptools when installed).

One process, one event loop: rate limits are counted in this process unless
LIGHTBOX_REDIS_URL shares them, so more gateways means more replicas behind a
load balancer with Redis, never several uvicorn workers here."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from services.common.logs import setup_logging
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        sys.exit(f"gateway: refusing to start: {exc}")
    setup_logging(settings.log_level, "gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
