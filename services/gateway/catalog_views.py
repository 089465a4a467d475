"""Profile and Batch (wire) -> the public bodies of docs/catalogs.md. Built as
plain dicts, like views.job_body; the jobs service renders batch webhooks with
the same function, so the webhook body is the GET body without items."""

from __future__ import annotations

import json
from typing import Any

from lightbox.v1 import catalog_pb2

from services.gateway.views import _time, job_body

COUNTED = ("queued", "processing", "completed", "failed", "blocked", "canceled")
TERMINAL_COUNTED = ("completed", "failed", "blocked", "canceled")


def profile_body(profile: catalog_pb2.Profile) -> dict[str, Any]:
    body = json.loads(profile.body_json)
    return {
        "name": profile.name,
        "version": profile.version,
        "created_at": _time(profile.created_at),
        "operation": body.get("operation"),
        "description": body.get("description"),
        "fields": body.get("fields", {}),
        "locked": body.get("locked", []),
        "placements": body.get("placements", {}),
        "prompts": body.get("prompts", {}),
        "qa_thresholds": body.get("qa_thresholds"),
    }


def batch_body(
    batch: catalog_pb2.Batch, base_url: str, secret: str, *, items: bool = False
) -> dict[str, Any]:
    counts = {name: getattr(batch.counts, name) for name in COUNTED}
    done = sum(counts[name] for name in TERMINAL_COUNTED)
    body: dict[str, Any] = {
        "batch_id": batch.id,
        "status": batch.status,
        "operation": batch.operation,
        "profile": batch.profile or None,
        "items_total": batch.items_total,
        "credits_reserved": round(batch.credits_reserved, 4),
        "counts": counts,
        "progress": round(done / batch.items_total, 4) if batch.items_total else 1.0,
        "created_at": _time(batch.created_at),
        "finished_at": _time(batch.finished_at),
        "canceled_at": _time(batch.canceled_at),
        "webhook": None,
    }
    if batch.HasField("webhook"):
        body["webhook"] = {
            "url": batch.webhook.url,
            "status": batch.webhook.status or None,
            "attempts": batch.webhook.attempts,
            "last_status_code": batch.webhook.last_status_code or None,
            "last_error": batch.webhook.last_error or None,
        }
    if items:
        body["items"] = [_item_body(item, base_url, secret) for item in batch.items]
        body["next_cursor"] = batch.next_cursor or None
    return body


def _item_body(item: catalog_pb2.BatchItem, base_url: str, secret: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": item.index,
        "sku": item.sku,
        "variant": item.variant,
        "generation_id": None,
        "status": None,
        "output_url": None,
        "error": None,
        "qa": None,
        "replayed": item.replayed,
    }
    if not item.HasField("job"):
        out["error"] = {
            "error": "expired",
            "message": "The job's record was deleted by retention.",
        }
        return out
    job = job_body(item.job, base_url, secret)
    out.update(
        generation_id=job["generation_id"],
        status=job["status"],
        output_url=job.get("output_url"),
        error=job.get("error"),
        qa=job.get("qa"),
    )
    return out
