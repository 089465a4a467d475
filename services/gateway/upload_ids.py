"""Upload ids (POST /v1/uploads): the blob key, its expiry and an HMAC that
binds both to the uploading account, so the gateway needs no state to honour
an id, and another account's, an altered or an expired id is simply unknown."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

from services.common.blobstore import is_valid_key
from services.common.errors import LightboxError

PREFIX = "up_"


def upload_not_found() -> LightboxError:
    return LightboxError(
        "There is no such upload for this account, or it has expired.",
        code="upload_not_found",
        guidance="POST the file to /v1/uploads again and use the new upload_id.",
        field="upload_id",
    )


def _mac(secret: str, account_id: str, key: str, expires: int) -> str:
    msg = f"upload\n{account_id}\n{key}\n{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:40]


def make_upload_id(secret: str, account_id: str, key: str, expires: int) -> str:
    payload = base64.urlsafe_b64encode(f"{key}\n{expires}".encode()).decode().rstrip("=")
    return f"{PREFIX}{payload}.{_mac(secret, account_id, key, expires)}"


def read_upload_id(secret: str, account_id: str, upload_id: str, now: float | None = None) -> str:
    """The blob key an upload id names; upload_not_found if it is not this
    account's, was altered, or has expired."""
    if not upload_id.startswith(PREFIX) or len(upload_id) > 512:
        raise upload_not_found()
    payload, _, mac = upload_id[len(PREFIX) :].partition(".")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        key, expires_text = raw.split("\n")
        expires = int(expires_text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise upload_not_found() from None
    if not hmac.compare_digest(_mac(secret, account_id, key, expires), mac):
        raise upload_not_found()
    if (time.time() if now is None else now) > expires or not is_valid_key(key):
        raise upload_not_found()
    return key
