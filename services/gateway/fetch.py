"""Fetching a user-supplied URL without letting it reach inside the network.

Every hop resolves the host, refuses any non-public address, then connects to
the vetted address itself (so DNS cannot change between check and connect),
and checks the connected peer again. Redirects are followed by hand (<= 3);
time and size are capped."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from urllib.parse import urljoin, urlsplit

import h11

from services.common.errors import LightboxError

MAX_REDIRECTS = 3
TIMEOUT_S = 10.0


def _refused(reason: str) -> LightboxError:
    return LightboxError(
        f"The URL is not allowed: {reason}.",
        code="image_url_not_allowed",
        guidance="Use a public http(s) URL, or upload the file as multipart field 'image'.",
    )


def address_allowed(ip: str, allow_loopback: bool = False) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:
            addr = mapped
        elif addr.teredo:
            return False
    if allow_loopback and addr.is_loopback:
        return True
    return addr.is_global and not addr.is_multicast


async def _resolve(host: str, port: int, allow_loopback: bool) -> str:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise LightboxError(
            f"The host {host!r} could not be resolved.",
            code="image_fetch_failed",
            guidance="Check the URL.",
        ) from None
    addresses = [info[4][0] for info in infos]
    bad = [a for a in addresses if not address_allowed(a, allow_loopback)]
    if bad or not addresses:
        raise _refused(f"{host} resolves to a non-public address")
    return addresses[0]


async def _get_once(url: str, max_bytes: int, allow_loopback: bool) -> tuple[int, dict, bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise _refused("only http and https URLs are fetched")
    if not parts.hostname:
        raise _refused("the URL has no host")
    if parts.username or parts.password:
        raise _refused("credentials in URLs are not accepted")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = await _resolve(parts.hostname, port, allow_loopback)
    tls = ssl.create_default_context() if parts.scheme == "https" else None
    reader, writer = await asyncio.open_connection(
        ip, port, ssl=tls, server_hostname=parts.hostname if tls else None
    )
    try:
        peer = writer.get_extra_info("peername")[0]
        if not address_allowed(peer, allow_loopback):
            raise _refused("the connected address is not public")
        conn = h11.Connection(our_role=h11.CLIENT)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        writer.write(
            conn.send(
                h11.Request(
                    method="GET",
                    target=target,
                    headers=[
                        ("Host", host_header),
                        ("User-Agent", "Lightbox/1.0 (+image fetch)"),
                        ("Accept", "image/*"),
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
                data = await reader.read(65536)
                conn.receive_data(data)
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
        guidance="Point to a smaller image.",
    )


async def fetch_public_url(url: str, max_bytes: int, allow_loopback: bool = False) -> bytes:
    if len(url) > 2048:
        raise _refused("the URL is longer than 2048 characters")

    async def run() -> bytes:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            status, headers, body = await _get_once(current, max_bytes, allow_loopback)
            if status in (301, 302, 303, 307, 308) and "location" in headers:
                current = urljoin(current, headers["location"])
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
    except (OSError, h11.ProtocolError, ssl.SSLError) as exc:
        raise LightboxError(
            f"Fetching the image failed: {exc}.",
            code="image_fetch_failed",
            guidance="Check the URL, or upload the file.",
        ) from None
