"""gRPC plumbing shared by the services: server construction with the standard
health service, domain-error mapping in one place, and channel creation."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from concurrent import futures
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common.errors import (
    GRPC_TO_HTTP,
    MD_CODE,
    MD_EXTRA,
    MD_FIELD,
    MD_GUIDANCE,
    LightboxError,
)

log = logging.getLogger(__name__)

# Raw 4096x4096 RGBA is 64 MiB; leave room for the original beside it.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(method: F) -> F:
    """Decorate a servicer method: a LightboxError becomes its gRPC status with
    the API code in trailing metadata; anything else is logged and INTERNAL."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except LightboxError as err:
            md = [(MD_CODE, err.code), (MD_GUIDANCE, err.guidance)]
            if err.field:
                md.append((MD_FIELD, err.field))
            extra = {k: v for k, v in err.extra.items() if k != "field"}
            if extra:
                md.append((MD_EXTRA, json.dumps(extra, default=str)))
            context.set_trailing_metadata(tuple(md))
            context.abort(err.grpc_status, err.message)
        except Exception:
            log.exception("unhandled error in %s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error")

    return wrapper  # type: ignore[return-value]


def error_from_rpc(err: grpc.RpcError) -> LightboxError:
    """Rebuild the domain error a peer raised (the inverse of handle_errors), for
    sync and asyncio calls alike. A peer that did not answer at all is
    `service_unavailable` (transient), with a message that leaks no internals."""
    md = {k: v for k, v in (err.trailing_metadata() or ())}  # type: ignore[attr-defined]
    status = err.code()  # type: ignore[attr-defined]
    code = md.get(MD_CODE)
    message = err.details() or status.name  # type: ignore[attr-defined]
    if not code:
        if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            code = "service_unavailable"
        else:
            code = GRPC_TO_HTTP.get(status, (500, "internal_error"))[1]
        if code in ("service_unavailable", "internal_error"):
            message = "A Lightbox service did not answer; try again shortly."
    return LightboxError(
        message,
        code=str(code),
        guidance=md.get(MD_GUIDANCE),
        field=md.get(MD_FIELD),
        extra=extra_from_metadata(md),
    )


def extra_from_metadata(md: dict[str, str]) -> dict[str, Any]:
    """The extra body fields a peer attached to its error, if any."""
    raw = md.get(MD_EXTRA)
    if not raw:
        return {}
    try:
        extra = json.loads(raw)
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


def make_server(
    address: str, max_workers: int = 8
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """A server bound to `address` ("host:port", port 0 picks one) with the
    standard health service registered. Returns (server, bound port, health)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers), options=CHANNEL_OPTIONS
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind gRPC server to {address}")
    return server, port, health_servicer


def mark_serving(health_servicer: health.HealthServicer, *service_names: str) -> None:
    for name in ("", *service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def check_health(address: str, timeout: float = 1.0) -> bool:
    with channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING
