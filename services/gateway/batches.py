"""POST /v1/batches in the gateway (docs/catalogs.md): read the batch, check
every item as a submit would be checked (fields, profile, placement, template
variables, the image), collect every bad row, and only then hand the whole
batch to the jobs service, which queues all of it or nothing.

Images are fetched and checked a few at a time and stored as each item's own
input blob as soon as they pass (so a batch never holds 1,000 images in
memory); if anything fails afterwards, the blobs stored so far are deleted."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from google.protobuf import struct_pb2
from lightbox.v1 import catalog_pb2
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services.common.errors import InvalidParameter, LightboxError
from services.gateway.auth import Account
from services.gateway.context import Gateway
from services.gateway.fetch import check_public_url, fetch_public_url
from services.gateway.profiles import Composed, ProfileResolver, ProfileVersion, compose, parse_vars
from services.gateway.schemas import MAX_UPSCALED_SIDE, UpscaleParams
from services.gateway.submit import (
    OPERATIONS,
    OperationSpec,
    Submitter,
    request_fingerprint,
    validation_error,
)

MAX_ITEMS = 1000
# Images fetched and checked at once per batch.
FETCH_CONCURRENCY = 8
# Creating 1,000 jobs in one transaction takes a while on a busy database.
CREATE_TIMEOUT_SECONDS = 120.0


class BatchItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: str = Field(min_length=1, max_length=128)
    variant: str = Field("main", min_length=1, max_length=64)
    image_url: str | None = Field(None, max_length=2048)
    upload_id: str | None = Field(None, max_length=512)
    placement: str | None = Field(None, max_length=64)
    vars: dict[str, Any] | None = Field(None, max_length=50)
    fields: dict[str, Any] = Field(default_factory=dict, max_length=64)
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    operation: str | None = Field(None, max_length=64)
    profile: str | None = Field(None, max_length=80)
    fields: dict[str, Any] = Field(default_factory=dict, max_length=64)
    webhook_url: str | None = Field(None, max_length=2048)
    items: list[BatchItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


@dataclass
class RowError:
    index: int
    sku: str | None
    field: str
    error: str
    message: str

    def body(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "sku": self.sku,
            "field": self.field,
            "error": self.error,
            "message": self.message,
        }


@dataclass
class Prepared:
    item: BatchItemIn
    params: BaseModel  # the operation's validated fields
    job_params: dict[str, Any]
    key: str
    inputs: dict[str, str] = field(default_factory=dict)
    image_sha: str | None = None


def invalid_batch(errors: list[RowError]) -> LightboxError:
    errors = sorted(errors, key=lambda e: e.index)
    first = errors[0]
    return LightboxError(
        f"{len(errors)} item(s) of the batch are invalid; nothing was queued. "
        f"First: item {first.index} ({first.sku}): {first.message}",
        code="invalid_batch",
        guidance="Fix the listed items (errors[].index, field) and send the batch again.",
        extra={"errors": [e.body() for e in errors[:MAX_ITEMS]]},
    )


def _row_error(index: int, sku: str | None, err: LightboxError) -> RowError:
    return RowError(index, sku, str(err.extra.get("field") or ""), err.code, err.message)


def _structural_errors(exc: ValidationError, raw: Any) -> list[RowError]:
    """Pydantic's problems with the body, one row error each, by item."""
    rows = []
    items = raw.get("items") if isinstance(raw, dict) else None
    for problem in exc.errors():
        loc = [str(p) for p in problem.get("loc", ())]
        index, sku = -1, None
        if len(loc) >= 2 and loc[0] == "items" and loc[1].isdigit():
            index = int(loc[1])
            loc = loc[2:]
            if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
                sku = items[index].get("sku")
                sku = sku if isinstance(sku, str) else None
        msg = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
        name = ".".join(loc) or "request"
        rows.append(RowError(index, sku, name, "invalid_parameter", f"{name}: {msg}"))
    return rows


class BatchCreator:
    def __init__(self, gateway: Gateway, submitter: Submitter, profiles: ProfileResolver) -> None:
        self.gw = gateway
        self.submitter = submitter
        self.profiles = profiles

    async def create(self, raw: Any, acct: Account) -> catalog_pb2.Batch:
        try:
            batch = BatchIn.model_validate(raw)
        except ValidationError as exc:
            rows = _structural_errors(exc, raw)
            if all(r.index < 0 for r in rows):
                raise validation_error(exc) from None
            raise invalid_batch(rows) from None
        profile: ProfileVersion | None = None
        if batch.profile:
            profile = await self.profiles.fetch(acct, batch.profile)
        operation = batch.operation or (profile.operation if profile else None)
        if not operation:
            raise InvalidParameter("operation", "A batch without a profile needs an operation.")
        if profile is not None and operation != profile.operation:
            raise InvalidParameter(
                "operation", f"Profile {profile.ref} is for {profile.operation}, not {operation}."
            )
        spec = OPERATIONS.get(operation)
        if spec is None or spec.segmind:
            raise InvalidParameter(
                "operation",
                f"Unknown operation {operation[:64]!r}; one of {', '.join(OPERATIONS)}.",
            )
        if acct.allowed_operations and spec.name not in acct.allowed_operations:
            raise LightboxError(
                f"This key may not use {spec.name}.",
                code="forbidden",
                guidance="Ask the operator for a key that allows this operation.",
            )
        if batch.webhook_url:
            await check_public_url(batch.webhook_url, self.gw.settings.allow_loopback_urls)

        prepared: list[Prepared | None] = []
        errors: list[RowError] = []
        keys: dict[str, int] = {}
        default_suffix = profile.ref if profile else spec.name
        for index, item in enumerate(batch.items):
            try:
                ready = self._prepare(item, batch, spec, profile, default_suffix)
            except LightboxError as err:
                errors.append(_row_error(index, item.sku, err))
                prepared.append(None)
                continue
            if ready.key in keys:
                errors.append(
                    RowError(
                        index,
                        item.sku,
                        "idempotency_key",
                        "invalid_parameter",
                        f"Item {keys[ready.key]} has the same idempotency key {ready.key!r} "
                        "(the same sku, variant and profile).",
                    )
                )
            keys.setdefault(ready.key, index)
            prepared.append(ready)
        if errors:
            raise invalid_batch(errors)

        ready_items = [p for p in prepared if p is not None]
        stored: list[str] = []
        try:
            if spec.takes_image:
                errors = await self._store_images(ready_items, acct, stored)
                if errors:
                    raise invalid_batch(errors)
            request = catalog_pb2.CreateBatchRequest(
                account_id=acct.id,
                operation=spec.name,
                profile=profile.ref if profile else "",
                webhook_url=batch.webhook_url or "",
            )
            for p in ready_items:
                params = struct_pb2.Struct()
                params.update(p.job_params)
                request.items.add(
                    sku=p.item.sku,
                    variant=p.item.variant,
                    operation=spec.name,
                    params=params,
                    inputs=p.inputs,
                    idempotency_key=p.key,
                    request_fingerprint=self._fingerprint(spec.name, p),
                )
            created = await self.gw.call(
                self.gw.clients.catalog.CreateBatch, request, timeout=CREATE_TIMEOUT_SECONDS
            )
        except BaseException:
            for key in stored:
                self.gw.blobs.delete(key)
            raise
        # A replayed item runs on its earlier job's inputs: this copy is not needed.
        for entry in created.items:
            if entry.replayed:
                for key in ready_items[entry.index].inputs.values():
                    self.gw.blobs.delete(key)
        queued = len(ready_items) - len(created.items)
        if queued:
            self.gw.metrics.submits.labels(spec.name).inc(queued)
        return created

    def _prepare(
        self,
        item: BatchItemIn,
        batch: BatchIn,
        spec: OperationSpec,
        profile: ProfileVersion | None,
        default_suffix: str,
    ) -> Prepared:
        """One item's job fields and idempotency key (its image comes later)."""
        fields = {**batch.fields, **item.fields}
        for name in ("webhook_url", "profile", "placement", "vars", "image_upload_id"):
            if name in fields:
                raise InvalidParameter(
                    f"fields.{name}", f"{name} is not a field override; it has its own key."
                )
        if profile is not None:
            composed = compose(
                profile,
                spec.name,
                fields,
                item.placement,
                parse_vars(item.vars),
                set(spec.schema.model_fields),
            )
        else:
            if item.placement or item.vars:
                name = "placement" if item.placement else "vars"
                raise InvalidParameter(name, f"{name} needs the batch's profile.")
            composed = Composed(fields)
        try:
            params = spec.schema.model_validate(composed.fields, context={"has_mask": False})
        except ValidationError as exc:
            raise validation_error(exc) from None
        if spec.takes_image and bool(item.image_url) == bool(item.upload_id):
            raise InvalidParameter("image_url", "Each item needs one of image_url or upload_id.")
        if not spec.takes_image and (item.image_url or item.upload_id):
            raise InvalidParameter("image_url", f"{spec.name} takes no input image.")
        job_params: dict[str, Any] = params.job_params()
        job_params.update(composed.recorded)
        key = item.idempotency_key or f"{item.sku}:{item.variant}:{default_suffix}"
        return Prepared(item, params, job_params, key)

    async def _store_images(
        self, items: list[Prepared], acct: Account, stored: list[str]
    ) -> list[RowError]:
        slots = asyncio.Semaphore(FETCH_CONCURRENCY)
        errors: list[RowError] = []
        max_bytes = self.gw.settings.max_upload_bytes

        async def one(index: int, p: Prepared) -> None:
            async with slots:
                try:
                    if p.item.upload_id:
                        data = await self.submitter.upload_bytes(acct, p.item.upload_id)
                    else:
                        assert p.item.image_url is not None
                        data = await fetch_public_url(
                            p.item.image_url,
                            max_bytes=max_bytes,
                            allow_loopback=self.gw.settings.allow_loopback_urls,
                        )
                    info = await self.submitter.verify(data)
                    if isinstance(p.params, UpscaleParams):
                        longest = max(info.width, info.height) * p.params.scale
                        if longest > MAX_UPSCALED_SIDE:
                            raise InvalidParameter(
                                "scale",
                                f"{info.width}x{info.height} at {p.params.scale}x is over "
                                f"{MAX_UPSCALED_SIDE} px a side.",
                            )
                    key = await run_in_threadpool(
                        self.gw.blobs.put, data, "inputs", "." + info.format
                    )
                    stored.append(key)
                    p.inputs = {"image": key}
                    p.image_sha = hashlib.sha256(data).hexdigest()
                except LightboxError as err:
                    row = _row_error(index, p.item.sku, err)
                    if not row.field:
                        row.field = "upload_id" if p.item.upload_id else "image_url"
                    errors.append(row)

        await asyncio.gather(*(one(i, p) for i, p in enumerate(items)))
        return errors

    @staticmethod
    def _fingerprint(operation: str, p: Prepared) -> str:
        """As a submit's, so a batch item and a submit under one key agree."""
        digests = {"image": p.image_sha} if p.image_sha else {}
        return request_fingerprint(operation, p.job_params, None, digests)


async def read_json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise LightboxError(
            "The body is not valid JSON.", code="invalid_request", guidance="Send a JSON object."
        ) from None
