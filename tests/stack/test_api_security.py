"""image_url / webhook_url safety through the gateway, signed links, account
isolation of outputs, and the production signing-secret guard."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.gateway.localserver import Answer, LocalServer, local_server
from tests.gateway.stackutil import (
    REPO,
    Key,
    Process,
    error_of,
    make_key,
    poll,
    product,
    service,
    stack_env,
)
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=500)


@pytest.fixture()
def listener() -> Iterator[LocalServer]:
    with local_server() as server:
        server.routes["/photo.png"] = Answer(200, product(), {"Content-Type": "image/png"})
        yield server


@pytest.fixture(scope="module")
def loopback_gateway(sqlite_stack: RunningStack) -> Iterator[Process]:
    """A second gateway on the same stack that may fetch from 127.0.0.1 (tests only)."""
    with service(sqlite_stack, "gateway", LIGHTBOX_ALLOW_LOOPBACK_URLS="true") as gw:
        yield gw


LOCAL_FORMS = [
    "http://127.0.0.1:{port}/photo.png",
    "http://localhost:{port}/photo.png",
    "http://2130706433:{port}/photo.png",
    "http://0x7f000001:{port}/photo.png",
    "http://017700000001:{port}/photo.png",
    "http://127.1:{port}/photo.png",
    "http://[::ffff:127.0.0.1]:{port}/photo.png",
    "http://[::1]:{port}/photo.png",
    "http://[::127.0.0.1]:{port}/photo.png",
]


@pytest.mark.parametrize("form", LOCAL_FORMS)
def test_image_url_cannot_reach_loopback(
    sqlite_stack: RunningStack, key: Key, listener: LocalServer, form: str
) -> None:
    url = form.format(port=listener.port)
    for path, body in (
        ("/v1/image/remove-background", {"image_url": url}),
        ("/v2/ai-product-photography", {"image": url}),
    ):
        r = requests.post(sqlite_stack.url + path, headers=key.headers, json=body, timeout=30)
        assert r.status_code == 400, r.text
        assert error_of(r) in ("image_url_not_allowed", "image_fetch_failed")
    assert listener.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.png",
        "http://[fd00::1]/x.png",
        "ftp://example.com/x.png",
        "file:///etc/passwd",
        "http://user:pw@example.com/x.png",
        "gopher://127.0.0.1:70/",
    ],
)
def test_internal_and_odd_urls_refused(sqlite_stack: RunningStack, key: Key, url: str) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=key.headers,
        json={"image_url": url},
        timeout=30,
    )
    assert r.status_code == 400 and error_of(r) == "image_url_not_allowed"
    assert r.json()["detail"]["field"] == "image_url"


def test_webhook_url_follows_the_same_rules(
    sqlite_stack: RunningStack, key: Key, listener: LocalServer
) -> None:
    for hook in (
        listener.url("/hook"),
        "http://169.254.169.254/hook",
        "ftp://example.com/h",
        "http://0x7f.1/hook",
    ):
        r = requests.post(
            f"{sqlite_stack.url}/v1/image/remove-background",
            headers=key.headers,
            files={"image": ("p.png", product())},
            data={"webhook_url": hook},
        )
        assert r.status_code == 400 and error_of(r) == "image_url_not_allowed", r.text
        assert r.json()["detail"]["field"] == "webhook_url"
    assert listener.received == []


def test_image_url_and_webhook_with_loopback_allowed(
    sqlite_stack: RunningStack, loopback_gateway: Process, key: Key, listener: LocalServer
) -> None:
    r = requests.post(
        f"{loopback_gateway.url}/v1/image/remove-background",
        headers=key.headers,
        json={"image_url": listener.url("/photo.png"), "webhook_url": listener.url("/hook")},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    assert [x.path for x in listener.received] == ["/photo.png"]
    assert r.json()["webhook_url"] == listener.url("/hook")
    done = poll(sqlite_stack.url, r.json()["id"], key.headers)
    assert done["status"] == "completed" and (done["width"], done["height"]) == (96, 128)


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.0.0.1/photo.png",
        "http://[::ffff:192.168.0.1]/photo.png",
        "file:///etc/passwd",
    ],
)
def test_redirects_into_the_network_are_refused(
    loopback_gateway: Process, key: Key, listener: LocalServer, target: str
) -> None:
    listener.routes["/go"] = Answer(302, b"", {"Location": target})
    r = requests.post(
        f"{loopback_gateway.url}/v1/image/remove-background",
        headers=key.headers,
        json={"image_url": listener.url("/go")},
        timeout=30,
    )
    assert r.status_code == 400 and error_of(r) == "image_url_not_allowed"
    assert [x.path for x in listener.received] == ["/go"]


def test_fetched_content_is_checked_like_an_upload(
    loopback_gateway: Process, key: Key, listener: LocalServer
) -> None:
    listener.routes["/fake.png"] = Answer(200, b"<html>hi</html>", {"Content-Type": "image/png"})
    listener.routes["/missing.png"] = Answer(404, b"")
    listener.routes["/huge.png"] = Answer(200, b"\0" * (10 * 1024 * 1024 + 1))
    cases = [
        ("/fake.png", 400, "invalid_image"),
        ("/missing.png", 400, "image_fetch_failed"),
        ("/huge.png", 413, "file_too_large"),
    ]
    for path, status, code in cases:
        r = requests.post(
            f"{loopback_gateway.url}/v1/image/remove-background",
            headers=key.headers,
            json={"image_url": listener.url(path)},
            timeout=30,
        )
        assert (r.status_code, error_of(r)) == (status, code), r.text


# -- outputs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def output_url(sqlite_stack: RunningStack, key: Key) -> str:
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=key.h(Prefer="wait=60"),
        files={"image": ("p.png", product())},
    )
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    return str(r.json()["output_url"])


def test_signed_links_need_no_key_and_resist_tampering(output_url: str) -> None:
    r = requests.get(output_url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG")
    base, _, query = output_url.partition("?")
    sig = query.split("signature=")[1]
    expires = int(query.split("expires=")[1].split("&")[0])
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    forged = [
        f"{base}?expires={expires}&signature={flipped}",
        f"{base}?expires={expires + 1}&signature={sig}",
        f"{base}?expires={expires}",
        f"{base}",
        f"{base[:-6]}AAAAAA.png?expires={expires}&signature={sig}",
        f"{base.replace('/outputs/', '/inputs/')}?expires={expires}&signature={sig}",
        f"{base}?expires={expires}&signature={'é' * 64}",
        base.rsplit("/v1/files/", 1)[0] + f"/v1/files/../signing-secret?expires={expires}"
        f"&signature={sig}",
    ]
    for url in forged:
        r = requests.get(url)
        assert r.status_code == 404 and error_of(r) == "not_found", url
    expired = f"{base}?expires=1000&signature={sig}"
    assert requests.get(expired).status_code == 404  # signature covers the expiry


def test_expired_link_is_410(sqlite_stack: RunningStack, output_url: str) -> None:
    from services.gateway import signing
    from services.gateway.settings import GatewaySettings

    secret = GatewaySettings(home=sqlite_stack.home).signing_secret
    key = output_url.split("/v1/files/")[1].split("?")[0]
    r = requests.get(sqlite_stack.url + signing.signed_path(secret, key, 1000))
    assert r.status_code == 410 and error_of(r) == "link_expired"


def test_production_mode_refuses_a_default_secret(sqlite_stack: RunningStack) -> None:
    for secret in ("", "changeme"):
        env = stack_env(
            sqlite_stack,
            LIGHTBOX_MODE="production",
            LIGHTBOX_SIGNING_SECRET=secret,
            LIGHTBOX_HTTP_PORT="1",
        )
        out = subprocess.run(
            [sys.executable, "-m", "services.cli", "serve", "gateway"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0
        assert "LIGHTBOX_SIGNING_SECRET" in out.stderr
