"""Signed, expiring output links: HMAC-SHA256 over the blob key and expiry."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote


def signature(secret: str, key: str, expires: int) -> str:
    msg = f"{key}\n{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def signed_path(secret: str, key: str, expires: int) -> str:
    return f"/v1/files/{quote(key)}?expires={expires}&signature={signature(secret, key, expires)}"


def check(secret: str, key: str, expires: int, sig: str, now: float | None = None) -> str:
    """'ok', 'expired' or 'invalid'. The signature is checked before the expiry so
    that a tampered link never learns whether it would have expired."""
    expected = signature(secret, key, expires).encode()
    if not hmac.compare_digest(expected, sig.encode("utf-8", "replace")):
        return "invalid"
    if (now if now is not None else time.time()) > expires:
        return "expired"
    return "ok"
