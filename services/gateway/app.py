"""The public REST API (API.md): authentication, limits, validation, uploads and
signed output links, in front of the jobs service over gRPC. No pixel work and
no SQL happen here. This module wires the pieces; the routes live in
routes_v1 (PixelAPI's shape), routes_v2 (Segmind's) and routes_operator."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.errors import LightboxError
from services.gateway.auth import Authenticator
from services.gateway.catalog import Catalog
from services.gateway.context import Gateway
from services.gateway.limits import BodyLimitMiddleware
from services.gateway.middleware import RequestContextMiddleware
from services.gateway.openapi import install_docs, with_error_bodies
from services.gateway.routes_catalog import catalog_router
from services.gateway.routes_operator import operator_router
from services.gateway.routes_segmind import segmind_sync_router
from services.gateway.routes_v1 import v1_router
from services.gateway.routes_v2 import v2_router
from services.gateway.settings import GatewaySettings
from services.gateway.studio import install_studio
from services.gateway.submit import Submitter, validation_error

log = logging.getLogger(__name__)

DESCRIPTION = """\
Self-hosted AI product photography.

* **/v1** is PixelAPI's shape: `POST /v1/image/{operation}` answers a job body
  (`generation_id`, `status`); poll `GET /v1/image/{id}` until `completed`, then
  download `output_url` (signed, expiring, no key needed).
* **/v2** is Segmind's async shape: `POST /v2/{operation}` answers `request_id`,
  `status_url` and `response_url`.

Send the image as a multipart file field `image`, or as `image_url` in a JSON body
(http/https, public addresses only). JPEG, PNG or WebP by content; at most 10 MB
and 4096 px a side (after EXIF orientation), at least 16 px.

Every error is `{"detail": {"error", "message", "guidance"}}`; every response
carries `X-Request-ID` and `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
"""


def _error_response(err: LightboxError) -> JSONResponse:
    headers: dict[str, str] = {}
    if err.http_status in (429, 503):
        headers["Retry-After"] = str(err.extra.get("retry_after", 5))
    if err.http_status == 413:
        # The rest of an oversize body is not wanted: close rather than read it
        # (a client still streaming sees the answer and a closed connection).
        headers["Connection"] = "close"
    return JSONResponse(err.body(), status_code=err.http_status, headers=headers)


def create_app(settings: GatewaySettings) -> FastAPI:
    gw = Gateway(settings)
    auth = Authenticator(gw)
    submitter = Submitter(gw)
    catalog = Catalog(gw)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        yield
        await gw.stop()

    app = FastAPI(
        title="Lightbox",
        version="1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is served from local files (install_docs); FastAPI's pages use a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = gw
    # Added last = outermost: the request context sees (and labels) the 413s too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + 256 * 1024)
    app.add_middleware(RequestContextMiddleware, gateway=gw)

    @app.exception_handler(LightboxError)
    async def on_domain_error(request: Request, exc: LightboxError) -> JSONResponse:
        if exc.http_status >= 500 and exc.code not in ("model_unavailable", "overloaded"):
            log.warning("%s %s: %s: %s", request.method, request.url.path, exc.code, exc)
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        err = LightboxError(str(exc.detail), code=code, guidance="See /docs for the API.")
        headers: dict[str, Any] = dict(exc.headers or {})
        return JSONResponse(err.body(), status_code=exc.status_code, headers=headers)

    # First: its fixed paths (/v1/profiles, /v1/uploads, /v1/batches) must win over
    # any /v1/{name} pattern of the other routers.
    app.include_router(catalog_router(gw, auth, submitter))
    app.include_router(v1_router(gw, auth, submitter, catalog))
    app.include_router(v2_router(gw, auth, submitter))
    app.include_router(operator_router(gw))
    app.include_router(segmind_sync_router(gw, auth, submitter))
    install_docs(app)
    install_studio(app, gw)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_error_bodies(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
