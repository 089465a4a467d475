"""Around every request: its id (echoed, logged, sent on to the services), the
rate-limit headers, the limit for callers without a key, metrics, and a JSON
500 for anything unexpected. Plain ASGI: it runs on every poll, so it stays cheap."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from starlette.datastructures import MutableHeaders

from services.common.errors import LightboxError
from services.common.logs import request_id
from services.gateway.auth import rate_limited
from services.gateway.context import Gateway
from services.gateway.ratelimit import Decision

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
# Probes and scrapers: counted for the headers, never refused.
OPERATOR_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _keyed(path: str) -> bool:
    """Routes that authenticate (the per-key limit applies there, in auth)."""
    return path.startswith(("/v1/", "/v2/")) and not path.startswith("/v1/files/")


def _request_id(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            if _REQUEST_ID.match(text):
                return text
            break
    return secrets.token_hex(12)


def _client_ip(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


class RequestContextMiddleware:
    def __init__(self, app: Any, gateway: Gateway) -> None:
        self.app = app
        self.gw = gateway

    async def _json(self, send: Any, status: int, err: LightboxError, extra: list) -> None:
        body = json.dumps(err.body()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _request_id(scope)
        token = request_id.set(rid)
        state = scope.setdefault("state", {})
        path = scope.get("path", "")
        ip = _client_ip(scope)
        anon_limit = self.gw.settings.anonymous_rate_limit_per_minute
        status = 500
        response_started = False

        def rate_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
            return [
                (b"x-request-id", rid.encode()),
                (b"x-ratelimit-limit", str(decision.limit).encode()),
                (b"x-ratelimit-remaining", str(decision.remaining).encode()),
                (b"x-ratelimit-reset", str(decision.reset_seconds).encode()),
            ]

        async def decision_now() -> Decision:
            decision = state.get("rate")
            if decision is None:
                bucket = f"ops:{ip}" if path in OPERATOR_PATHS else f"ip:{ip}"
                decision = await self.gw.limiter.hit(bucket, anon_limit)
            return decision

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in rate_headers(await decision_now()):
                    headers[name.decode()] = value.decode()
            await send(message)

        try:
            if not _keyed(path) and path not in OPERATOR_PATHS:
                decision = await self.gw.limiter.hit(f"ip:{ip}", anon_limit)
                state["rate"] = decision
                if not decision.allowed:
                    status = 429
                    extra = [
                        *rate_headers(decision),
                        (b"retry-after", str(decision.reset_seconds).encode()),
                    ]
                    await self._json(send, 429, rate_limited(decision), extra)
                    return
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), path)
            status = 500
            if not response_started:
                err = LightboxError(
                    "Internal error.",
                    code="internal_error",
                    guidance=f"Retry later; if it persists, report request id {rid}.",
                )
                await self._json(send, 500, err, rate_headers(await decision_now()))
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.gw.metrics.observe(
                scope.get("method", ""), template, status, time.perf_counter() - started
            )
            request_id.reset(token)
