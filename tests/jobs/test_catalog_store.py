"""CatalogStore on SQLite and PostgreSQL: profile versions, batches created all
or nothing, replays, counts and paging, cancel with refunds, settling and the
batch webhook's leased outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from services.common.errors import InsufficientCredits, LightboxError, NotFound
from services.jobs.catalog_store import BatchItemSpec, BatchRecord, CatalogStore
from services.jobs.store import AccountRecord, JobStore

if TYPE_CHECKING:
    from tests.jobs.conftest import FakeClock

PRICE = 2.0


@pytest.fixture
def catalog(store: JobStore) -> CatalogStore:
    return CatalogStore(store)


@pytest.fixture
def account(store: JobStore) -> AccountRecord:
    return store.create_account("shop", credits=20)


def item(n: int, **overrides: Any) -> BatchItemSpec:
    fields: dict[str, Any] = {
        "sku": f"S{n}",
        "variant": "main",
        "operation": "remove-background",
        "params": {"output_format": "png"},
        "inputs": {"image": f"inputs/x/{n}"},
        "credits": PRICE,
        "pipeline": ["remove-background"],
        "estimated_seconds": 1,
        "idempotency_key": f"S{n}:main:remove-background",
        "request_fingerprint": f"fp{n}",
    }
    fields.update(overrides)
    return BatchItemSpec(**fields)


def batch(
    catalog: CatalogStore, account: AccountRecord, items: list[BatchItemSpec], **kw: Any
) -> BatchRecord:
    record, replayed = catalog.create_batch(
        account.id,
        operation="remove-background",
        profile=kw.get("profile"),
        webhook_url=kw.get("webhook_url"),
        items=items,
    )
    assert replayed == {i for i, spec in enumerate(items) if spec.sku in kw.get("seen", ())}
    return record


def test_profile_versions_are_numbered_per_account_and_name(
    catalog: CatalogStore, store: JobStore, account: AccountRecord
) -> None:
    other = store.create_account("other")
    first = catalog.create_profile(account.id, "shoe", "product-photo", {"fields": {"a": 1}})
    second = catalog.create_profile(account.id, "shoe", "product-photo", {"fields": {"a": 2}})
    theirs = catalog.create_profile(other.id, "shoe", "product-photo", {"fields": {"a": 3}})
    assert (first.version, second.version, theirs.version) == (1, 2, 1)
    assert catalog.get_profile(account.id, "shoe").version == 2
    assert catalog.get_profile(account.id, "shoe", 1).body == {"fields": {"a": 1}}
    assert [v.version for v in catalog.profile_versions(account.id, "shoe")] == [1, 2]
    summary = catalog.list_profiles(account.id)
    assert [(p.name, p.latest_version) for p in summary] == [("shoe", 2)]
    with pytest.raises(LightboxError) as missing:
        catalog.get_profile(account.id, "shoe", 3)
    assert missing.value.code == "profile_not_found"
    with pytest.raises(LightboxError) as foreign:
        catalog.profile_versions(store.create_account("third").id, "shoe")
    assert foreign.value.code == "profile_not_found"


def test_batch_charges_each_item_once_and_replays_cost_nothing(
    catalog: CatalogStore, store: JobStore, account: AccountRecord
) -> None:
    created = batch(catalog, account, [item(n) for n in range(3)])
    assert created.items_total == 3 and created.credits == 3 * PRICE
    assert created.counts["queued"] == 3
    assert store.balance(account.id) == 20 - 3 * PRICE
    again = batch(catalog, account, [item(n) for n in range(4)], seen={"S0", "S1", "S2"})
    assert again.credits == PRICE
    assert store.balance(account.id) == 20 - 4 * PRICE
    _, items, _ = catalog.get_batch(account.id, again.id, limit=10)
    assert [i.replayed for i in items] == [True, True, True, False]
    _, first_items, _ = catalog.get_batch(account.id, created.id, limit=10)
    assert [i.job.id for i in items[:3]] == [i.job.id for i in first_items]
    jobs, _ = store.list_jobs(account.id, limit=100)
    assert len(jobs) == 4


def test_short_credits_or_a_conflicting_key_queue_nothing(
    catalog: CatalogStore, store: JobStore, account: AccountRecord
) -> None:
    with pytest.raises(InsufficientCredits) as short:
        batch(catalog, account, [item(n) for n in range(11)])
    assert short.value.extra == {"required": 22.0, "available": 20.0}
    batch(catalog, account, [item(0)])
    with pytest.raises(LightboxError) as conflict:
        batch(catalog, account, [item(1), item(0, request_fingerprint="other")])
    assert conflict.value.code == "idempotency_conflict"
    assert conflict.value.extra["index"] == 1 and conflict.value.extra["sku"] == "S0"
    assert store.balance(account.id) == 20 - PRICE
    assert len(store.list_jobs(account.id, limit=100)[0]) == 1
    assert len(catalog.list_batches(account.id)[0]) == 1


def test_paging_cancel_refunds_queued_items_and_settles(
    catalog: CatalogStore, store: JobStore, account: AccountRecord
) -> None:
    created = batch(catalog, account, [item(n) for n in range(5)], webhook_url="https://x.test/h")
    _, page, cursor = catalog.get_batch(account.id, created.id, limit=2)
    assert [i.index for i in page] == [0, 1] and cursor == "2"
    _, rest, end = catalog.get_batch(account.id, created.id, limit=10, cursor=cursor)
    assert [i.index for i in rest] == [2, 3, 4] and end is None
    running = store.claim("w1", 30)
    assert running is not None
    canceled = catalog.cancel_batch(account.id, created.id)
    assert canceled.counts["canceled"] == 4 and canceled.counts["processing"] == 1
    assert canceled.status == "running" and canceled.canceled_at is not None
    assert store.balance(account.id) == 20 - PRICE
    assert catalog.claim_batch_webhook("d1", 30) is None
    store.fail(running.id, "w1", code="boom", message="x", transient=False)
    assert catalog.settle_running() == 1
    assert catalog.settle_running() == 0
    settled, _, _ = catalog.get_batch(account.id, created.id)
    assert settled.status == "canceled" and settled.finished_at is not None
    assert store.balance(account.id) == 20
    # A finished batch stays as it ended.
    done = batch(catalog, account, [item(9)])
    job = store.claim("w1", 30)
    assert job is not None
    store.fail(job.id, "w1", code="boom", message="x", transient=False)
    again = catalog.cancel_batch(account.id, done.id)
    assert again.status == "completed" and again.canceled_at is None


def test_batch_webhook_is_claimed_once_and_retried(
    catalog: CatalogStore, store: JobStore, account: AccountRecord, clock: FakeClock
) -> None:
    created = batch(catalog, account, [item(0)], webhook_url="https://x.test/h")
    job = store.claim("w1", 30)
    assert job is not None
    store.fail(job.id, "w1", code="boom", message="x", transient=False)
    assert catalog.settle(created.id) is True
    assert catalog.settle(created.id) is False
    task = catalog.claim_batch_webhook("d1", 30)
    assert task is not None and task.attempt == 1 and task.secret == account.webhook_secret
    assert task.batch.status == "completed" and task.batch.counts["failed"] == 1
    assert catalog.claim_batch_webhook("d2", 30) is None
    state = catalog.record_batch_webhook(
        created.id, "d1", 1, status_code=500, error=None, delivered=False, retry_in_seconds=5
    )
    assert state == "pending"
    assert catalog.claim_batch_webhook("d2", 30) is None
    clock.advance(6)
    retry = catalog.claim_batch_webhook("d2", 30)
    assert retry is not None and retry.attempt == 2
    assert (
        catalog.record_batch_webhook(
            created.id, "d2", 2, status_code=204, error=None, delivered=True, retry_in_seconds=None
        )
        == "delivered"
    )
    clock.advance(60)
    assert catalog.claim_batch_webhook("d3", 30) is None
    done, _, _ = catalog.get_batch(account.id, created.id)
    assert done.webhook_status == "delivered" and done.webhook_attempts == 2


def test_batches_are_per_account(
    catalog: CatalogStore, store: JobStore, account: AccountRecord
) -> None:
    created = batch(catalog, account, [item(0)])
    other = store.create_account("other")
    with pytest.raises(NotFound):
        catalog.get_batch(other.id, created.id)
    with pytest.raises(NotFound):
        catalog.cancel_batch(other.id, created.id)
    assert catalog.list_batches(other.id) == ([], None)
