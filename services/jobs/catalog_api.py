"""The CatalogService servicer: profiles and batches (docs/catalogs.md), thin
translations between the wire and the CatalogStore, like api.JobService.

The gateway validates a profile's content and every batch item's fields; this
service owns their state and treats each batch item as JobService.SubmitJob
treats a submit (operation known, seed fixed, deny-list, models available)."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime

import grpc
from google.protobuf import json_format, timestamp_pb2
from lightbox.v1 import catalog_pb2, catalog_pb2_grpc

from services.common.errors import InvalidParameter
from services.common.grpcutil import handle_errors
from services.common.operations import Operation
from services.jobs.api import SEEDED_OPERATIONS, blocked_reason, with_request_id
from services.jobs.availability import Availability
from services.jobs.catalog_store import (
    BatchItemRecord,
    BatchItemSpec,
    BatchRecord,
    CatalogStore,
    ProfileRecord,
)
from services.jobs.convert import job_to_proto
from services.jobs.settings import JobsSettings

log = logging.getLogger(__name__)

# The params that decide whether an operation's models are needed (Availability.check).
_AVAILABILITY_KEYS = ("preset", "background_prompt", "prompt", "model", "has_mask")


def _ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def profile_to_proto(record: ProfileRecord) -> catalog_pb2.Profile:
    return catalog_pb2.Profile(
        name=record.name,
        version=record.version,
        body_json=json.dumps(record.body, separators=(",", ":")),
        created_at=_ts(record.created_at),
    )


def batch_to_proto(
    record: BatchRecord, items: list[BatchItemRecord] | None = None, next_cursor: str | None = None
) -> catalog_pb2.Batch:
    msg = catalog_pb2.Batch(
        id=record.id,
        status=record.status,
        operation=record.operation,
        profile=record.profile or "",
        items_total=record.items_total,
        credits_reserved=record.credits,
        counts=catalog_pb2.BatchCounts(**record.counts),
        created_at=_ts(record.created_at),
        next_cursor=next_cursor or "",
    )
    for name in ("finished_at", "canceled_at"):
        ts = _ts(getattr(record, name))
        if ts is not None:
            getattr(msg, name).CopyFrom(ts)
    if record.webhook_url:
        msg.webhook.CopyFrom(
            catalog_pb2.BatchWebhook(
                url=record.webhook_url,
                status=record.webhook_status or "",
                attempts=record.webhook_attempts,
                last_status_code=record.webhook_last_status_code or 0,
                last_error=record.webhook_last_error or "",
            )
        )
    for item in items or []:
        entry = msg.items.add(
            index=item.index, sku=item.sku, variant=item.variant, replayed=item.replayed
        )
        if item.job is not None:
            entry.job.CopyFrom(job_to_proto(item.job))
    return msg


class CatalogService(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(
        self,
        catalog: CatalogStore,
        operations: dict[str, Operation],
        availability: Availability,
        settings: JobsSettings,
    ) -> None:
        self.catalog = catalog
        self.operations = operations
        self.availability = availability
        self.settings = settings

    def _operation(self, name: str, field: str = "operation") -> Operation:
        op = self.operations.get(name)
        if op is None:
            raise InvalidParameter(field, f"Unknown operation {name!r}.")
        return op

    # -- profiles ----------------------------------------------------------------

    @with_request_id
    @handle_errors
    def CreateProfile(
        self, request: catalog_pb2.CreateProfileRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Profile:
        try:
            body = json.loads(request.body_json)
        except json.JSONDecodeError:
            raise InvalidParameter("body", "The profile is not a JSON object.") from None
        if not isinstance(body, dict):
            raise InvalidParameter("body", "The profile is not a JSON object.")
        op = self._operation(str(body.get("operation", "")))
        record = self.catalog.create_profile(request.account_id, request.name, op.name, body)
        log.info("profile %s@%d account=%s", record.name, record.version, request.account_id)
        return profile_to_proto(record)

    @with_request_id
    @handle_errors
    def ListProfiles(
        self, request: catalog_pb2.ListProfilesRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.ListProfilesResponse:
        return catalog_pb2.ListProfilesResponse(
            profiles=[
                catalog_pb2.ProfileSummary(
                    name=p.name,
                    latest_version=p.latest_version,
                    operation=p.operation,
                    updated_at=_ts(p.updated_at),
                )
                for p in self.catalog.list_profiles(request.account_id)
            ]
        )

    @with_request_id
    @handle_errors
    def GetProfile(
        self, request: catalog_pb2.GetProfileRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Profile:
        record = self.catalog.get_profile(request.account_id, request.name, request.version or None)
        return profile_to_proto(record)

    @with_request_id
    @handle_errors
    def ListProfileVersions(
        self, request: catalog_pb2.ListProfileVersionsRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.ListProfileVersionsResponse:
        versions = self.catalog.profile_versions(request.account_id, request.name)
        return catalog_pb2.ListProfileVersionsResponse(
            versions=[profile_to_proto(v) for v in versions]
        )

    # -- batches -----------------------------------------------------------------

    @with_request_id
    @handle_errors
    def CreateBatch(
        self, request: catalog_pb2.CreateBatchRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Batch:
        specs: list[BatchItemSpec] = []
        checked: set[str] = set()
        for index, item in enumerate(request.items):
            op = self._operation(item.operation, f"items[{index}].operation")
            for role in op.inputs:
                if role not in item.inputs:
                    raise InvalidParameter(
                        f"items[{index}].{role}", f"{op.name} needs an input image ({role})."
                    )
            params = json_format.MessageToDict(item.params)
            if op.name in SEEDED_OPERATIONS and params.get("seed") is None:
                params["seed"] = secrets.randbelow(2**32)
            reason = blocked_reason(params, self.settings.content_denylist)
            if reason is None:
                key = json.dumps(
                    [op.name, [params.get(k) for k in _AVAILABILITY_KEYS]], default=str
                )
                if key not in checked:
                    self.availability.check(op.name, params)
                    checked.add(key)
            specs.append(
                BatchItemSpec(
                    sku=item.sku,
                    variant=item.variant,
                    operation=op.name,
                    params=params,
                    inputs=dict(item.inputs),
                    credits=op.credits_for(params),
                    pipeline=list(op.pipeline),
                    estimated_seconds=op.estimated_seconds,
                    idempotency_key=item.idempotency_key,
                    request_fingerprint=item.request_fingerprint,
                    max_attempts=self.settings.max_attempts,
                    blocked_reason=reason,
                )
            )
        record, replayed = self.catalog.create_batch(
            request.account_id,
            operation=request.operation,
            profile=request.profile or None,
            webhook_url=request.webhook_url or None,
            items=specs,
        )
        log.info(
            "batch %s: %d items, %.3f credits, account=%s",
            record.id,
            record.items_total,
            record.credits,
            request.account_id,
        )
        msg = batch_to_proto(record)
        # Which items reused an earlier job, so the gateway drops their new input copies.
        for index in sorted(replayed):
            msg.items.add(
                index=index, sku=specs[index].sku, variant=specs[index].variant, replayed=True
            )
        return msg

    @with_request_id
    @handle_errors
    def GetBatch(
        self, request: catalog_pb2.GetBatchRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Batch:
        record, items, cursor = self.catalog.get_batch(
            request.account_id, request.batch_id, limit=request.limit, cursor=request.cursor or None
        )
        return batch_to_proto(record, items, cursor)

    @with_request_id
    @handle_errors
    def ListBatches(
        self, request: catalog_pb2.ListBatchesRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.ListBatchesResponse:
        records, cursor = self.catalog.list_batches(
            request.account_id, limit=request.limit or 20, cursor=request.cursor or None
        )
        return catalog_pb2.ListBatchesResponse(
            batches=[batch_to_proto(r) for r in records], next_cursor=cursor or ""
        )

    @with_request_id
    @handle_errors
    def CancelBatch(
        self, request: catalog_pb2.CancelBatchRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Batch:
        return batch_to_proto(self.catalog.cancel_batch(request.account_id, request.batch_id))
