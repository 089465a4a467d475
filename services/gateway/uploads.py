"""POST /v1/uploads: a local file becomes an id that batches (and submits'
`image_upload_id`) can name (docs/catalogs.md).

The image passes the same checks as a submit's. It is stored under the blob
kind "uploads" and named by an id (upload_ids.py) that needs no state.
Retention deletes upload blobs once older than upload_ttl_seconds
(services/jobs/retention.sweep_uploads)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from services.common.errors import LightboxError
from services.gateway.auth import Account
from services.gateway.context import Gateway
from services.gateway.submit import Submitter, too_large
from services.gateway.upload_ids import make_upload_id

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
