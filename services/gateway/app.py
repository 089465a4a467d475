"""The public REST API (API.md): authentication, limits, validation, uploads and
signed output links, in front of the jobs service over gRPC. No pixel work and
no SQL happen here."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import mimetypes
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from google.protobuf import struct_pb2
from lightbox.v1 import accounts_pb2, jobs_pb2
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.concurrency import run_in_threadpool

from services.common import imageio, models
from services.common.blobstore import LocalBlobStore, is_valid_key
from services.common.errors import (
    InvalidParameter,
    LightboxError,
    NotFound,
    Unauthorized,
)
from services.common.logs import request_id
from services.gateway import signing
from services.gateway.clients import Clients
from services.gateway.limits import BodyLimitMiddleware
from services.gateway.ratelimit import Decision, make_limiter
from services.gateway.schemas import (
    ProductPhotoParams,
    RemoveBackgroundParams,
    ReplaceBackgroundParams,
)
from services.gateway.settings import GatewaySettings
from services.gateway.views import TERMINAL, job_body

log = logging.getLogger(__name__)

IMAGE_FIELDS = ("image", "mask")


def _error_response(err: LightboxError, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if err.http_status in (429, 503):
        headers.setdefault("Retry-After", str(err.extra.get("retry_after", 5)))
    return JSONResponse(err.body(), status_code=err.http_status, headers=headers)


def _validation_error(exc: ValidationError | RequestValidationError) -> InvalidParameter:
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    field = ".".join(loc) or "request"
    msg = first.get("msg", "invalid value").removeprefix("Value error, ")
    return InvalidParameter(field, f"{field}: {msg}" if loc else msg)


class Account(BaseModel):
    id: str
    plan: str
    rate_limit_per_minute: int
    allowed_operations: list[str]
    key_id: str


def create_app(settings: GatewaySettings) -> FastAPI:
    clients_holder: dict[str, Clients] = {}
    blobs = LocalBlobStore(settings.blob_root)
    limiter = make_limiter(settings.redis_url)
    auth_cache: dict[str, tuple[float, Account]] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        clients_holder["c"] = Clients(
            settings.jobs_addr, settings.compositor_addr, settings.grpc_timeout_seconds
        )
        yield
        await clients_holder["c"].close()

    app = FastAPI(
        title="Lightbox",
        version="1.0",
        description="Self-hosted AI product photography. See README for the full guide.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + 256 * 1024)

    def clients() -> Clients:
        return clients_holder["c"]

    def base_url(request: Request) -> str:
        return settings.public_base_url or str(request.base_url)

    # -- cross-cutting: request ids, rate-limit headers, errors ----------------------------

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Any]]
    ) -> Any:
        rid = request.headers.get("x-request-id", "")[:128] or secrets.token_hex(12)
        token = request_id.set(rid)
        try:
            response = await call_next(request)
        finally:
            request_id.reset(token)
        decision: Decision | None = getattr(request.state, "rate", None)
        if decision is None:
            client = request.client.host if request.client else "unknown"
            decision = limiter.hit(f"ip:{client}", settings.anonymous_rate_limit_per_minute)
        response.headers["X-Request-ID"] = rid
        response.headers["X-RateLimit-Limit"] = str(decision.limit)
        response.headers["X-RateLimit-Remaining"] = str(decision.remaining)
        response.headers["X-RateLimit-Reset"] = str(decision.reset_seconds)
        return response

    @app.exception_handler(LightboxError)
    async def on_domain_error(request: Request, exc: LightboxError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        err = LightboxError(str(exc.detail), code=code, guidance="See /docs for the API.")
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = LightboxError("Internal error.", code="internal_error")
        return JSONResponse(err.body(), status_code=500)

    # -- auth ------------------------------------------------------------------------------

    async def account(request: Request) -> Account:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key or len(key) > 256:
            raise Unauthorized("Missing or malformed Authorization header.")
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = auth_cache.get(digest)
        if cached and cached[0] > time.monotonic():
            acct = cached[1]
        else:
            resp = await clients().call(
                clients().accounts.Authenticate, accounts_pb2.AuthenticateRequest(api_key=key)
            )
            acct = Account(
                id=resp.id,
                plan=resp.plan,
                rate_limit_per_minute=resp.rate_limit_per_minute,
                allowed_operations=list(resp.allowed_operations),
                key_id=resp.key_id,
            )
            if len(auth_cache) > 10_000:
                auth_cache.clear()
            auth_cache[digest] = (time.monotonic() + settings.auth_cache_seconds, acct)
        decision = limiter.hit(f"key:{acct.key_id}", acct.rate_limit_per_minute)
        request.state.rate = decision
        if not decision.allowed:
            raise LightboxError(
                f"Rate limit of {decision.limit} requests per minute exceeded.",
                code="rate_limited",
                guidance=f"Retry after {decision.reset_seconds} seconds.",
                extra={"retry_after": decision.reset_seconds},
            )
        return acct

    # -- health ----------------------------------------------------------------------------

    @app.get("/healthz", tags=["operator"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operator"])
    async def readyz() -> JSONResponse:
        c = clients()

        async def triton() -> bool:
            # Up, and serving at least one matting engine (the first stage of everything).
            base = f"http://{settings.triton_http_host}:{settings.triton_http_port}/v2"
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    if (await client.get(f"{base}/health/live")).status_code != 200:
                        return False
                    for model in (models.MATTING_BIREFNET, models.MATTING_CLASSICAL):
                        if (await client.get(f"{base}/models/{model}/ready")).status_code == 200:
                            return True
            except httpx.HTTPError:
                return False
            return False

        async def storage() -> bool:
            try:
                await run_in_threadpool(blobs.check)
                return True
            except OSError:
                return False

        names = ["jobs", "database", "compositor", "triton", "storage"]
        results = await asyncio.gather(
            c.healthy("jobs", "lightbox.v1.JobService"),
            c.healthy("jobs", "lightbox.v1.Database"),
            c.healthy("compositor"),
            triton(),
            storage(),
        )
        checks = {n: "ok" if r else "unavailable" for n, r in zip(names, results, strict=True)}
        ok = all(results)
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    # -- submitting ------------------------------------------------------------------------

    async def read_request(request: Request) -> tuple[dict[str, Any], dict[str, bytes], str | None]:
        """(fields, uploaded files by name, image_url) from multipart or JSON."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            try:
                form = await request.form(max_files=len(IMAGE_FIELDS), max_fields=64)
            except LightboxError:
                raise
            except Exception as exc:
                raise LightboxError(
                    f"The multipart body could not be parsed: {exc}.",
                    code="invalid_request",
                    guidance="Send multipart/form-data with an 'image' file field.",
                ) from None
            fields: dict[str, Any] = {}
            files: dict[str, bytes] = {}
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if name not in IMAGE_FIELDS:
                        raise InvalidParameter(name, f"Unexpected file field {name!r}.")
                    data = await value.read(settings.max_upload_bytes + 1)
                    if len(data) > settings.max_upload_bytes:
                        raise _too_large(settings.max_upload_bytes)
                    files[name] = data
                else:
                    fields[name] = value
            url = fields.pop("image_url", None) or None
            return fields, files, url
        if ctype == "application/json":
            try:
                body = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise LightboxError(
                    "The body is not valid JSON.",
                    code="invalid_request",
                    guidance="Send a JSON object.",
                ) from None
            if not isinstance(body, dict):
                raise LightboxError(
                    "The JSON body must be an object.", code="invalid_request",
                    guidance="Send a JSON object with image_url and the operation's fields.",
                )
            url = body.pop("image_url", None)
            if url is not None and not isinstance(url, str):
                raise InvalidParameter("image_url", "image_url must be a string.")
            if "image" in body:
                raise LightboxError(
                    "JSON bodies take image_url; upload files with multipart/form-data.",
                    code="invalid_request",
                    guidance="Send the file as multipart field 'image', or a URL as image_url.",
                )
            return body, {}, url or None
        raise LightboxError(
            f"Content type {ctype or 'none'!r} is not accepted here.",
            code="unsupported_media_type",
            guidance="Use multipart/form-data (file upload) or application/json (image_url).",
        )

    async def submit(
        request: Request, operation: str, schema: type[Any], acct: Account
    ) -> JSONResponse:
        if acct.allowed_operations and operation not in acct.allowed_operations:
            raise LightboxError(
                f"This key may not use {operation}.",
                code="forbidden",
                guidance="Ask the operator for a key that allows this operation.",
            )
        idem = request.headers.get("idempotency-key")
        if idem is not None and not (1 <= len(idem) <= 255):
            raise InvalidParameter("Idempotency-Key", "Idempotency-Key must be 1-255 characters.")
        wait = _prefer_wait(request.headers.get("prefer", ""), settings.max_wait_seconds)

        fields, files, image_url = await read_request(request)
        if "image" in files and image_url:
            raise LightboxError(
                "Send either an image file or image_url, not both.",
                code="ambiguous_image",
                guidance="Remove one of 'image' and 'image_url'.",
            )
        if "image" not in files and not image_url:
            raise LightboxError(
                "No input image.",
                code="image_required",
                guidance="Upload the file as multipart field 'image', or send image_url in JSON.",
            )
        try:
            params = schema.model_validate(fields)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        if image_url:
            data = await fetch_image(image_url)
        else:
            data = files["image"]
        info = await run_in_threadpool(imageio.verify, data)

        image_key = await run_in_threadpool(blobs.put, data, "inputs", "." + info.format)
        job_params = params.job_params()
        fingerprint = hashlib.sha256(
            json.dumps([operation, job_params, hashlib.sha256(data).hexdigest()],
                       sort_keys=True).encode()
        ).hexdigest()
        struct = struct_pb2.Struct()
        struct.update(job_params)
        try:
            resp = await clients().call(
                clients().jobs.SubmitJob,
                jobs_pb2.SubmitJobRequest(
                    account_id=acct.id,
                    operation=operation,
                    params=struct,
                    inputs={"image": image_key},
                    idempotency_key=idem or "",
                    request_fingerprint=fingerprint,
                    webhook_url=params.webhook_url or "",
                ),
            )
        except BaseException:
            blobs.delete(image_key)
            raise
        if resp.replayed:
            blobs.delete(image_key)
        job = resp.job
        if wait > 0 and job.status not in (jobs_pb2.JOB_STATUS_COMPLETED,):
            job = await wait_for(job, acct, wait)
        body = job_body(job, base_url(request), settings.signing_secret)
        status = 200 if resp.replayed or body["status"] in TERMINAL else 202
        headers = {"Preference-Applied": f"wait={wait}"} if wait else {}
        return JSONResponse(body, status_code=status, headers=headers)

    async def wait_for(job: jobs_pb2.Job, acct: Account, seconds: int) -> jobs_pb2.Job:
        deadline = time.monotonic() + seconds
        delay = 0.05
        while time.monotonic() < deadline:
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)
            job = await clients().call(
                clients().jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job.id, account_id=acct.id)
            )
            if job.status in (
                jobs_pb2.JOB_STATUS_COMPLETED,
                jobs_pb2.JOB_STATUS_FAILED,
                jobs_pb2.JOB_STATUS_BLOCKED,
                jobs_pb2.JOB_STATUS_CANCELED,
            ):
                break
        return job

    async def fetch_image(url: str) -> bytes:
        from services.gateway.fetch import fetch_public_url

        return await fetch_public_url(
            url, max_bytes=settings.max_upload_bytes, allow_loopback=settings.allow_loopback_urls
        )

    @app.post("/v1/image/product-photo", status_code=202, tags=["images"],
              openapi_extra=_request_doc(ProductPhotoParams))
    async def product_photo(request: Request, acct: Account = Depends(account)) -> JSONResponse:
        return await submit(request, "product-photo", ProductPhotoParams, acct)

    @app.post("/v1/image/remove-background", status_code=202, tags=["images"],
              openapi_extra=_request_doc(RemoveBackgroundParams))
    async def remove_background(
        request: Request, acct: Account = Depends(account)
    ) -> JSONResponse:
        return await submit(request, "remove-background", RemoveBackgroundParams, acct)

    @app.post("/v1/image/replace-background", status_code=202, tags=["images"],
              openapi_extra=_request_doc(ReplaceBackgroundParams))
    async def replace_background(
        request: Request, acct: Account = Depends(account)
    ) -> JSONResponse:
        return await submit(request, "replace-background", ReplaceBackgroundParams, acct)

    # -- jobs ------------------------------------------------------------------------------

    @app.get("/v1/image/{job_id}", tags=["jobs"])
    async def get_job(job_id: str, request: Request, acct: Account = Depends(account)) -> dict:
        job = await clients().call(
            clients().jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job_id[:128], account_id=acct.id)
        )
        return job_body(job, base_url(request), settings.signing_secret)

    @app.delete("/v1/image/{job_id}", tags=["jobs"])
    async def cancel_job(job_id: str, request: Request, acct: Account = Depends(account)) -> dict:
        job = await clients().call(
            clients().jobs.CancelJob,
            jobs_pb2.CancelJobRequest(job_id=job_id[:128], account_id=acct.id),
        )
        return job_body(job, base_url(request), settings.signing_secret)

    @app.get("/v1/account/balance", tags=["account"])
    async def balance(acct: Account = Depends(account)) -> dict:
        b = await clients().call(
            clients().accounts.GetBalance, accounts_pb2.GetBalanceRequest(account_id=acct.id)
        )
        return {
            "credits_remaining": round(b.credits_remaining, 4),
            "plan": b.plan,
            "rate_limit_per_minute": b.rate_limit_per_minute,
        }

    @app.get("/v1/account/usage", tags=["account"])
    async def usage(
        request: Request, limit: int = 20, cursor: str = "", acct: Account = Depends(account)
    ) -> dict:
        if not 1 <= limit <= 100:
            raise InvalidParameter("limit", "limit must be between 1 and 100.")
        resp = await clients().call(
            clients().jobs.ListJobs,
            jobs_pb2.ListJobsRequest(account_id=acct.id, limit=limit, cursor=cursor[:512]),
        )
        return {
            "jobs": [job_body(j, base_url(request), settings.signing_secret) for j in resp.jobs],
            "next_cursor": resp.next_cursor or None,
        }

    # -- output links (no key: the signature is the credential) ------------------------------

    @app.get("/v1/files/{key:path}", tags=["jobs"], include_in_schema=True)
    async def output_file(key: str, expires: int = 0, signature: str = "") -> FileResponse:
        if not is_valid_key(key) or not key.startswith("outputs/"):
            raise NotFound("No such file.")
        verdict = signing.check(settings.signing_secret, key, expires, signature)
        if verdict == "invalid":
            raise NotFound("No such file.")
        if verdict == "expired":
            raise LightboxError(
                "This link has expired.",
                code="link_expired",
                guidance="Fetch the job again for a fresh link, or resubmit if it was deleted.",
            )
        path = blobs.path(key)
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    return app


def _too_large(limit: int) -> LightboxError:
    return LightboxError(
        f"The upload is over the {limit // (1024 * 1024)} MB limit.",
        code="file_too_large",
        guidance="Send a smaller file (resize or recompress it).",
        extra={"max_bytes": limit},
    )


def _prefer_wait(header: str, cap: int) -> int:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return max(0, min(int(value.strip()), cap))
            except ValueError:
                raise InvalidParameter("Prefer", "Prefer: wait=N needs an integer N.") from None
    return 0


def _request_doc(schema: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI request bodies for both submission forms, from the schema itself."""
    fields = schema.model_json_schema()
    multipart = dict(fields)
    multipart["properties"] = {
        "image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP, <= 10 MB"},
        **fields.get("properties", {}),
    }
    multipart["required"] = ["image", *fields.get("required", [])]
    as_json = dict(fields)
    as_json["properties"] = {
        "image_url": {"type": "string", "format": "uri", "description": "http(s) URL of the image"},
        **fields.get("properties", {}),
    }
    as_json["required"] = ["image_url", *fields.get("required", [])]
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": as_json},
            },
        }
    }
