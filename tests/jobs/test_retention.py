"""Retention on SQLite and PostgreSQL: inputs go after the grace period, outputs
at their expiry (per API flavour / operation), old job rows once settled, orphan
outputs once old; queued and processing jobs are never touched; links to
deleted outputs stop working."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from services.common.blobstore import LocalBlobStore
from services.jobs.models import idempotency_keys, job_events, jobs, ledger, webhooks
from services.jobs.retention import (
    api_flavour,
    output_ttl,
    output_ttl_for,
    run_retention,
    sweep_orphans,
    sweep_uploads,
)
from services.jobs.settings import JobsSettings
from services.jobs.store import AccountRecord, JobRecord, JobStore
from services.jobs.worker import Worker
from tests.jobs.fakes import FakePipeline

if TYPE_CHECKING:
    from tests.jobs.conftest import FakeClock

HOUR = 3600.0
DAY = 24 * HOUR
GRACE = 600.0
KEEP_ROWS = 30 * DAY


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def account(store: JobStore) -> AccountRecord:
    return store.create_account("retention", credits=1000, max_concurrent_jobs=50)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> JobsSettings:
    return JobsSettings(
        home=tmp_path / "home",
        database_url=db_url,
        blob_dir=tmp_path / "blobs",
        lease_seconds=30,
        output_ttl_seconds=DAY,
        output_ttl_overrides={"v2": HOUR, "upscale": 2 * HOUR, "v2:upscale": 0.5 * HOUR},
    )


def submit(
    store: JobStore, account: AccountRecord, blobs: LocalBlobStore, **params: Any
) -> JobRecord:
    image = blobs.put(b"input pixels", "inputs", ".png")
    job, _ = store.submit(
        account_id=account.id,
        operation=params.pop("operation", "remove-background"),
        params=params,
        inputs={"image": image},
        credits=2,
        pipeline=["remove-background"],
        estimated_seconds=1,
        idempotency_key=f"key-{image[-12:]}",
        request_fingerprint="fp",
        webhook_url="https://example.com/hook",
    )
    return job


def run_worker_once(store: JobStore, settings: JobsSettings, blobs: LocalBlobStore) -> None:
    assert Worker(settings, store, FakePipeline(blobs), worker_id="w").run_once()  # type: ignore[arg-type]


def retention(store: JobStore, blobs: LocalBlobStore) -> Any:
    return run_retention(
        store,
        blobs,
        input_grace_seconds=GRACE,
        job_retention_seconds=KEEP_ROWS,
        orphan_min_age_seconds=HOUR,
    )


def count(store: JobStore, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_output_ttl_most_specific_entry_wins() -> None:
    overrides = {"v2": 3600.0, "upscale": 7200.0, "v2:upscale": 1800.0}
    assert output_ttl(86400, overrides, "product-photo", "v1") == 86400
    assert output_ttl(86400, overrides, "product-photo", "v2") == 3600
    assert output_ttl(86400, overrides, "upscale", "v1") == 7200
    assert output_ttl(86400, overrides, "upscale", "v2") == 1800


def test_default_settings_keep_v2_results_one_hour(tmp_path: Path) -> None:
    settings = JobsSettings(home=tmp_path)
    assert settings.output_ttl_seconds == DAY
    assert settings.output_ttl_overrides == {"v2": HOUR}


def test_worker_records_the_flavours_output_expiry(
    store: JobStore,
    clock: FakeClock,
    account: AccountRecord,
    blobs: LocalBlobStore,
    settings: JobsSettings,
) -> None:
    expected = {}
    for params in (
        {},
        {"api": "v2"},
        {"operation": "upscale"},
        {"api": "v2", "operation": "upscale"},
    ):
        job = submit(store, account, blobs, **dict(params))
        run_worker_once(store, settings, blobs)
        done = store.get(job.id)
        assert done.status == "completed" and done.output_expires_at is not None
        assert done.completed_at is not None
        expected[api_flavour(done), done.operation] = (
            done.output_expires_at - done.completed_at
        ).total_seconds()
        assert expected[api_flavour(done), done.operation] == output_ttl_for(settings, done)
    assert expected == {
        ("v1", "remove-background"): DAY,
        ("v2", "remove-background"): HOUR,
        ("v1", "upscale"): 2 * HOUR,
        ("v2", "upscale"): 0.5 * HOUR,
    }


def test_inputs_then_outputs_then_rows_go_and_live_jobs_stay(
    store: JobStore,
    clock: FakeClock,
    account: AccountRecord,
    blobs: LocalBlobStore,
    settings: JobsSettings,
) -> None:
    v1 = submit(store, account, blobs)
    run_worker_once(store, settings, blobs)
    v2 = submit(store, account, blobs, api="v2")
    run_worker_once(store, settings, blobs)
    canceled = submit(store, account, blobs)
    store.cancel(canceled.id, account.id)
    processing = submit(store, account, blobs)
    assert store.claim("slow-worker", lease_seconds=10 * KEEP_ROWS) is not None
    queued = submit(store, account, blobs)
    v1_out, v2_out = store.get(v1.id).output_key, store.get(v2.id).output_key
    assert v1_out and v2_out and blobs.exists(v1_out) and blobs.exists(v2_out)
    balance = store.balance(account.id)

    def inputs_exist(job: JobRecord) -> bool:
        return blobs.exists(job.inputs["image"])

    # Within the grace period nothing goes.
    clock.advance(GRACE - 1)
    assert retention(store, blobs).inputs_deleted == 0
    assert all(inputs_exist(j) for j in (v1, v2, canceled, processing, queued))

    # After it, the inputs of ended jobs go; outputs stay until they expire.
    clock.advance(2)
    report = retention(store, blobs)
    assert (report.inputs_deleted, report.outputs_deleted, report.jobs_deleted) == (3, 0, 0)
    assert not any(inputs_exist(j) for j in (v1, v2, canceled))
    assert inputs_exist(processing) and inputs_exist(queued)
    assert store.get(v1.id).inputs_purged_at is not None
    assert store.get(processing.id).inputs_purged_at is None
    assert retention(store, blobs).inputs_deleted == 0  # idempotent

    # The /v2 result goes after an hour, the /v1 one after a day.
    clock.advance(HOUR)
    assert retention(store, blobs).outputs_deleted == 1
    assert not blobs.exists(v2_out) and blobs.exists(v1_out)
    assert store.get(v2.id).output_purged_at is not None
    clock.advance(DAY)
    assert retention(store, blobs).outputs_deleted == 1
    assert not blobs.exists(v1_out)
    assert store.get(v1.id).status == "completed"  # the row stays, for usage history

    # After 30 days the ended jobs' rows go, with their events, webhook and
    # idempotency rows; their ledger rows stay and the balance is unchanged.
    clock.advance(KEEP_ROWS)
    assert retention(store, blobs).jobs_deleted == 3
    for gone in (v1, v2, canceled):
        assert count(store, jobs, id=gone.id) == 0
        assert count(store, job_events, job_id=gone.id) == 0
        assert count(store, webhooks, job_id=gone.id) == 0
        assert count(store, idempotency_keys, job_id=gone.id) == 0
        assert count(store, ledger, job_id=gone.id) >= 1
    assert store.balance(account.id) == balance

    # The queued and the processing job were never touched.
    for live, status in ((processing, "processing"), (queued, "queued")):
        now = store.get(live.id)
        assert now.status == status and inputs_exist(live)
        assert now.inputs_purged_at is None and now.output_purged_at is None
    assert store.claim("w2", 30) is not None  # the queued one still runs


def test_rows_with_a_pending_webhook_stay(
    store: JobStore,
    clock: FakeClock,
    account: AccountRecord,
    blobs: LocalBlobStore,
    settings: JobsSettings,
) -> None:
    job = submit(store, account, blobs)
    store.cancel(job.id, account.id)
    clock.advance(GRACE + 1)
    retention(store, blobs)
    report = run_retention(
        store,
        blobs,
        input_grace_seconds=GRACE,
        job_retention_seconds=GRACE,
        orphan_min_age_seconds=HOUR,
    )
    assert report.jobs_deleted == 0 and store.get(job.id).webhook.status == "pending"  # type: ignore[union-attr]


def test_orphan_outputs_are_swept_once_old(
    store: JobStore, account: AccountRecord, blobs: LocalBlobStore, settings: JobsSettings
) -> None:
    job = submit(store, account, blobs)
    run_worker_once(store, settings, blobs)
    kept = store.get(job.id).output_key
    assert kept is not None
    old_orphan = blobs.put(b"a worker died before recording me", "outputs", ".png")
    young_orphan = blobs.put(b"a live worker is about to record me", "outputs", ".png")
    long_ago = time.time() - 2 * HOUR
    for key in (kept, old_orphan):
        os.utime(blobs.root / key, (long_ago, long_ago))
    assert sweep_orphans(store, blobs, min_age_seconds=HOUR) == 1
    assert blobs.exists(kept) and blobs.exists(young_orphan) and not blobs.exists(old_orphan)
    assert {key for key, _ in blobs.list("outputs")} == {kept, young_orphan}


def test_uploads_are_deleted_once_past_their_ttl(blobs: LocalBlobStore) -> None:
    old = blobs.put(b"uploaded two hours ago", "uploads", ".png")
    young = blobs.put(b"uploaded just now", "uploads", ".png")
    output = blobs.put(b"an output, not an upload", "outputs", ".png")
    long_ago = time.time() - 2 * HOUR
    for key in (old, output):
        os.utime(blobs.root / key, (long_ago, long_ago))
    assert sweep_uploads(blobs, ttl_seconds=HOUR) == 1
    assert not blobs.exists(old) and blobs.exists(young) and blobs.exists(output)


@pytest.fixture
def gateway(settings: JobsSettings, blobs: LocalBlobStore) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    gw = GatewaySettings(
        home=settings.home, blob_dir=blobs.root, signing_secret="x" * 40, database_url="sqlite:///x"
    )
    yield TestClient(create_app(gw)), gw


def test_links_to_deleted_outputs_stop_working(
    store: JobStore,
    clock: FakeClock,
    account: AccountRecord,
    blobs: LocalBlobStore,
    settings: JobsSettings,
    gateway: Any,
) -> None:
    from services.gateway import signing
    from services.jobs.webhooks import JobBodyRenderer

    client, gw = gateway
    job = submit(store, account, blobs, api="v2")
    run_worker_once(store, settings, blobs)
    render = JobBodyRenderer("http://testserver", gw.signing_secret)
    body = json.loads(render(store.get(job.id)))
    link = urlsplit(body["output_url"])
    assert client.get(link.path + "?" + link.query).status_code == 200

    clock.advance(HOUR + 1)
    assert retention(store, blobs).outputs_deleted == 1
    key = link.path.removeprefix("/v1/files/")
    # The link as issued expires with the blob (410 once the real clock passes
    # it; this test moved only the store's clock); until then it finds no blob.
    expires = int(parse_qs(link.query)["expires"][0])
    assert expires == int(store.get(job.id).output_expires_at.timestamp())  # type: ignore[union-attr]
    assert client.get(link.path + "?" + link.query).status_code == 404
    past = signing.signed_path(gw.signing_secret, key, int(time.time()) - 1)
    assert client.get(past).status_code == 410
    fresh = signing.signed_path(gw.signing_secret, key, int(time.time()) + 600)
    answer = client.get(fresh)
    assert answer.status_code == 404 and answer.json()["detail"]["error"] == "not_found"


def test_admin_retention_runs_a_pass(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from services import cli

    home = tmp_path / "clihome"
    monkeypatch.setenv("LIGHTBOX_HOME", str(home))
    monkeypatch.setenv("LIGHTBOX_DATABASE_URL", db_url)
    monkeypatch.setenv("LIGHTBOX_INPUT_GRACE_SECONDS", "0")
    store = JobStore(db_url)
    try:
        blobs = LocalBlobStore(home / "blobs")
        account = store.create_account("cli", credits=10)
        job = submit(store, account, blobs)
        store.cancel(job.id, account.id)
        assert cli.main(["admin", "retention"]) == 0
        assert capsys.readouterr().out.strip() == "deleted: inputs=1 outputs=0 jobs=0 orphans=0"
        assert not blobs.exists(job.inputs["image"])
    finally:
        store.close()
