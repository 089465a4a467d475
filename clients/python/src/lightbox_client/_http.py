"""Sending one API call with the retry policy, over a sync or an async httpx client.

What is retried: 429 (after its Retry-After), 503 other than model_unavailable and
gpu_out_of_memory, connection errors and timeouts, and any other 5xx on a GET.
Everything else (a validation error above all) is raised at once. The two 503s are
not worth a wait: a model is there only once an operator installs it, and a request
that ran a GPU out of memory failed for good (a retry under the same key answers the
same failed job); the caller decides whether to ask again for less. A submit always carries an
Idempotency-Key, the same on every attempt, so a retried submit whose first attempt
did reach the server returns that job instead of charging again."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from lightbox_client._version import __version__
from lightbox_client.errors import (
    APIError,
    ConnectionFailed,
    GpuOutOfMemory,
    ModelUnavailable,
    RateLimited,
    ServiceUnavailable,
    error_from_response,
)

# A multipart file part: (filename, bytes, content type).
FilePart = tuple[str, bytes, str]


@dataclass(frozen=True)
class Call:
    """One API request, independent of the client that sends it."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Mapping[str, FilePart] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Extra seconds the server may hold the answer (Prefer: wait=N).
    hold_seconds: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    backoff: float = 0.5  # first delay, doubled each attempt
    max_backoff: float = 8.0
    max_retry_after: float = 60.0  # a longer Retry-After is raised, not slept

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        base = min(self.max_backoff, self.backoff * 2.0**attempt)
        return base * (0.5 + random.random() / 2)


def retryable(method: str, exc: Exception) -> tuple[bool, float | None]:
    """Whether `exc` is worth another attempt, and the server's Retry-After if it set one."""
    if isinstance(exc, httpx.TransportError):
        return True, None
    if isinstance(exc, (ModelUnavailable, GpuOutOfMemory)):
        return False, None
    if isinstance(exc, (RateLimited, ServiceUnavailable)):
        return True, exc.retry_after
    if isinstance(exc, APIError) and exc.status_code >= 500 and method == "GET":
        return True, None
    return False, None


def next_delay(policy: RetryPolicy, method: str, exc: Exception, attempt: int) -> float:
    """Seconds to sleep before attempt `attempt + 1`; raises `exc` (a transport error
    as ConnectionFailed) when it is not retried."""
    again, retry_after = retryable(method, exc)
    if again and attempt < policy.max_retries:
        delay = policy.delay(attempt, retry_after)
        if delay <= policy.max_retry_after:
            return delay
    if isinstance(exc, httpx.TransportError):
        raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
    raise exc


def auth_headers(api_key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "User-Agent": f"lightbox-client/{__version__}",
    }


def _timeout(base: httpx.Timeout, call: Call) -> httpx.Timeout:
    if not call.hold_seconds:
        return base
    read = (base.read or 0) + call.hold_seconds
    return httpx.Timeout(base.connect, read=read, write=base.write, pool=base.pool)


def _decode(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise error_from_response(response.status_code, body, dict(response.headers))
    if not response.content:
        return None
    return response.json()


class SyncSender:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: httpx.Timeout,
        retry: RetryPolicy,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.client = httpx.Client(base_url=base_url.rstrip("/"), transport=transport)
        self.api_key = api_key
        self.timeout = timeout
        self.retry = retry

    def send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self.client.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    data=call.data,
                    files=call.files,
                    headers={**auth_headers(self.api_key), **call.headers},
                    timeout=_timeout(self.timeout, call),
                )
                return _decode(response)
            except (httpx.TransportError, APIError) as exc:
                time.sleep(next_delay(self.retry, call.method, exc, attempt))
                attempt += 1

    def get_bytes(self, url: str) -> bytes:
        """An output link: signed, no key needed (and none sent to it)."""
        attempt = 0
        while True:
            try:
                response = self.client.get(url, timeout=self.timeout)
                if response.status_code >= 400:
                    _decode(response)
                return response.content
            except (httpx.TransportError, APIError) as exc:
                time.sleep(next_delay(self.retry, "GET", exc, attempt))
                attempt += 1

    def close(self) -> None:
        self.client.close()


class AsyncSender:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: httpx.Timeout,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), transport=transport)
        self.api_key = api_key
        self.timeout = timeout
        self.retry = retry

    async def send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self.client.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    data=call.data,
                    files=call.files,
                    headers={**auth_headers(self.api_key), **call.headers},
                    timeout=_timeout(self.timeout, call),
                )
                return _decode(response)
            except (httpx.TransportError, APIError) as exc:
                await asyncio.sleep(next_delay(self.retry, call.method, exc, attempt))
                attempt += 1

    async def get_bytes(self, url: str) -> bytes:
        attempt = 0
        while True:
            try:
                response = await self.client.get(url, timeout=self.timeout)
                if response.status_code >= 400:
                    _decode(response)
                return response.content
            except (httpx.TransportError, APIError) as exc:
                await asyncio.sleep(next_delay(self.retry, "GET", exc, attempt))
                attempt += 1

    async def aclose(self) -> None:
        await self.client.aclose()
