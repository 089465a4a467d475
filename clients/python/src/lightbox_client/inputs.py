"""Turning what a caller passes as an image (a path, bytes, a file object or a URL)
into the parts of a submit, and form values into their wire text."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lightbox_client._http import FilePart

# A str is a URL when it starts with http:// or https://, else a path.
ImageInput = str | os.PathLike[str] | bytes | bytearray | IO[bytes]
FieldValue = str | int | float | bool

_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)


def is_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) of JPEG, PNG or WebP bytes by their signature."""
    for magic, ctype, ext in _MAGIC:
        if data.startswith(magic):
            return ctype, ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return None


@dataclass(frozen=True)
class Image:
    """An image for a submit: either `url` or `part` (a multipart file)."""

    url: str | None = None
    part: FilePart | None = None


def read_image(value: ImageInput, role: str = "image") -> Image:
    if is_url(value):
        return Image(url=str(value))
    if isinstance(value, (bytes, bytearray)):
        data, name = bytes(value), role
    elif isinstance(value, (str, os.PathLike)):
        path = Path(value)
        data, name = path.read_bytes(), path.name
    elif hasattr(value, "read"):
        data = value.read()
        if not isinstance(data, bytes):
            raise TypeError(f"{role}: open the file in binary mode ('rb')")
        name = Path(str(getattr(value, "name", role))).name
    else:
        raise TypeError(f"{role}: expected a path, bytes, a binary file or an http(s) URL")
    ctype = (sniff(data) or ("application/octet-stream", ""))[0]
    return Image(part=(name, data, ctype))


def form_value(value: FieldValue | Mapping[str, Any]) -> str:
    """A field as multipart text: booleans as true/false, objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    return str(value)
