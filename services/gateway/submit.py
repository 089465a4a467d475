"""Submitting an image operation: read the body (multipart, form or JSON),
validate the fields, get the input image (upload, URL, or on /v2 base64),
check it by content, store it, and hand the job to the jobs service.

Cheap checks run before expensive ones: permission, headers and field ranges
before any byte of an image is fetched or decoded."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from google.protobuf import struct_pb2
from lightbox.v1 import jobs_pb2
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from services.common import imageio
from services.common.errors import InvalidImage, InvalidParameter, LightboxError
from services.gateway.auth import Account
from services.gateway.context import Gateway
from services.gateway.fetch import check_public_url, fetch_public_url
from services.gateway.profiles import Composed, ProfileResolver
from services.gateway.schemas import (
    MAX_UPSCALED_SIDE,
    TRYON_MIN_SIDE,
    AudioGenerateParams,
    FieldError,
    GenerateParams,
    ProductPhotoParams,
    RemoveBackgroundParams,
    RemoveObjectParams,
    ReplaceBackgroundParams,
    RestoreFaceParams,
    SegmindProductPhotoParams,
    UpscaleParams,
    VideoGenerateParams,
    VirtualTryOnParams,
)
from services.gateway.upload_ids import read_upload_id, upload_not_found
from services.gateway.views import TERMINAL_PROTO

log = logging.getLogger(__name__)

ROLES = ("image", "mask")


@dataclass(frozen=True)
class OperationSpec:
    name: str  # the jobs service's operation
    schema: type[BaseModel]
    takes_image: bool = True
    takes_mask: bool = False
    json_only: bool = False
    # Segmind's field names, mapped onto `schema`'s (ai-product-photography).
    segmind: bool = False
    # Images sent as base64 in JSON fields: (schema field, input role) pairs.
    base64_images: tuple[tuple[str, str], ...] = ()
    # Whether a /v1 submit may name a catalog profile (image operations only).
    profiles: bool = True


OPERATIONS: dict[str, OperationSpec] = {
    "product-photo": OperationSpec("product-photo", ProductPhotoParams),
    "remove-background": OperationSpec("remove-background", RemoveBackgroundParams),
    "replace-background": OperationSpec("replace-background", ReplaceBackgroundParams),
    "generate": OperationSpec("generate", GenerateParams, takes_image=False, json_only=True),
    "upscale": OperationSpec("upscale", UpscaleParams),
    "restore-face": OperationSpec("restore-face", RestoreFaceParams),
    "remove-object": OperationSpec("remove-object", RemoveObjectParams, takes_mask=True),
}
SEGMIND_PRODUCT_PHOTO = OperationSpec("product-photo", ProductPhotoParams, segmind=True)
# PixelAPI's non-image endpoints (their own /v1 paths; /v2/{name} like the others).
MEDIA_OPERATIONS: dict[str, OperationSpec] = {
    "audio-generate": OperationSpec(
        "audio-generate", AudioGenerateParams, takes_image=False, json_only=True, profiles=False
    ),
    "video-generate": OperationSpec(
        "video-generate", VideoGenerateParams, takes_image=False, json_only=True, profiles=False
    ),
    "virtual-tryon": OperationSpec(
        "virtual-tryon",
        VirtualTryOnParams,
        takes_image=False,
        json_only=True,
        profiles=False,
        base64_images=(("person_image", "person"), ("garment_image", "garment")),
    ),
}


@dataclass
class Received:
    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    # Every name seen, so that a repeated field is refused, not silently overwritten.
    names: set[str] = field(default_factory=set)

    def see(self, name: str) -> None:
        if name in self.names:
            raise InvalidParameter(name, f"'{name}' is given more than once.")
        self.names.add(name)


@dataclass(frozen=True)
class Submitted:
    job: jobs_pb2.Job
    replayed: bool
    waited: int


def validation_error(exc: ValidationError | RequestValidationError) -> LightboxError:
    """The first problem, as invalid_parameter naming the field (or the code the
    API documents for that field, e.g. invalid_category)."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    cause = (first.get("ctx") or {}).get("error")
    if not loc and isinstance(cause, FieldError):
        loc = [cause.field]
    name = ".".join(loc) or "request"
    msg = first.get("msg", "invalid value").removeprefix("Value error, ")
    if isinstance(cause, FieldError) and cause.code:
        return LightboxError(
            f"{name}: {msg}",
            code=cause.code,
            field=cause.field,
            guidance=InvalidParameter.default_guidance,
        )
    return InvalidParameter(name, f"{name}: {msg}" if loc else msg)


def request_fingerprint(
    operation: str, job_params: dict[str, Any], webhook_url: str | None, digests: dict[str, str]
) -> str:
    """What an Idempotency-Key is bound to: the operation, the job's fields,
    the webhook and the input images' sha256 by role (batch items use the same)."""
    return hashlib.sha256(
        json.dumps([operation, job_params, webhook_url or "", digests], sort_keys=True).encode()
    ).hexdigest()


def too_large(limit: int) -> LightboxError:
    return LightboxError(
        f"The upload is over the {limit / (1024 * 1024):g} MB limit.",
        code="file_too_large",
        guidance="Send a smaller file (resize or recompress it).",
        extra={"max_bytes": limit},
    )


def prefer_wait(header: str, cap: int) -> int:
    """Seconds from `Prefer: wait=N` (RFC 7240), capped; 0 when absent."""
    for part in header.split(","):
        for pref in part.split(";"):
            name, _, value = pref.strip().partition("=")
            if name.strip().lower() == "wait":
                value = value.strip().strip('"')
                if not value.isdigit() or len(value) > 6:
                    raise InvalidParameter(
                        "Prefer", "Prefer: wait=N needs a whole number of seconds N."
                    )
                return min(int(value), cap)
    return 0


def _not_an_image_reference(role: str) -> LightboxError:
    return InvalidImage(
        f"'{role}' is neither an http(s) URL nor base64-encoded image data.",
        guidance=f"Send '{role}' as a URL, as base64 (optionally a data: URI), or upload a file.",
    )


class Submitter:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.max_bytes = gateway.settings.max_upload_bytes
        # Decoding a 4096x4096 image takes ~64 MB and a core for a moment; a
        # burst of uploads queues here instead of exhausting memory.
        self._decode_slots = asyncio.Semaphore(gateway.settings.max_concurrent_decodes)
        self.profiles = ProfileResolver(gateway)

    # -- reading the body ------------------------------------------------------------

    def _inline_image(self, role: str, value: Any, rec: Received, lenient: bool) -> None:
        """A string where an image goes: a URL, or (on /v2) base64 data."""
        if not isinstance(value, str):
            raise InvalidParameter(role, f"'{role}' must be a string (a URL or base64 data).")
        text = value.strip()
        if not text:
            return
        if not lenient:
            raise LightboxError(
                f"'{role}' must be uploaded as a file; a URL goes in '{role}_url'.",
                code="invalid_request",
                guidance=f"Send a multipart file field '{role}', or '{role}_url' in JSON.",
            )
        if "://" in text[:16]:
            rec.urls[role] = text
            return
        if text.startswith("data:"):
            header, _, text = text.partition(",")
            if not header.endswith(";base64"):
                raise _not_an_image_reference(role)
        if len(text) > self.max_bytes * 4 // 3 + 4:
            raise too_large(self.max_bytes)
        try:
            rec.files[role] = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _not_an_image_reference(role) from None

    def _field(self, rec: Received, name: str, value: Any, spec: OperationSpec, v2: bool) -> None:
        rec.see(name)
        if name.endswith("_url") and name[:-4] in ROLES:
            if value is None or value == "":
                return
            if not isinstance(value, str):
                raise InvalidParameter(name, f"'{name}' must be a string.")
            rec.urls[name[:-4]] = value
        elif name in ROLES:
            self._inline_image(name, value, rec, lenient=v2)
        else:
            rec.fields[name] = value

    async def _read_form(self, request: Request, spec: OperationSpec, v2: bool) -> Received:
        rec = Received()
        try:
            form = await request.form(max_files=len(ROLES), max_fields=64, max_part_size=64 * 1024)
        except LightboxError:
            raise
        except Exception as exc:
            raise LightboxError(
                f"The multipart body could not be parsed: {exc}.",
                code="invalid_request",
                guidance="Send multipart/form-data with an 'image' file field.",
            ) from None
        try:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if name not in ROLES or (name == "mask" and not spec.takes_mask):
                        raise InvalidParameter(name, f"Unexpected file field {name!r}.")
                    rec.see(name)
                    data = await value.read(self.max_bytes + 1)
                    if len(data) > self.max_bytes:
                        raise too_large(self.max_bytes)
                    rec.files[name] = data
                else:
                    self._field(rec, name, value, spec, v2)
        finally:
            await form.close()
        return rec

    async def _read_json(self, request: Request, spec: OperationSpec, v2: bool) -> Received:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise LightboxError(
                "The body is not valid JSON.",
                code="invalid_request",
                guidance="Send a JSON object.",
            ) from None
        if not isinstance(body, dict):
            raise LightboxError(
                "The JSON body must be an object.",
                code="invalid_request",
                guidance="Send a JSON object with image_url and the operation's fields.",
            )
        rec = Received()
        for name, value in body.items():
            self._field(rec, name, value, spec, v2)
        return rec

    async def read(self, request: Request, spec: OperationSpec, v2: bool) -> Received:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            return await self._read_json(request, spec, v2)
        if ctype == "multipart/form-data" and not spec.json_only:
            return await self._read_form(request, spec, v2)
        accepted = (
            "application/json"
            if spec.json_only
            else "multipart/form-data (file upload) or application/json (image_url)"
        )
        raise LightboxError(
            f"Content type {ctype or 'none'!r} is not accepted here.",
            code="unsupported_media_type",
            guidance=f"Use {accepted}.",
        )

    # -- images ----------------------------------------------------------------------

    async def _bytes_of(self, role: str, rec: Received) -> bytes | None:
        data, url = rec.files.get(role), rec.urls.get(role)
        if data is not None and url:
            raise LightboxError(
                f"Send either a {role} file or {role}_url, not both.",
                code="ambiguous_image",
                guidance=f"Remove one of '{role}' and '{role}_url'.",
                field=role,
            )
        if url:
            return await fetch_public_url(
                url, max_bytes=self.max_bytes, allow_loopback=self.gw.settings.allow_loopback_urls
            )
        if data is not None and len(data) > self.max_bytes:
            raise too_large(self.max_bytes)
        return data

    async def verify(self, data: bytes) -> imageio.ImageInfo:
        """Decode-check an image (bounded concurrency); uploads and batches use it."""
        return await self._verify(data)

    async def upload_bytes(self, acct: Account, upload_id: str) -> bytes:
        """The image of an upload id (POST /v1/uploads) of this account."""
        key = read_upload_id(self.gw.settings.signing_secret, acct.id, upload_id)
        try:
            return await run_in_threadpool(self.gw.blobs.get, key)
        except LightboxError as err:
            if err.code == "not_found":  # retention has deleted it
                raise upload_not_found() from None
            raise

    def _base64_field(self, name: str, value: str) -> bytes:
        """An image sent as base64 text in JSON field `name`. PixelAPI's clients send
        bare base64; a data:image/...;base64, prefix is accepted and removed."""
        text = value.strip()
        if text.startswith("data:"):
            header, _, text = text.partition(",")
            if not header.endswith(";base64"):
                raise InvalidImage(
                    f"'{name}' is a data: URI that is not base64.",
                    guidance=f"Send '{name}' as base64 of a JPEG, PNG or WebP file.",
                    field=name,
                )
        if len(text) > self.max_bytes * 4 // 3 + 4:
            raise too_large(self.max_bytes)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage(
                f"'{name}' is not valid base64.",
                guidance=f"Send '{name}' as base64 of a JPEG, PNG or WebP file.",
                field=name,
            ) from None

    async def _verify_photo(self, name: str, data: bytes) -> imageio.ImageInfo:
        """Decode-check a try-on photo: at least TRYON_MIN_SIDE px a side; every
        problem names the field."""
        try:
            info = await self._verify(data)
        except LightboxError as err:
            err.extra["field"] = name
            raise
        if min(info.width, info.height) < TRYON_MIN_SIDE:
            raise LightboxError(
                f"'{name}' is {info.width}x{info.height}; the minimum is "
                f"{TRYON_MIN_SIDE} px a side.",
                code="image_too_small",
                guidance=f"Send a photo of at least {TRYON_MIN_SIDE}x{TRYON_MIN_SIDE} pixels.",
                field=name,
                extra={"received_size": [info.width, info.height]},
            )
        return info

    async def _verify(self, data: bytes) -> imageio.ImageInfo:
        async with self._decode_slots:
            return await run_in_threadpool(imageio.verify, data)

    # -- the whole submission ----------------------------------------------------------

    async def submit(
        self, request: Request, spec: OperationSpec, acct: Account, v2: bool
    ) -> Submitted:
        if acct.allowed_operations and spec.name not in acct.allowed_operations:
            raise LightboxError(
                f"This key may not use {spec.name}.",
                code="forbidden",
                guidance="Ask the operator for a key that allows this operation.",
            )
        idem = request.headers.get("idempotency-key")
        if idem is not None and not (1 <= len(idem) <= 255):
            raise InvalidParameter("Idempotency-Key", "Idempotency-Key must be 1-255 characters.")
        wait = prefer_wait(request.headers.get("prefer", ""), self.gw.settings.max_wait_seconds)

        rec = await self.read(request, spec, v2)
        upload_id = None if v2 else rec.fields.pop("image_upload_id", None)
        if upload_id not in (None, ""):
            if not isinstance(upload_id, str):
                raise InvalidParameter("image_upload_id", "image_upload_id must be a string.")
            if "image" in rec.files or "image" in rec.urls:
                raise LightboxError(
                    "Send one of an image file, image_url or image_upload_id.",
                    code="ambiguous_image",
                    guidance="Remove all but one of 'image', 'image_url' and 'image_upload_id'.",
                    field="image",
                )
            try:
                rec.files["image"] = await self.upload_bytes(acct, upload_id)
            except LightboxError as err:
                err.extra["field"] = "image_upload_id"
                raise
        has_image = "image" in rec.files or "image" in rec.urls
        if spec.takes_image and not has_image:
            raise LightboxError(
                "No input image.",
                code="image_required",
                guidance="Upload the file as multipart field 'image', or send image_url in JSON.",
            )
        if not spec.takes_image and (has_image or "mask" in rec.files or "mask" in rec.urls):
            raise InvalidParameter("image", f"{spec.name} takes no input image.")
        has_mask = "mask" in rec.files or "mask" in rec.urls
        if has_mask and not spec.takes_mask:
            raise InvalidParameter("mask", f"{spec.name} takes no mask.")
        fields = rec.fields
        # /v1 submits may name a profile (docs/catalogs.md); /v2 keeps Segmind's fields.
        composed = Composed(fields)
        if not v2 and spec.profiles:
            composed = await self.profiles.apply(acct, spec.name, spec.schema, fields)
            fields = composed.fields
        try:
            if spec.segmind:
                fields = SegmindProductPhotoParams.model_validate(fields).native_fields()
            params = spec.schema.model_validate(fields, context={"has_mask": has_mask})
        except ValidationError as exc:
            raise validation_error(exc) from None
        webhook_url = getattr(params, "webhook_url", None)
        if webhook_url:
            await check_public_url(webhook_url, self.gw.settings.allow_loopback_urls)

        job_params: dict[str, Any] = params.job_params()  # type: ignore[attr-defined]
        job_params.update(composed.recorded)
        if v2:
            # The worker keeps /v2 results for their own (shorter) time: see
            # services/jobs/retention.py (api_flavour, LIGHTBOX_OUTPUT_TTL_OVERRIDES).
            job_params["api"] = "v2"
        blobs: dict[str, bytes] = {}
        suffixes: dict[str, str] = {}
        for name, role in spec.base64_images:
            data = self._base64_field(name, getattr(params, name))
            info = await self._verify_photo(name, data)
            if role == "person" and info.width > info.height:
                raise LightboxError(
                    f"The person photo is {info.width}x{info.height}, landscape; try-on needs "
                    "a portrait (or square) photo of the person.",
                    code="wrong_aspect_ratio",
                    guidance="Send a photo taller than it is wide, the person standing in it.",
                    field=name,
                    extra={"received_size": [info.width, info.height]},
                )
            blobs[role], suffixes[role] = data, "." + info.format
        if spec.takes_image:
            image = await self._bytes_of("image", rec)
            assert image is not None
            info = await self._verify(image)
            blobs["image"], suffixes["image"] = image, "." + info.format
            if isinstance(params, UpscaleParams):
                longest = max(info.width, info.height) * params.scale
                if longest > MAX_UPSCALED_SIDE:
                    raise InvalidParameter(
                        "scale",
                        f"{info.width}x{info.height} at {params.scale}x would be {longest} px a "
                        f"side; the limit is {MAX_UPSCALED_SIDE}.",
                        guidance="Use scale=2, or send a smaller image.",
                    )
            if has_mask:
                mask = await self._bytes_of("mask", rec)
                assert mask is not None
                mask_info = await self._verify(mask)
                if (mask_info.width, mask_info.height) != (info.width, info.height):
                    raise InvalidParameter(
                        "mask",
                        f"The mask is {mask_info.width}x{mask_info.height}; the image is "
                        f"{info.width}x{info.height}. They must be the same size.",
                        guidance="Send a mask of the image's size: white = remove, black = keep.",
                    )
                blobs["mask"], suffixes["mask"] = mask, "." + mask_info.format
                job_params["has_mask"] = True
        return await self._submit_job(
            request, spec, acct, job_params, blobs, suffixes, webhook_url, idem, wait
        )

    async def _submit_job(
        self,
        request: Request,
        spec: OperationSpec,
        acct: Account,
        job_params: dict[str, Any],
        blobs: dict[str, bytes],
        suffixes: dict[str, str],
        webhook_url: str | None,
        idem: str | None,
        wait: int,
    ) -> Submitted:
        store = self.gw.blobs
        fingerprint = request_fingerprint(
            spec.name,
            job_params,
            webhook_url,
            {role: hashlib.sha256(data).hexdigest() for role, data in blobs.items()},
        )
        struct = struct_pb2.Struct()
        struct.update(job_params)
        keys: dict[str, str] = {}
        try:
            for role, data in blobs.items():
                keys[role] = await run_in_threadpool(store.put, data, "inputs", suffixes[role])
            resp = await self.gw.call(
                self.gw.clients.jobs.SubmitJob,
                jobs_pb2.SubmitJobRequest(
                    account_id=acct.id,
                    operation=spec.name,
                    params=struct,
                    inputs=keys,
                    idempotency_key=idem or "",
                    request_fingerprint=fingerprint,
                    webhook_url=webhook_url or "",
                ),
            )
        except BaseException:
            for key in keys.values():
                store.delete(key)
            raise
        if resp.replayed:
            for key in keys.values():
                store.delete(key)
        else:
            self.gw.metrics.submits.labels(spec.name).inc()
        job = resp.job
        log.info(
            "job %s %s %s%s",
            job.id,
            spec.name,
            "replayed" if resp.replayed else "submitted",
            f" (waiting up to {wait} s)" if wait else "",
        )
        if wait > 0 and job.status not in TERMINAL_PROTO:
            job = await self.wait_for(job, acct, wait)
        return Submitted(job, resp.replayed, wait)

    async def wait_for(self, job: jobs_pb2.Job, acct: Account, seconds: int) -> jobs_pb2.Job:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        delay = 0.05
        while loop.time() < deadline:
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 1.5, 0.5)
            job = await self.gw.get_job(job.id, acct.id)
            if job.status in TERMINAL_PROTO:
                break
        return job
