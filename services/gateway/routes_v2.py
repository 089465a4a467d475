"""/v2: Segmind's async shape. Submit answers a request id and two links; the
status link is cheap to poll; the response link has the result once COMPLETED.
The same jobs underneath: a request id is a job id."""

# No `from __future__ import annotations`: FastAPI resolves annotations from module
# globals, and the routes' Annotated[Account, Depends(auth)] is a local.
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.common.errors import NotFound
from services.gateway.auth import Account, Authenticator
from services.gateway.context import Gateway
from services.gateway.openapi import errors, ok, request_body
from services.gateway.routes_v1 import check_job_id
from services.gateway.segmind import SLUGS, SegmindRoute, request_failed
from services.gateway.submit import MEDIA_OPERATIONS, OperationSpec, Submitter
from services.gateway.views import (
    SegmindErrorBody,
    V2ResultBody,
    V2StatusBody,
    V2SubmitBody,
    output_expired,
    status_of,
    v2_result_body,
    v2_status_body,
)


def v2_router(gw: Gateway, auth: Authenticator, submitter: Submitter) -> APIRouter:
    router = APIRouter(prefix="/v2", route_class=SegmindRoute)
    Acct = Annotated[Account, Depends(auth)]

    def submit_route(spec: OperationSpec) -> Callable[..., Awaitable[JSONResponse]]:
        async def endpoint(request: Request, acct: Acct) -> JSONResponse:
            done = await submitter.submit(request, spec, acct, v2=True)
            body = v2_status_body(done.job, gw.base_url(request))
            body.pop("metrics")
            fresh = not done.replayed and body["status"] in ("QUEUED", "PROCESSING")
            return JSONResponse(body, status_code=202 if fresh else 200)

        return endpoint

    # The audio, video and try-on operations too: /v2 only (the synchronous /v1/{slug}
    # answers image bytes, and /v1/virtual-tryon is PixelAPI's own path).
    media = {name: (spec, spec.schema) for name, spec in MEDIA_OPERATIONS.items()}
    for name, (spec, schema) in {**SLUGS, **media}.items():
        router.add_api_route(
            f"/{name}",
            submit_route(spec),
            methods=["POST"],
            name=f"v2_submit_{name.replace('-', '_')}",
            summary=f"Submit {name} (async)"
            + (": Segmind's field names, run as product-photo" if spec.segmind else ""),
            tags=["v2"],
            status_code=202,
            response_model=None,
            responses={
                202: ok("Queued: poll status_url, then fetch response_url.", V2SubmitBody),
                200: ok("Finished already, or an Idempotency-Key replay.", V2SubmitBody),
                **errors(400, 401, 403, 406, 409, 413, 415, 422, 429, 503, body=SegmindErrorBody),
            },
            openapi_extra=request_body(
                schema,
                takes_image=spec.takes_image,
                takes_mask=spec.takes_mask,
                json_only=spec.json_only,
                inline_image=spec.takes_image,
            ),
        )

    @router.post("/{operation}", include_in_schema=False)
    async def unknown_operation(operation: str, acct: Acct) -> None:
        raise NotFound(
            f"There is no operation {operation[:64]!r}.",
            guidance="GET /v1/models lists the operations.",
        )

    @router.get(
        "/requests/{request_id}/status",
        tags=["v2"],
        response_model=None,
        responses={
            200: ok("QUEUED, PROCESSING, COMPLETED or FAILED.", V2StatusBody),
            **errors(400, 401, 404, 429, body=SegmindErrorBody),
        },
    )
    async def request_status(request_id: str, request: Request, acct: Acct) -> JSONResponse:
        job = await gw.get_job(check_job_id(request_id), acct.id)
        if status_of(job) == "completed" and output_expired(job):
            raise NotFound("This request's result has expired.")
        return JSONResponse(v2_status_body(job, gw.base_url(request)))

    @router.get(
        "/requests/{request_id}",
        tags=["v2"],
        response_model=None,
        responses={
            200: ok("COMPLETED: the result.", V2ResultBody),
            202: ok("Not finished yet: the status body.", V2StatusBody),
            **errors(400, 401, 404, 429, body=SegmindErrorBody),
            422: {
                "description": "FAILED: the job's error code in `detail.error`, its message "
                "in `error`, with `request_id` and `status`.",
                "model": SegmindErrorBody,
            },
        },
    )
    async def request_result(request_id: str, request: Request, acct: Acct) -> JSONResponse:
        job = await gw.get_job(check_job_id(request_id), acct.id)
        status = status_of(job)
        base = gw.base_url(request)
        if status == "completed":
            if output_expired(job):
                raise NotFound("This request's result has expired.")
            return JSONResponse(v2_result_body(job, base, gw.settings.signing_secret))
        if status in ("failed", "blocked", "canceled"):
            raise request_failed(job, base)
        return JSONResponse(v2_status_body(job, base), status_code=202)

    return router
