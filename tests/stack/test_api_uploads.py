"""Hostile uploads through the gateway: size enforced while streaming, format by
content, header bombs refused before decoding, corrupt files, EXIF orientation."""

from __future__ import annotations

import base64
import select
import socket
import struct
import zlib

import numpy as np
import pytest
import requests

from tests.gateway.stackutil import (
    Key,
    child_pid,
    encode,
    error_of,
    make_key,
    poll,
    product,
    rss_peak_kib,
)
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=500)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_bomb(side: int = 30000) -> bytes:
    """A PNG header declaring side x side RGB pixels (2.7 GB at 30000) in < 300 bytes."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9))
        + _png_chunk(b"IEND", b"")
    )


def jpeg_bomb(side: int = 30000) -> bytes:
    """A real JPEG whose frame header claims side x side."""
    data = bytearray(encode(np.zeros((32, 32, 3), np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    return bytes(data)


def _raw_http(port: int, head: bytes, body_chunks: list[bytes] | None = None) -> bytes:
    """Send a request by hand; stop sending as soon as the server answers (or
    stops reading)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for chunk in body_chunks or []:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
        return _drain(sock)


def _drain(sock: socket.socket) -> bytes:
    out = b""
    try:
        while b"\r\n\r\n" not in out or len(out) < out.index(b"\r\n\r\n") + 4 + 100:
            data = sock.recv(65536)
            if not data:
                break
            out += data
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def test_declared_oversize_is_refused_before_any_body_byte(
    sqlite_stack: RunningStack, key: Key
) -> None:
    port = sqlite_stack.stack.settings.http_port
    head = (
        "POST /v1/image/remove-background HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {key.key}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {11 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = _raw_http(port, head)  # not one byte of the body is sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"file_too_large"' in answer


def test_chunked_oversize_is_refused_while_streaming(sqlite_stack: RunningStack, key: Key) -> None:
    port = sqlite_stack.stack.settings.http_port
    head = (
        "POST /v1/image/remove-background HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {key.key}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
    block = b"\x00" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(part), part)]
    chunks += [b"%x\r\n%s\r\n" % (len(block), block)] * (11 * 16)  # 11 MB, no length declared
    answer = _raw_http(port, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"file_too_large"' in answer


def test_oversize_json_body_is_413(sqlite_stack: RunningStack, key: Key) -> None:
    big = base64.b64encode(b"\x00" * (11 * 1024 * 1024)).decode()
    r = requests.post(
        f"{sqlite_stack.url}/v2/ai-product-photography", headers=key.headers, json={"image": big}
    )
    assert r.status_code == 413 and error_of(r) == "file_too_large"


@pytest.mark.parametrize(("name", "bomb"), [("png", png_bomb), ("jpeg", jpeg_bomb)])
def test_decompression_bombs_refused_from_the_header(
    sqlite_stack: RunningStack, key: Key, name: str, bomb: object
) -> None:
    data = bomb()  # type: ignore[operator]
    assert len(data) < 1000
    pid = child_pid(sqlite_stack, "gateway")
    peak_before = rss_peak_kib(pid)
    for _ in range(3):
        r = requests.post(
            f"{sqlite_stack.url}/v1/image/product-photo",
            headers=key.headers,
            files={"image": (f"bomb.{name}", data, f"image/{name}")},
            timeout=30,
        )
        assert r.status_code == 422 and error_of(r) == "image_too_large", r.text
    r = requests.post(
        f"{sqlite_stack.url}/v2/remove-background",
        headers=key.headers,
        json={"image": base64.b64encode(data).decode()},
        timeout=30,
    )
    assert r.status_code == 422 and error_of(r) == "image_too_large"
    # Decoding would have needed gigabytes; the peak did not move by more than noise.
    assert rss_peak_kib(pid) - peak_before < 100 * 1024


def _corrupt_png() -> bytes:
    data = bytearray(product())
    idat = data.index(b"IDAT")
    data[idat + 10 : idat + 30] = b"\xff" * 20
    return bytes(data)


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"", 400, "invalid_image"),
        (b"GIF89a\x10\x00\x10\x00\x80\x00\x00" + b"\x00" * 64, 400, "invalid_image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'/>", 400, "invalid_image"),
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", 400, "invalid_image"),
        (b"%PDF-1.4\n", 400, "invalid_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 400, "invalid_image"),
        ("truncated-jpeg", 400, "invalid_image"),
        ("truncated-webp", 400, "invalid_image"),
        ("corrupt-png", 400, "invalid_image"),
        ("tiny", 422, "image_too_small"),
        ("wide", 422, "image_too_large"),
    ],
)
def test_bad_uploads(
    sqlite_stack: RunningStack, key: Key, payload: object, status: int, code: str
) -> None:
    made = {
        "truncated-jpeg": lambda: product(300, 300, "JPEG")[:700],
        "truncated-webp": lambda: product(300, 300, "WEBP")[:300],
        "corrupt-png": _corrupt_png,
        "tiny": lambda: product(15, 40),
        "wide": lambda: product(4097, 16),
    }
    data = made[payload]() if isinstance(payload, str) else payload  # type: ignore[index]
    before = requests.get(f"{sqlite_stack.url}/v1/account/balance", headers=key.headers).json()
    # Disguised as a PNG by name and declared type: the content decides.
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=key.headers,
        files={"image": ("photo.png", data, "image/png")},
        timeout=30,
    )
    assert (r.status_code, error_of(r)) == (status, code), r.text
    after = requests.get(f"{sqlite_stack.url}/v1/account/balance", headers=key.headers).json()
    assert after == before


def test_exif_orientation_is_honoured(sqlite_stack: RunningStack, key: Key) -> None:
    from PIL import Image

    rgb = np.full((80, 120, 3), 235, np.uint8)
    rgb[20:60, 40:80] = (30, 60, 200)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90° clockwise: portrait
    data = encode(rgb, "JPEG", quality=95, exif=exif.tobytes())
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=key.headers,
        files={"image": ("phone.jpg", data, "image/jpeg")},
    )
    assert r.status_code == 202, r.text
    done = poll(sqlite_stack.url, r.json()["id"], key.headers)
    assert done["status"] == "completed", done
    assert (done["width"], done["height"]) == (80, 120)
    # The 16 px minimum and 4096 maximum apply after rotation too.
    tall = encode(np.zeros((16, 4097, 3), np.uint8), "JPEG", exif=exif.tobytes())
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=key.headers,
        files={"image": ("tall.jpg", tall, "image/jpeg")},
    )
    assert r.status_code == 422 and error_of(r) == "image_too_large"
    assert r.json()["detail"]["received_size"] == [16, 4097]
