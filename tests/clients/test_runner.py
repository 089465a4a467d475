"""clients/python/src/lightbox_client/runner.py, the batches path without a server:
items the server refuses in a batch (422 rows, a 409 key conflict naming its item) are
marked failed with its message, and the rest are sent again without them."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import httpx
from lightbox_client.catalog import Item
from lightbox_client.client import AsyncLightbox
from lightbox_client.manifest import Manifest
from lightbox_client.progress import Progress
from lightbox_client.runner import Plan, Runner


def error(status: int, code: str, **extra: object) -> httpx.Response:
    return httpx.Response(
        status, json={"detail": {"error": code, "message": code, "guidance": "", **extra}}
    )


def test_refused_batch_rows_fail_alone(tmp_path: Path) -> None:
    sent: list[list[str]] = []
    answers = [
        error(
            422,
            "invalid_batch",
            errors=[
                {
                    "index": 0,
                    "sku": "A",
                    "field": "vars.x",
                    "error": "invalid_parameter",
                    "message": "missing",
                }
            ],
        ),
        error(409, "idempotency_conflict", index=1, sku="C", job_id="old"),
        httpx.Response(202, json={"batch_id": "b1", "status": "running", "counts": {}}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append([i["sku"] for i in json.loads(request.content)["items"]])
        return answers.pop(0)

    items = [
        Item(n + 2, sku, "main", f"https://img.test/{sku}.jpg", None, {})
        for n, sku in enumerate("ABCD")
    ]
    plan = Plan("product-photo", None, {})
    manifest = Manifest.open(tmp_path, plan.settings())

    async def run() -> list[str]:
        async with AsyncLightbox(
            "http://lb.test", "k", transport=httpx.MockTransport(handler)
        ) as lb:
            runner = Runner(lb, plan, items, manifest, tmp_path, Progress(4, io.StringIO()))
            ready = []
            for item in items:
                entry = runner._fresh(item, manifest.entry(item.sku, item.variant))
                body = await runner._upload(item, entry)
                assert (
                    body is not None and body["idempotency_key"] == f"{item.sku}:main:product-photo"
                )
                ready.append((item, entry, body))
            tracked = await runner._create_batch(ready)
            assert runner.stats.refused == 2 and runner.stats.submitted == 2
            return [i.sku for i, _ in tracked]

    assert asyncio.run(run()) == ["B", "D"]
    assert sent == [["A", "B", "C", "D"], ["B", "C", "D"], ["B", "D"]]
    again = Manifest.open(tmp_path, plan.settings())
    a, c = again.entry("A", "main"), again.entry("C", "main")
    assert (a.status, a.final, a.error) == (
        "failed",
        True,
        {"error": "invalid_parameter", "message": "vars.x: missing"},
    )
    assert c.status == "failed" and c.error and c.error["error"] == "idempotency_conflict"
    assert again.entry("B", "main").batch_id == "b1"
