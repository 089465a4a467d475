"""Segmind's synchronous call: `POST /v1/{slug}` runs the operation offered at
`/v2/{slug}` (the same fields; JSON with `image` as a URL or base64), waits for
its job up to LIGHTBOX_SEGMIND_SYNC_WAIT_SECONDS and answers the image itself.
A job that outlives the wait goes on and is polled through /v2/requests/{id}.

Only the known slugs get a route, each its own fixed path, so no PixelAPI path
(`/v1/image/...`, `/v1/models`, `/v1/account/...`, ...) can ever be shadowed."""

# No `from __future__ import annotations`: FastAPI resolves annotations from module
# globals, and the routes' Annotated[Account, Depends(auth)] is a local.
import mimetypes
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from lightbox.v1 import jobs_pb2

from services.common.errors import NotFound
from services.gateway.auth import Account, Authenticator
from services.gateway.context import Gateway
from services.gateway.openapi import RESPONSE_HEADERS, errors, request_body
from services.gateway.segmind import (
    PIXELAPI_V1_SEGMENTS,
    SLUGS,
    SegmindRoute,
    request_failed,
    still_running,
)
from services.gateway.submit import OperationSpec, Submitter
from services.gateway.views import (
    TERMINAL,
    TERMINAL_PROTO,
    SegmindErrorBody,
    output_expired,
    status_of,
)

JOB_ID_HEADER = "X-Lightbox-Job-Id"
INFERENCE_TIME_HEADER = "X-Lightbox-Inference-Time"

_IMAGE_HEADERS = {
    **RESPONSE_HEADERS,
    JOB_ID_HEADER: {
        "description": "The job's id: GET /v2/requests/{id} or /v1/image/{id} shows it.",
        "schema": {"type": "string"},
    },
    INFERENCE_TIME_HEADER: {
        "description": "Seconds the job took to process (metrics.inference_time on /v2).",
        "schema": {"type": "number"},
    },
}


def segmind_sync_router(gw: Gateway, auth: Authenticator, submitter: Submitter) -> APIRouter:
    clashes = PIXELAPI_V1_SEGMENTS & SLUGS.keys()
    if clashes:
        raise ValueError(f"Segmind slugs would shadow PixelAPI paths: {sorted(clashes)}")
    router = APIRouter(prefix="/v1", route_class=SegmindRoute)
    Acct = Annotated[Account, Depends(auth)]

    def image_of(job: jobs_pb2.Job) -> FileResponse:
        if output_expired(job):
            raise NotFound("This request's result has expired.")
        try:
            path = gw.blobs.path(job.output_key)
        except NotFound:
            raise NotFound("This request's result is no longer stored.") from None
        return FileResponse(
            path,
            media_type=mimetypes.guess_type(path.name)[0] or f"image/{job.format}",
            headers={
                JOB_ID_HEADER: job.id,
                INFERENCE_TIME_HEADER: f"{job.processing_ms / 1000:.3f}",
            },
        )

    def sync_route(spec: OperationSpec) -> Callable[..., Awaitable[FileResponse]]:
        async def endpoint(request: Request, acct: Acct) -> FileResponse:
            done = await submitter.submit(request, spec, acct, v2=True)
            bound = gw.settings.segmind_sync_wait_seconds
            job = done.job
            if job.status not in TERMINAL_PROTO:
                # A `Prefer: wait` already spent inside submit counts towards the bound.
                job = await submitter.wait_for(job, acct, max(0, bound - done.waited))
            status = status_of(job)
            if status == "completed":
                return image_of(job)
            if status in TERMINAL:
                raise request_failed(job, gw.base_url(request))
            raise still_running(job, gw.base_url(request), max(bound, done.waited))

        return endpoint

    for slug, (spec, schema) in SLUGS.items():
        image: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}
        router.add_api_route(
            f"/{slug}",
            sync_route(spec),
            methods=["POST"],
            name=f"segmind_sync_{slug.replace('-', '_')}",
            summary=f"Run {slug} and answer the image (Segmind's synchronous call)",
            description="The fields of `POST /v2/" + slug + "`; the answer is the encoded "
            "image itself. Past the server's wait (60 s by default) the answer is 504 with "
            "`request_id`, and the job goes on: poll `/v2/requests/{request_id}/status`.",
            tags=["segmind"],
            status_code=200,
            response_class=FileResponse,
            response_model=None,
            responses={
                200: {
                    "description": "The result image, with its Content-Type.",
                    "headers": _IMAGE_HEADERS,
                    "content": {f"image/{fmt}": image for fmt in ("png", "jpeg", "webp")},
                },
                **errors(
                    400, 401, 403, 404, 406, 409, 413, 415, 429, 503, 504, body=SegmindErrorBody
                ),
                422: {
                    "description": "A field out of range (`invalid_parameter`), or the job "
                    "FAILED: its code in `detail.error`, its message in `error`.",
                    "model": SegmindErrorBody,
                    "headers": RESPONSE_HEADERS,
                },
            },
            openapi_extra=request_body(
                schema,
                takes_image=spec.takes_image,
                takes_mask=spec.takes_mask,
                json_only=spec.json_only,
                inline_image=spec.takes_image,
            ),
        )
    return router
