"""POST /v1/uploads: a local file becomes an id that batches (and submits'
`image_upload_id`) can name (docs/catalogs.md).

The image passes the same checks as a submit's. It is stored under the blob
kind "uploads"; the id is the blob key, its expiry and an HMAC binding both to
the uploading account, so the gateway needs no state to honour it and another
account's or a tampered id is simply unknown. Retention deletes upload blobs
once older than upload_ttl_seconds (services/jobs/retention.sweep_uploads)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from services.common.blobstore import is_valid_key
from services.common.errors import LightboxError
from services.gateway.auth import Account
from services.gateway.context import Gateway
from services.gateway.submit import Submitter, too_large

PREFIX = "up_"
UPLOAD_KIND = "uploads"


@dataclass(frozen=True)
class StoredUpload:
    upload_id: str
    key: str
    width: int
    height: int
    format: str
    size: int
    expires_at: int


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


class Uploads:
    def __init__(self, gateway: Gateway, submitter: Submitter) -> None:
        self.gw = gateway
        self.submitter = submitter

    async def create(self, request: Request, acct: Account) -> StoredUpload:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "multipart/form-data":
            raise LightboxError(
                f"Content type {ctype or 'none'!r} is not accepted here.",
                code="unsupported_media_type",
                guidance="Send multipart/form-data with one file field 'image'.",
            )
        max_bytes = self.gw.settings.max_upload_bytes
        data: bytes | None = None
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=64 * 1024)
        except LightboxError:
            raise
        except Exception as exc:
            raise LightboxError(
                f"The multipart body could not be parsed: {exc}.",
                code="invalid_request",
                guidance="Send multipart/form-data with one file field 'image'.",
            ) from None
        try:
            value = form.get("image")
            if isinstance(value, UploadFile):
                data = await value.read(max_bytes + 1)
        finally:
            await form.close()
        if data is None:
            raise LightboxError(
                "No image file.",
                code="image_required",
                guidance="Upload the file as multipart field 'image'.",
            )
        if len(data) > max_bytes:
            raise too_large(max_bytes)
        info = await self.submitter.verify(data)
        key = await run_in_threadpool(self.gw.blobs.put, data, UPLOAD_KIND, "." + info.format)
        expires = int(time.time() + self.gw.settings.upload_ttl_seconds)
        return StoredUpload(
            upload_id=make_upload_id(self.gw.settings.signing_secret, acct.id, key, expires),
            key=key,
            width=info.width,
            height=info.height,
            format=info.format,
            size=len(data),
            expires_at=expires,
        )


def upload_body(upload: StoredUpload) -> dict[str, object]:
    return {
        "upload_id": upload.upload_id,
        "width": upload.width,
        "height": upload.height,
        "format": upload.format,
        "bytes": upload.size,
        "expires_at": datetime.fromtimestamp(upload.expires_at, UTC)
        .isoformat()
        .replace("+00:00", "Z"),
    }
