"""services/gateway/segmind.py and routes_segmind.py without a stack: the slug
routes sit at fixed paths that no PixelAPI path shares, and errors on
Segmind-shaped routes carry Segmind's status codes and top-level `error`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from lightbox.v1 import jobs_pb2
from starlette.routing import BaseRoute, Match

from services.common.errors import InsufficientCredits, NotFound
from services.gateway import routes_segmind
from services.gateway.app import create_app
from services.gateway.segmind import (
    PIXELAPI_V1_SEGMENTS,
    SLUGS,
    SegmindShapedError,
    request_failed,
    still_running,
)
from services.gateway.settings import GatewaySettings
from services.gateway.views import v2_status_body

# PixelAPI's paths, offered now or planned by other issues.
PIXELAPI_PATHS = [
    ("POST", "/v1/image/product-photo"),
    ("GET", "/v1/image/abc123"),
    ("GET", "/v1/models"),
    ("GET", "/v1/account/balance"),
    ("GET", "/v1/account/usage"),
    ("GET", "/v1/files/outputs/x.png"),
    ("POST", "/v1/profiles"),
    ("GET", "/v1/profiles/studio"),
    ("POST", "/v1/batches"),
    ("POST", "/v1/uploads"),
    ("GET", "/v1/schemas"),
    ("POST", "/v1/audio/generate"),
    ("POST", "/v1/video/generate"),
    ("POST", "/v1/virtual-tryon"),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    home = tmp_path_factory.mktemp("gateway")
    return create_app(GatewaySettings(home=home, signing_secret="s" * 40))


def flat_routes(routes: list[BaseRoute]) -> list[Any]:
    """The app's routes, those of included routers listed one by one."""
    out: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out.extend(flat_routes(inner.routes) if inner is not None else [route])
    return out


def sync_routes(app: FastAPI) -> list[Any]:
    found = [r for r in flat_routes(app.routes) if (r.name or "").startswith("segmind_sync_")]
    assert found, "no segmind_sync_ routes found in the app"
    return found


def test_sync_routes_are_the_known_slugs_at_fixed_paths(app: FastAPI) -> None:
    routes = sync_routes(app)
    assert sorted(r.path for r in routes) == sorted(f"/v1/{slug}" for slug in SLUGS)
    assert all(r.methods == {"POST"} for r in routes)


def test_no_pixelapi_path_reaches_a_slug_route(app: FastAPI) -> None:
    assert not PIXELAPI_V1_SEGMENTS & SLUGS.keys()
    others = [r for r in flat_routes(app.routes) if not (r.name or "").startswith("segmind_sync_")]
    for route in others:
        if getattr(route, "path", "").startswith("/v1/"):
            assert route.path.split("/")[2] not in SLUGS, route.path
    for method, path in PIXELAPI_PATHS:
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        for route in sync_routes(app):
            assert route.matches(scope)[0] == Match.NONE, (path, route.path)


def test_a_slug_that_would_shadow_pixelapi_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(routes_segmind, "PIXELAPI_V1_SEGMENTS", frozenset({"generate"}))
    with pytest.raises(ValueError, match="generate"):
        create_app(GatewaySettings(home=tmp_path, signing_secret="s" * 40))


def test_insufficient_credits_is_406_with_segmind_error() -> None:
    err = SegmindShapedError(InsufficientCredits("Needs 7 credits; 5 left.", extra={"a": 1}))
    assert err.http_status == 406
    assert err.body() == {
        "detail": {
            "error": "insufficient_credits",
            "message": "Needs 7 credits; 5 left.",
            "guidance": err.guidance,
            "a": 1,
        },
        "error": "Needs 7 credits; 5 left.",
    }
    assert SegmindShapedError(NotFound("No such job.")).http_status == 404


def _job(status: int, **fields: Any) -> jobs_pb2.Job:
    return jobs_pb2.Job(id="j1", status=status, **fields)


def test_failed_request_body() -> None:
    blocked = _job(
        jobs_pb2.JOB_STATUS_BLOCKED,
        error=jobs_pb2.JobError(code="content_blocked", message="The prompt is not allowed."),
    )
    err = request_failed(blocked, "http://h")
    assert err.http_status == 422
    body = err.body()
    assert body["error"] == "The prompt is not allowed." and body["status"] == "FAILED"
    assert body["detail"]["error"] == "content_blocked" and body["request_id"] == "j1"
    # The status body the SDK polls says why, for every way of not completing.
    assert v2_status_body(blocked, "http://h")["error"] == "The prompt is not allowed."
    canceled = v2_status_body(_job(jobs_pb2.JOB_STATUS_CANCELED), "http://h")
    assert canceled["status"] == "FAILED" and canceled["error"] == "The request was canceled."
    assert "error" not in v2_status_body(_job(jobs_pb2.JOB_STATUS_COMPLETED), "http://h")


def test_still_running_body() -> None:
    err = still_running(_job(jobs_pb2.JOB_STATUS_PROCESSING), "http://h", 60)
    assert err.http_status == 504
    body = err.body()
    assert (body["request_id"], body["status"]) == ("j1", "PROCESSING")
    assert body["detail"]["error"] == "still_running"
    assert body["detail"]["status_url"] == "http://h/v2/requests/j1/status"
    assert "60 s" in body["error"]
