import asyncio

import pytest

from services.common.errors import LightboxError
from services.gateway.fetch import address_allowed, fetch_public_url


@pytest.mark.parametrize(
    "ip",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
     "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "100.64.0.1"],
)
def test_internal_addresses_refused(ip: str) -> None:
    assert not address_allowed(ip)


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_allowed(ip: str) -> None:
    assert address_allowed(ip)


def test_loopback_only_by_setting() -> None:
    assert address_allowed("127.0.0.1", allow_loopback=True)
    assert not address_allowed("10.0.0.1", allow_loopback=True)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/x.png", "http://2130706433/x.png", "http://0x7f.1/x.png",
     "http://localhost/x.png", "ftp://example.com/x.png", "file:///etc/passwd",
     "http://user:pw@example.com/x.png", "http://[::1]/x.png"],
)
def test_refused_urls_fetch_nothing(url: str) -> None:
    with pytest.raises(LightboxError) as err:
        asyncio.run(fetch_public_url(url, max_bytes=1000))
    assert err.value.code == "image_url_not_allowed"
