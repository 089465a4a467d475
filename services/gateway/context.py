"""What every route of the gateway shares: settings, gRPC clients, the blob
store, the limiter, metrics, and the short-lived read caches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import Request
from lightbox.v1 import jobs_pb2

from services.common.blobstore import LocalBlobStore
from services.gateway.clients import Clients
from services.gateway.metrics import GatewayMetrics
from services.gateway.ratelimit import make_limiter
from services.gateway.settings import GatewaySettings
from services.gateway.views import TERMINAL_PROTO

_CACHE_MAX = 50_000


class JobCache:
    """GetJob answers kept for a fraction of a second, per (account, job).

    Clients poll; a burst of polls for one job shares one read of the jobs
    service, and concurrent misses for the same job wait for one call instead
    of each making their own. The account is part of the key, so isolation is
    decided by the jobs service exactly as without the cache."""

    def __init__(self, live_s: float, terminal_s: float) -> None:
        self.live_s = live_s
        self.terminal_s = terminal_s
        self._entries: dict[tuple[str, str], tuple[float, jobs_pb2.Job]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[jobs_pb2.Job]] = {}

    def get(self, account_id: str, job_id: str) -> jobs_pb2.Job | None:
        hit = self._entries.get((account_id, job_id))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, account_id: str, job: jobs_pb2.Job) -> None:
        ttl = self.terminal_s if job.status in TERMINAL_PROTO else self.live_s
        if ttl <= 0:
            return
        if len(self._entries) >= _CACHE_MAX:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= _CACHE_MAX:
                self._entries.clear()
        self._entries[(account_id, job.id)] = (time.monotonic() + ttl, job)

    def forget(self, account_id: str, job_id: str) -> None:
        self._entries.pop((account_id, job_id), None)

    async def fetch(
        self, account_id: str, job_id: str, load: Callable[[], Awaitable[jobs_pb2.Job]]
    ) -> jobs_pb2.Job:
        cached = self.get(account_id, job_id)
        if cached is not None:
            return cached
        key = (account_id, job_id)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        # A task, so that a caller that goes away does not cancel it for the others.
        task = asyncio.ensure_future(load())
        self._inflight[key] = task
        try:
            job = await asyncio.shield(task)
        finally:
            if self._inflight.get(key) is task:
                del self._inflight[key]
        self.put(account_id, job)
        return job


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.blobs = LocalBlobStore(settings.blob_root)
        self.metrics = GatewayMetrics()
        self.limiter = make_limiter(settings.redis_url, self.metrics.ratelimit_store_errors.inc)
        self.jobs_cache = JobCache(settings.job_cache_seconds, settings.job_cache_terminal_seconds)
        self._clients: Clients | None = None
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        s = self.settings
        self._clients = Clients(s.jobs_addr, s.compositor_addr, s.grpc_timeout_seconds)
        self._http = httpx.AsyncClient(timeout=2.0)

    async def stop(self) -> None:
        if self._clients is not None:
            await self._clients.close()
        if self._http is not None:
            await self._http.aclose()
        await self.limiter.close()

    @property
    def clients(self) -> Clients:
        assert self._clients is not None, "gateway not started"
        return self._clients

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None, "gateway not started"
        return self._http

    @property
    def triton_url(self) -> str:
        return f"http://{self.settings.triton_http_host}:{self.settings.triton_http_port}/v2"

    def base_url(self, request: Request) -> str:
        return self.settings.public_base_url or str(request.base_url)

    async def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        return await self.clients.call(method, request, timeout)

    async def get_job(self, job_id: str, account_id: str) -> jobs_pb2.Job:
        async def load() -> jobs_pb2.Job:
            return await self.call(
                self.clients.jobs.GetJob,
                jobs_pb2.GetJobRequest(job_id=job_id, account_id=account_id),
            )

        return await self.jobs_cache.fetch(account_id, job_id, load)
