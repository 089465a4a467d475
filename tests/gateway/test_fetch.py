"""image_url / webhook_url safety: address rules, URL forms, redirects and caps,
against a real local listener that records whether anything reached it."""

import asyncio

import pytest

from services.common.errors import LightboxError
from services.gateway import fetch
from services.gateway.fetch import address_allowed, check_public_url, fetch_public_url
from tests.gateway.localserver import Answer, local_server


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",
        "198.18.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fec0::1",
        "ff02::1",
        # IPv4 inside IPv6: mapped, compatible, NAT64, 6to4, Teredo.
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:1",
        "64:ff9b:1::808:808",
        "2002:7f00:1::1",
        "2002:a00:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "not-an-address",
    ],
)
def test_internal_addresses_refused(ip: str) -> None:
    assert not address_allowed(ip)


@pytest.mark.parametrize(
    "ip", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_allowed(ip: str) -> None:
    assert address_allowed(ip)


def test_loopback_only_by_setting() -> None:
    assert address_allowed("127.0.0.1", allow_loopback=True)
    assert address_allowed("::ffff:127.0.0.1", allow_loopback=True)
    assert not address_allowed("10.0.0.1", allow_loopback=True)
    assert not address_allowed("169.254.169.254", allow_loopback=True)


def _code(url: str, max_bytes: int = 10_000, allow_loopback: bool = False) -> str:
    with pytest.raises(LightboxError) as err:
        asyncio.run(fetch_public_url(url, max_bytes=max_bytes, allow_loopback=allow_loopback))
    return err.value.code


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x.png",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:pw@example.com/x.png",
        "http:///x.png",
        "http://example.com:99999/x",
        "http://[::1/x.png",
        "http://" + "a" * 2100 + ".com/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::]/",
        "http://0.0.0.0/",
        "http://[fe80::1%25eth0]/",
        "http://[64:ff9b::a9fe:a9fe]/",
    ],
)
def test_refused_urls(url: str) -> None:
    assert _code(url) == "image_url_not_allowed"


LOCAL_FORMS = [
    "http://127.0.0.1:{port}/img",
    "http://localhost:{port}/img",
    "http://2130706433:{port}/img",  # decimal
    "http://0x7f.0.0.1:{port}/img",  # hex
    "http://0177.0.0.1:{port}/img",  # octal
    "http://127.1:{port}/img",  # short form
    "http://[::ffff:127.0.0.1]:{port}/img",
    "http://[::ffff:7f00:1]:{port}/img",
    "http://[::1]:{port}/img",
    "http://[::127.0.0.1]:{port}/img",
    "HTTP://LOCALHOST:{port}/img",
]


@pytest.mark.parametrize("form", LOCAL_FORMS)
def test_local_listener_never_reached_without_loopback(form: str) -> None:
    with local_server() as server:
        server.routes["/img"] = Answer(200, b"\x89PNG fake")
        code = _code(form.format(port=server.port))
        assert code in ("image_url_not_allowed", "image_fetch_failed")
        assert server.received == []


def test_fetch_with_loopback_allowed() -> None:
    with local_server() as server:
        server.routes["/img"] = Answer(200, b"image bytes", {"Content-Type": "image/png"})
        data = asyncio.run(fetch_public_url(server.url("/img"), 1000, allow_loopback=True))
        assert data == b"image bytes"
        assert [r.path for r in server.received] == ["/img"]
        assert server.received[0].headers["Host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/img",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/x",
        "file:///etc/passwd",
        "http://2130706433/x",
    ],
)
def test_redirects_are_checked_again(target: str) -> None:
    with local_server() as server:
        server.routes["/start"] = Answer(302, b"", {"Location": target})
        assert _code(server.url("/start"), allow_loopback=True) == "image_url_not_allowed"
        assert [r.path for r in server.received] == ["/start"]


def test_redirects_followed_at_most_three_times() -> None:
    with local_server() as server:
        for i in range(5):
            server.routes[f"/r{i}"] = Answer(301, b"", {"Location": f"/r{i + 1}"})
        server.routes["/r5"] = Answer(200, b"never")
        assert _code(server.url("/r0"), allow_loopback=True) == "image_url_not_allowed"
        assert len(server.received) == 4
        server.routes["/ok0"] = Answer(307, b"", {"Location": server.url("/ok1")})
        server.routes["/ok1"] = Answer(200, b"fine")
        assert (
            asyncio.run(fetch_public_url(server.url("/ok0"), 100, allow_loopback=True)) == b"fine"
        )


def test_size_cap_and_error_statuses() -> None:
    with local_server() as server:
        server.routes["/big"] = Answer(200, b"x" * 5000)
        server.routes["/gone"] = Answer(410, b"gone")
        assert _code(server.url("/big"), max_bytes=1000, allow_loopback=True) == "file_too_large"
        assert _code(server.url("/gone"), allow_loopback=True) == "image_fetch_failed"
        assert _code(server.url("/missing"), allow_loopback=True) == "image_fetch_failed"


def test_time_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "TIMEOUT_S", 0.3)
    with local_server() as server:
        server.routes["/slow"] = Answer(200, b"late", delay=1.5)
        assert _code(server.url("/slow"), allow_loopback=True) == "image_fetch_failed"


def test_webhook_urls_use_the_same_rules() -> None:
    with local_server() as server:
        url = server.url("/hook")
        with pytest.raises(LightboxError) as err:
            asyncio.run(check_public_url(url))
        assert err.value.code == "image_url_not_allowed"
        assert err.value.extra["field"] == "webhook_url"
        assert asyncio.run(check_public_url(url, allow_loopback=True)) == url
        for bad in ("ftp://x.example/", "http://10.0.0.1/hook", "http://0x7f.1/hook"):
            with pytest.raises(LightboxError) as err:
                asyncio.run(check_public_url(bad, allow_loopback=True))
            assert err.value.code == "image_url_not_allowed"
        # Vetting a webhook never calls it.
        assert server.received == []
