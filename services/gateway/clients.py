"""The gateway's gRPC clients (asyncio), with request ids carried in metadata
and peer errors turned back into domain errors in one place."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lightbox.v1 import accounts_pb2_grpc, catalog_pb2_grpc, compositor_pb2_grpc, jobs_pb2_grpc

from services.common.grpcutil import CHANNEL_OPTIONS, error_from_rpc
from services.common.logs import request_id


class Clients:
    def __init__(self, jobs_addr: str, compositor_addr: str, timeout_s: float) -> None:
        self._jobs_channel = grpc.aio.insecure_channel(jobs_addr, options=CHANNEL_OPTIONS)
        self._compositor_channel = grpc.aio.insecure_channel(
            compositor_addr, options=CHANNEL_OPTIONS
        )
        self.jobs = jobs_pb2_grpc.JobServiceStub(self._jobs_channel)
        self.accounts = accounts_pb2_grpc.AccountServiceStub(self._jobs_channel)
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self._jobs_channel)
        self.compositor = compositor_pb2_grpc.CompositorServiceStub(self._compositor_channel)
        self._jobs_health = health_pb2_grpc.HealthStub(self._jobs_channel)
        self._compositor_health = health_pb2_grpc.HealthStub(self._compositor_channel)
        self.timeout_s = timeout_s

    async def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return await method(
                request,
                timeout=timeout or self.timeout_s,
                metadata=(("x-request-id", request_id.get()),),
            )
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err) from None

    async def healthy(self, which: str, service: str = "") -> bool:
        stub = self._jobs_health if which == "jobs" else self._compositor_health
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.aio.AioRpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self._jobs_channel.close()
        await self._compositor_channel.close()
