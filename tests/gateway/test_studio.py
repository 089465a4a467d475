"""The studio's routes without a stack: the dev key is offered only in local mode,
to a loopback client that addressed a loopback name; `/` and its assets carry the
studio's security headers; /docs loads nothing from outside the server."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from starlette.requests import Request

from services.common.errors import LightboxError
from services.gateway.openapi import _inline, install_docs
from services.gateway.studio import install_studio, local_dev_key

KEY = "lb_live_test_0123456789"


def gateway(home: Path, mode: str = "local") -> SimpleNamespace:
    return SimpleNamespace(settings=SimpleNamespace(mode=mode, home=home))


def request(client: str, host: str) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/studio/dev-key",
        "headers": [(b"host", host.encode())],
        "client": (client, 50000),
        "query_string": b"",
    }
    return Request(scope)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "dev-api-key").write_text(KEY + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("client", "host"),
    [
        ("127.0.0.1", "127.0.0.1:8080"),
        ("127.0.0.1", "localhost:8080"),
        ("::1", "[::1]:8080"),
        ("127.0.0.1", "localhost"),
    ],
)
def test_dev_key_for_loopback_in_local_mode(home: Path, client: str, host: str) -> None:
    assert local_dev_key(gateway(home), request(client, host)) == KEY


@pytest.mark.parametrize(
    ("mode", "client", "host", "why"),
    [
        ("production", "127.0.0.1", "127.0.0.1:8080", "production mode"),
        ("local", "192.168.1.20", "127.0.0.1:8080", "a client on the network"),
        ("local", "127.0.0.1", "studio.example.com:8080", "DNS rebinding: a foreign name"),
        ("local", "127.0.0.1", "localhost.example.com", "a name that only starts like one"),
        ("local", "127.0.0.1", "", "no Host header"),
    ],
)
def test_no_dev_key_otherwise(home: Path, mode: str, client: str, host: str, why: str) -> None:
    assert local_dev_key(gateway(home, mode), request(client, host)) is None, why


def test_no_dev_key_without_the_file(tmp_path: Path) -> None:
    assert local_dev_key(gateway(tmp_path), request("127.0.0.1", "127.0.0.1")) is None


def app_with_studio(home: Path, mode: str = "local") -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)
    # As create_app maps them (services/gateway/app.py).
    app.add_exception_handler(
        LightboxError, lambda _, exc: JSONResponse(exc.body(), status_code=exc.http_status)
    )
    install_docs(app)
    install_studio(app, gateway(home, mode))  # type: ignore[arg-type]
    return app


def test_studio_page_and_assets(home: Path) -> None:
    client = TestClient(
        app_with_studio(home), base_url="http://127.0.0.1:8080", client=("127.0.0.1", 50000)
    )
    page = client.get("/")
    assert page.status_code == 200 and "Lightbox Studio" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    # Every script and stylesheet the page names is served by the gateway itself.
    assets = re.findall(r'(?:src|href)="(/studio/[^"]+)"', page.text)
    assert len(assets) >= 3
    for path in assets:
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text)
    assert client.get("/studio/js/app.js").headers["content-type"].startswith("text/javascript")
    # The dev key: for this loopback client, not for one calling from elsewhere.
    assert client.get("/studio/dev-key").json() == {"key": KEY}
    remote = TestClient(
        app_with_studio(home), base_url="http://127.0.0.1:8080", client=("10.1.2.3", 50000)
    )
    r = remote.get("/studio/dev-key")
    assert r.status_code == 404 and r.json()["detail"]["error"] == "not_found"
    assert client.get("/studio/../dev-api-key").status_code == 404


def test_docs_use_local_swagger_ui(home: Path) -> None:
    client = TestClient(app_with_studio(home))
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/docs/assets/") for u in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert "validatorUrl" in page.text and "cdn" not in page.text.lower()


def test_inlined_refs_keep_the_fields_default_and_description() -> None:
    defs = {"Shadow": {"enum": ["soft", "hard"], "type": "string"}}
    prop = {"$ref": "#/$defs/Shadow", "default": "soft", "description": "Shadow type."}
    assert _inline(prop, defs) == {
        "enum": ["soft", "hard"],
        "type": "string",
        "default": "soft",
        "description": "Shadow type.",
    }
