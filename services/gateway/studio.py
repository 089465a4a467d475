"""The web studio at `/`: static files served by the gateway itself (no CDN, no
build step), and the one thing the page cannot get from the public API: the
dev key, offered to the browser of the machine that runs a local stack.

The dev key is handed out only when all of these hold: the gateway runs in
local mode, the request comes from a loopback address, and the request was
addressed to a loopback name (so a page on another origin that re-points its
DNS name at 127.0.0.1 still gets nothing). Everywhere else the route answers
the same 404 as an unknown path."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from services.common.errors import NotFound
from services.gateway.context import Gateway

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEV_KEY_FILE = "dev-api-key"  # services/stack.py writes it into LIGHTBOX_HOME
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})

# The studio's own pages: scripts and styles from this origin only; images may be
# anywhere (a pasted image URL is shown as it is; output links may use another base).
# The audio and video players load the signed output links, which this gateway serves
# itself: media from this origin only, said outright rather than left to default-src.
STUDIO_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src * data: blob:; media-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(request: Request) -> str:
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def local_dev_key(gw: Gateway, request: Request) -> str | None:
    """The dev key, if this request may have it (see the module docstring)."""
    settings = gw.settings
    if settings.mode != "local":
        return None
    if request.client is None or not _is_loopback(request.client.host):
        return None
    if _host_name(request) not in LOOPBACK_NAMES:
        return None
    path = settings.home / DEV_KEY_FILE
    try:
        key = path.read_text().strip()
    except OSError:
        return None
    return key or None


class StudioFiles(StaticFiles):
    """StaticFiles with the studio's security headers on every answer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(STUDIO_HEADERS)
        return response


def studio_router(gw: Gateway) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def studio() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=STUDIO_HEADERS)

    @router.get("/studio/dev-key")
    async def dev_key(request: Request) -> JSONResponse:
        key = local_dev_key(gw, request)
        if key is None:
            raise NotFound("Not Found", guidance="Paste an API key into the studio.")
        return JSONResponse({"key": key}, headers={"Cache-Control": "no-store"})

    return router


def install_studio(app: FastAPI, gw: Gateway) -> None:
    """`/` and its assets under `/studio/`."""
    app.include_router(studio_router(gw))
    app.mount("/studio", StudioFiles(directory=STATIC_DIR), name="studio")
