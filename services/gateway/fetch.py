"""Fetching a user-supplied URL without letting it reach inside the network.

Every hop resolves the host, refuses any non-public address, then connects to
the vetted address itself (so DNS cannot change between check and connect),
and checks the connected peer again. Redirects are followed by hand (<= 3) and
each target is vetted like the first; time and size are capped. The same
address rules vet webhook_url at submit time (`check_public_url`)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from urllib.parse import SplitResult, urljoin, urlsplit

import h11

from services.common.errors import LightboxError

MAX_REDIRECTS = 3
TIMEOUT_S = 10.0
MAX_URL_LENGTH = 2048

# IPv6 ranges that carry an IPv4 address a gateway would translate to: the
# embedded address is what would really be reached, so it is the one judged.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Local-use NAT64 (RFC 8215) translates to whatever the operator set up: refused.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _refused(reason: str, field: str = "image_url") -> LightboxError:
    return LightboxError(
        f"The {field} is not allowed: {reason}.",
        code="image_url_not_allowed",
        guidance="Use an http(s) URL on a public address"
        + (", or upload the file as multipart field 'image'." if field == "image_url" else "."),
        field=field,
    )


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64 or (addr in _IPV4_COMPATIBLE and int(addr) > 1):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def address_allowed(ip: str, allow_loopback: bool = False) -> bool:
    """Whether connecting to `ip` stays on the public internet."""
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.teredo is not None or addr in _NAT64_LOCAL or addr.is_site_local:
            return False
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            addr = embedded
    if allow_loopback and addr.is_loopback:
        return True
    return addr.is_global and not addr.is_multicast


def _check_host_literal(host: str, field: str) -> None:
    """Refuse numeric hosts in anything but canonical form (2130706433, 0x7f.1,
    0177.0.0.1): parsers disagree on them, which is how filters get bypassed."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return
    raise _refused("numeric hosts must be written as a plain dotted IPv4 address", field)


def _parse(url: str, field: str) -> tuple[SplitResult, str, int]:
    if len(url) > MAX_URL_LENGTH:
        raise _refused(f"the URL is longer than {MAX_URL_LENGTH} characters", field)
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise _refused("the URL cannot be parsed", field) from None
    if parts.scheme not in ("http", "https"):
        raise _refused("only http and https URLs are accepted", field)
    if not host:
        raise _refused("the URL has no host", field)
    if parts.username is not None or parts.password is not None:
        raise _refused("credentials in URLs are not accepted", field)
    if "%" in host:
        # IPv6 zone ids only name link-local interfaces, never a public address.
        raise _refused("IPv6 zone ids are not accepted", field)
    _check_host_literal(host, field)
    return parts, host, port or (443 if parts.scheme == "https" else 80)


async def _resolve(host: str, port: int, allow_loopback: bool, field: str) -> str:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        raise LightboxError(
            f"The host {host!r} of the {field} could not be resolved.",
            code="image_fetch_failed" if field == "image_url" else "image_url_not_allowed",
            guidance="Check the URL.",
            field=field,
        ) from None
    addresses = [str(info[4][0]) for info in infos]
    # Every address must pass, not just the first: the connection could use any.
    if not addresses or not all(address_allowed(a, allow_loopback) for a in addresses):
        raise _refused(f"{host} resolves to a non-public address", field)
    return addresses[0]


async def check_public_url(
    url: str, allow_loopback: bool = False, field: str = "webhook_url"
) -> str:
    """Vet a URL the server will call later (webhooks): scheme and every resolved
    address now. The caller of the URL vets the connected address again then.
    Returns the URL unchanged."""
    _, host, port = _parse(url, field)
    try:
        await asyncio.wait_for(_resolve(host, port, allow_loopback, field), TIMEOUT_S)
    except TimeoutError:
        raise _refused(f"{host} did not resolve within {TIMEOUT_S:.0f} s", field) from None
    return url


async def _get_once(url: str, max_bytes: int, allow_loopback: bool) -> tuple[int, dict, bytes]:
    parts, host, port = _parse(url, "image_url")
    ip = await _resolve(host, port, allow_loopback, "image_url")
    tls = ssl.create_default_context() if parts.scheme == "https" else None
    reader, writer = await asyncio.open_connection(
        ip, port, ssl=tls, server_hostname=host if tls else None
    )
    try:
        peer = writer.get_extra_info("peername")[0]
        if not address_allowed(peer, allow_loopback):
            raise _refused("the connected address is not public")
        conn = h11.Connection(our_role=h11.CLIENT)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rpartition("@")[2]
        writer.write(
            conn.send(
                h11.Request(
                    method="GET",
                    target=target,
                    headers=[
                        ("Host", host_header),
                        ("User-Agent", "Lightbox/1.0 (+image fetch)"),
                        ("Accept", "image/*"),
                        ("Accept-Encoding", "identity"),
                        ("Connection", "close"),
                    ],
                )
            )
        )
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        status, headers, body = 0, {}, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
                declared = headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise _too_big(max_bytes)
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > max_bytes:
                    raise _too_big(max_bytes)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, headers, bytes(body)
    finally:
        writer.close()


def _too_big(max_bytes: int) -> LightboxError:
    return LightboxError(
        f"The image at the URL is over {max_bytes} bytes.",
        code="file_too_large",
        guidance="Point to a smaller image, or upload a smaller file.",
        extra={"max_bytes": max_bytes},
    )


async def fetch_public_url(url: str, max_bytes: int, allow_loopback: bool = False) -> bytes:
    """GET `url` within the caps and address rules above; the body on a 200."""
    _parse(url, "image_url")

    async def run() -> bytes:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            status, headers, body = await _get_once(current, max_bytes, allow_loopback)
            if status in (301, 302, 303, 307, 308) and "location" in headers:
                current = urljoin(current, headers["location"].strip())
                continue
            if status != 200:
                raise LightboxError(
                    f"Fetching the image failed: the server answered {status}.",
                    code="image_fetch_failed",
                    guidance="Check that the URL serves the image publicly.",
                )
            return body
        raise _refused(f"more than {MAX_REDIRECTS} redirects")

    try:
        return await asyncio.wait_for(run(), TIMEOUT_S)
    except TimeoutError:
        raise LightboxError(
            f"Fetching the image took longer than {TIMEOUT_S:.0f} s.",
            code="image_fetch_failed",
            guidance="Use a faster host, or upload the file.",
        ) from None
    except (OSError, h11.ProtocolError, ssl.SSLError, UnicodeError) as exc:
        raise LightboxError(
            f"Fetching the image failed: {exc.__class__.__name__}: {exc}.",
            code="image_fetch_failed",
            guidance="Check the URL, or upload the file.",
        ) from None
