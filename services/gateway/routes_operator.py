"""Routes without an API key: liveness, readiness, metrics, and the signed
output links (where the signature is the credential)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import httpx
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from lightbox.v1 import jobs_pb2
from starlette.concurrency import run_in_threadpool

from services.common import models
from services.common.blobstore import content_type, is_valid_key
from services.common.errors import LightboxError, NotFound
from services.gateway import signing
from services.gateway.context import Gateway
from services.gateway.metrics import CONTENT_TYPE
from services.gateway.openapi import errors, ok


def operator_router(gw: Gateway) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["operator"], responses={200: ok("The process is alive.")})
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        tags=["operator"],
        responses={
            200: ok("Every dependency answers."),
            503: ok("A dependency is down; `checks` names it."),
        },
    )
    async def readyz() -> JSONResponse:
        async def triton() -> bool:
            # Up, and serving at least one matting engine (the first stage of everything).
            try:
                if (await gw.http.get(f"{gw.triton_url}/health/live")).status_code != 200:
                    return False
                for model in (models.MATTING_BIREFNET, models.MATTING_CLASSICAL):
                    r = await gw.http.get(f"{gw.triton_url}/models/{model}/ready")
                    if r.status_code == 200:
                        return True
            except httpx.HTTPError:
                return False
            return False

        async def storage() -> bool:
            try:
                await run_in_threadpool(gw.blobs.check)
                return True
            except OSError:
                return False

        names = ["jobs", "database", "compositor", "triton", "storage"]
        results = await asyncio.gather(
            gw.clients.healthy("jobs", "lightbox.v1.JobService"),
            gw.clients.healthy("jobs", "lightbox.v1.Database"),
            gw.clients.healthy("compositor"),
            triton(),
            storage(),
        )
        checks = {n: "ok" if r else "unavailable" for n, r in zip(names, results, strict=True)}
        ready = all(results)
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get(
        "/metrics",
        tags=["operator"],
        response_class=Response,
        responses={200: ok("Prometheus text format.", content={CONTENT_TYPE: {}})},
    )
    async def metrics() -> Response:
        try:
            stats = await gw.call(
                gw.clients.jobs.GetQueueStats, jobs_pb2.GetQueueStatsRequest(), timeout=2.0
            )
            gw.metrics.queue_depth.set(stats.queued)
            gw.metrics.jobs_api_up.set(1)
        except LightboxError:
            gw.metrics.jobs_api_up.set(0)
        return Response(gw.metrics.render(), media_type=CONTENT_TYPE)

    @router.get(
        "/v1/files/{key:path}",
        tags=["jobs"],
        response_class=FileResponse,
        responses={
            200: ok(
                "The result: an image, a WAV (audio) or an MP4 (video), with its Content-Type.",
                content={"image/*": {}, "audio/wav": {}, "video/mp4": {}},
            ),
            **errors(404, 410, 429),
        },
    )
    async def output_file(
        key: str,
        expires: Annotated[str, Query(description="Unix time the link expires.")] = "",
        signature: Annotated[str, Query(description="HMAC-SHA256 of the key and expiry.")] = "",
    ) -> FileResponse:
        # A link is valid or it is not: every malformed part is the same 404.
        if not is_valid_key(key) or not key.startswith("outputs/"):
            raise NotFound("No such file.")
        if not expires.isdigit() or len(expires) > 12 or len(signature) != 64:
            raise NotFound("No such file.")
        verdict = signing.check(gw.settings.signing_secret, key, int(expires), signature)
        if verdict == "invalid":
            raise NotFound("No such file.")
        if verdict == "expired":
            raise LightboxError(
                "This link has expired.",
                code="link_expired",
                guidance="Fetch the job again for a fresh link, or resubmit if it was deleted.",
            )
        path = gw.blobs.path(key)
        return FileResponse(
            path, media_type=content_type(key), headers={"Cache-Control": "private, max-age=3600"}
        )

    return router
