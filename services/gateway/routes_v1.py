"""/v1: PixelAPI's shape. Submit an operation, poll or cancel the job, read the
account and the model catalog."""

# No `from __future__ import annotations`: FastAPI resolves annotations from module
# globals, and the routes' Annotated[Account, Depends(auth)] is a local.
import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from lightbox.v1 import accounts_pb2, jobs_pb2
from starlette.concurrency import run_in_threadpool

from services.common.errors import NotFound
from services.gateway.auth import Account, Authenticator
from services.gateway.catalog import MEDIA_PATHS, Catalog, CatalogBody
from services.gateway.context import Gateway
from services.gateway.openapi import errors, ok, request_body
from services.gateway.submit import MEDIA_OPERATIONS, OPERATIONS, OperationSpec, Submitter
from services.gateway.views import (
    TERMINAL,
    BalanceBody,
    ErrorBody,
    JobBody,
    TryOnJobBody,
    UsageBody,
    job_body,
    output_expired,
    status_of,
    tryon_body,
)

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MEDIA_SUMMARY = {
    "audio-generate": "Generate music (MusicGen): a WAV",
    "video-generate": "Generate a video (WAN 2.1): an MP4",
    "virtual-tryon": "Virtual try-on (CatVTON): a PNG",
}


def check_job_id(job_id: str) -> str:
    """Ids are url-safe tokens; anything else is unknown without asking the store."""
    if not _JOB_ID.match(job_id):
        raise NotFound("No such job.")
    return job_id


def v1_router(
    gw: Gateway, auth: Authenticator, submitter: Submitter, catalog: Catalog
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Acct = Annotated[Account, Depends(auth)]

    def submit_route(spec: OperationSpec) -> Callable[..., Awaitable[JSONResponse]]:
        async def endpoint(request: Request, acct: Acct) -> JSONResponse:
            done = await submitter.submit(request, spec, acct, v2=False)
            body = job_body(done.job, gw.base_url(request), gw.settings.signing_secret)
            status = 200 if done.replayed or body["status"] in TERMINAL else 202
            headers = {"Preference-Applied": f"wait={done.waited}"} if done.waited else None
            return JSONResponse(body, status_code=status, headers=headers)

        return endpoint

    for name, spec in OPERATIONS.items():
        doc = request_body(
            spec.schema,
            takes_image=spec.takes_image,
            takes_mask=spec.takes_mask,
            json_only=spec.json_only,
        )
        router.add_api_route(
            f"/image/{name}",
            submit_route(spec),
            methods=["POST"],
            name=f"submit_{name.replace('-', '_')}",
            summary=f"Submit {name}",
            description=(spec.schema.__doc__ or "").strip() or None,
            tags=["images"],
            status_code=202,
            response_model=None,
            responses={
                202: ok("Queued: the job body.", JobBody),
                200: ok(
                    "Finished within Prefer: wait, blocked at submit, or an "
                    "Idempotency-Key replay: the job body.",
                    JobBody,
                ),
                **errors(400, 401, 402, 403, 409, 413, 415, 422, 429, 503),
            },
            openapi_extra=doc,
        )

    media_errors = {
        "audio-generate": errors(400, 401, 402, 403, 409, 413, 415, 422, 429, 503),
        "video-generate": errors(400, 401, 402, 403, 409, 413, 415, 422, 429, 503),
        "virtual-tryon": {
            **errors(400, 401, 402, 403, 409, 413, 415, 429, 503),
            422: {
                "description": "A field out of range (`invalid_parameter`), `invalid_category`, "
                "`image_too_small` (a photo under 100 px a side; `received_size`), "
                "`wrong_aspect_ratio` (a landscape person photo), `image_too_large`.",
                "model": ErrorBody,
            },
        },
    }
    for name, spec in MEDIA_OPERATIONS.items():
        router.add_api_route(
            MEDIA_PATHS[name],
            submit_route(spec),
            methods=["POST"],
            name=f"submit_{name.replace('-', '_')}",
            summary=_MEDIA_SUMMARY[name],
            description=(spec.schema.__doc__ or "").strip() or None,
            tags=["audio, video, try-on"],
            status_code=202,
            response_model=None,
            responses={
                202: ok("Queued: the job body.", JobBody),
                200: ok("Finished within Prefer: wait, or an Idempotency-Key replay.", JobBody),
                **media_errors[name],
            },
            openapi_extra=request_body(spec.schema, takes_image=False, json_only=True),
        )

    async def job_of(job_id: str, acct: Account, operation: str) -> jobs_pb2.Job:
        """The job if it is this account's and of `operation`; else the same 404."""
        job = await gw.get_job(check_job_id(job_id), acct.id)
        if job.operation != operation:
            raise NotFound("No such job.")
        return job

    @router.get(
        "/video/{job_id}",
        tags=["audio, video, try-on"],
        summary="A video job",
        description="The job body of a video-generate job (GET /v1/image/{id} answers the "
        "same): output_url is the MP4 once completed.",
        response_model=None,
        responses={200: ok("The job body.", JobBody), **errors(401, 404, 429)},
    )
    async def get_video(job_id: str, request: Request, acct: Acct) -> JSONResponse:
        job = await job_of(job_id, acct, "video-generate")
        return JSONResponse(job_body(job, gw.base_url(request), gw.settings.signing_secret))

    @router.get(
        "/virtual-tryon/jobs/{job_id}",
        tags=["audio, video, try-on"],
        summary="A virtual try-on job",
        description="status queued, processing, completed or failed (or blocked, canceled); "
        "result_image_b64 (PNG) and inference_time_ms once completed; `error` "
        "({error, message}, e.g. body_segmentation_failed) once failed.",
        response_model=None,
        responses={200: ok("The job body with the result.", TryOnJobBody), **errors(401, 404, 429)},
    )
    async def get_tryon(job_id: str, request: Request, acct: Acct) -> JSONResponse:
        job = await job_of(job_id, acct, "virtual-tryon")
        png = None
        if status_of(job) == "completed" and job.output_key and not output_expired(job):
            try:
                png = await run_in_threadpool(gw.blobs.get, job.output_key)
            except NotFound:
                png = None  # deleted by retention: the body says completed, no image
        body = tryon_body(job, gw.base_url(request), gw.settings.signing_secret, png)
        return JSONResponse(body)

    @router.post("/image/{operation}", include_in_schema=False)
    async def unknown_operation(operation: str, acct: Acct) -> None:
        raise NotFound(
            f"There is no operation {operation[:64]!r}.",
            guidance="GET /v1/models lists the operations.",
        )

    @router.get(
        "/image/{job_id}",
        tags=["jobs"],
        response_model=None,
        responses={200: ok("The job body.", JobBody), **errors(401, 404, 429)},
    )
    async def get_job(job_id: str, request: Request, acct: Acct) -> JSONResponse:
        job = await gw.get_job(check_job_id(job_id), acct.id)
        return JSONResponse(job_body(job, gw.base_url(request), gw.settings.signing_secret))

    @router.delete(
        "/image/{job_id}",
        tags=["jobs"],
        response_model=None,
        responses={
            200: ok("Canceled and refunded: the job body.", JobBody),
            **errors(401, 404, 409, 429),
        },
    )
    async def cancel_job(job_id: str, request: Request, acct: Acct) -> JSONResponse:
        job = await gw.call(
            gw.clients.jobs.CancelJob,
            jobs_pb2.CancelJobRequest(job_id=check_job_id(job_id), account_id=acct.id),
        )
        gw.jobs_cache.forget(acct.id, job.id)
        return JSONResponse(job_body(job, gw.base_url(request), gw.settings.signing_secret))

    @router.get(
        "/models",
        tags=["account"],
        response_model=None,
        responses={
            200: ok("Operations, prices, engines and models.", CatalogBody),
            **errors(401, 429, 503),
        },
    )
    async def list_models(acct: Acct) -> JSONResponse:
        return JSONResponse(await catalog.body())

    @router.get(
        "/account/balance",
        tags=["account"],
        response_model=None,
        responses={200: ok("Credits, plan and rate limit.", BalanceBody), **errors(401, 429)},
    )
    async def balance(acct: Acct) -> JSONResponse:
        b = await gw.call(
            gw.clients.accounts.GetBalance, accounts_pb2.GetBalanceRequest(account_id=acct.id)
        )
        return JSONResponse(
            {
                "credits_remaining": round(b.credits_remaining, 4),
                "plan": b.plan,
                "rate_limit_per_minute": b.rate_limit_per_minute,
            }
        )

    @router.get(
        "/account/usage",
        tags=["account"],
        response_model=None,
        responses={
            200: ok("This account's jobs, newest first.", UsageBody),
            **errors(401, 422, 429),
        },
    )
    async def usage(
        request: Request,
        acct: Acct,
        limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page, 1-100.")] = 20,
        cursor: Annotated[
            str, Query(max_length=512, description="next_cursor from the previous page.")
        ] = "",
    ) -> JSONResponse:
        resp = await gw.call(
            gw.clients.jobs.ListJobs,
            jobs_pb2.ListJobsRequest(account_id=acct.id, limit=limit, cursor=cursor),
        )
        base = gw.base_url(request)
        return JSONResponse(
            {
                "jobs": [job_body(j, base, gw.settings.signing_secret) for j in resp.jobs],
                "next_cursor": resp.next_cursor or None,
            }
        )

    return router
