"""Blob storage for inputs and outputs.

Keys are random and generated here; nothing a user sends ever becomes a path.
The local store writes atomically (temp file + rename) so a crash never leaves
a half-written blob under a key."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from services.common.errors import NotFound

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_KEY_RE = re.compile(r"^[a-z]+/[0-9]{8}/[A-Za-z0-9_-]{22,64}(\.[a-z0-9]{1,5})?$")


# The Content-Type a stored file is served with, by its key's suffix: a fixed table
# (the platform's mimetypes says audio/x-wav for .wav, and may not know .webp).
CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".wav": "audio/wav",
    ".mp4": "video/mp4",
}


def content_type(key: str) -> str:
    """The media type of the blob under `key` (application/octet-stream if unknown)."""
    suffix = os.path.splitext(key)[1].lower()
    return CONTENT_TYPES.get(suffix, "application/octet-stream")


def new_key(kind: str, suffix: str = "") -> str:
    """A fresh unguessable key such as `outputs/20261122/<128 random bits>.jpg`."""
    day = datetime.now(UTC).strftime("%Y%m%d")
    return f"{kind}/{day}/{secrets.token_urlsafe(16)}{suffix}"


def is_valid_key(key: str) -> bool:
    return bool(_KEY_RE.match(key))


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not is_valid_key(key):
            raise NotFound(f"no blob {key!r}")
        return self.root / key

    def put(self, data: bytes, kind: str, suffix: str = "") -> str:
        key = new_key(kind, suffix)
        path = self._path(key)
        # The key is fresh and unguessable, so its temp name is too (no
        # mkstemp: its name search and a mkdir per call cost more than the write).
        tmp = path.with_name(".tmp-" + path.name)
        try:
            fd = os.open(tmp, _CREATE_FLAGS, 0o600)
        except FileNotFoundError:  # the first blob of its kind that day
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, _CREATE_FLAGS, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no blob {key!r}") from None

    def path(self, key: str) -> Path:
        """The file behind `key` (for streaming responses); NotFound if absent."""
        p = self._path(key)
        if not p.is_file():
            raise NotFound(f"no blob {key!r}")
        return p

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
            return True
        except (FileNotFoundError, NotFound):
            return False

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except NotFound:
            return False

    def list(self, kind: str) -> Iterator[tuple[str, float]]:
        """(key, modification time) of every blob of one kind, e.g. "outputs"."""
        base = self.root / kind
        if not base.is_dir():
            return
        for day in sorted(base.iterdir()):
            if not day.is_dir():
                continue
            for entry in os.scandir(day):
                key = f"{kind}/{day.name}/{entry.name}"
                if entry.is_file() and is_valid_key(key):
                    yield key, entry.stat().st_mtime

    def check(self) -> None:
        """Raise if the store cannot be written (used by /readyz)."""
        probe = self.root / ".probe"
        probe.write_bytes(b"ok")
        probe.unlink()
