"""The batch dispatcher (services/jobs/batches.py) on SQLite and PostgreSQL:
a finished batch's one webhook is POSTed signed over real HTTP, retried after
a failure, and never sent again once delivered."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from services.jobs.batches import BatchBodyRenderer, BatchDispatcher
from services.jobs.catalog_store import CatalogStore
from services.jobs.store import AccountRecord, JobStore
from tests.jobs.test_catalog_store import batch, item
from tests.jobs.webhook_receiver import Receiver

if TYPE_CHECKING:
    from tests.jobs.conftest import FakeClock


@pytest.fixture
def catalog(store: JobStore) -> CatalogStore:
    return CatalogStore(store)


@pytest.fixture
def account(store: JobStore) -> AccountRecord:
    return store.create_account("shop", credits=20)


def test_batch_webhook_is_posted_signed_once_over_http(
    catalog: CatalogStore, store: JobStore, account: AccountRecord, clock: FakeClock
) -> None:
    receiver = Receiver(secret=account.webhook_secret, answers=[503])
    try:
        created = batch(catalog, account, [item(0), item(1)], webhook_url=receiver.url)
        dispatcher = BatchDispatcher(
            catalog,
            BatchBodyRenderer("http://lightbox.test", "link-secret-for-tests-0123456789"),
            timeout_s=2.0,
            retry_base_s=1.0,
            allow_loopback=True,
        )
        assert dispatcher.run_once() is False  # items still queued: nothing to send
        for _ in range(2):
            job = store.claim("w1", 30)
            assert job is not None
            store.fail(job.id, "w1", code="boom", message="x", transient=False)
        assert dispatcher.run_once() is True  # settles, sends, gets a 503
        assert dispatcher.run_once() is False  # the retry is not due yet
        clock.advance(5)
        assert dispatcher.run_once() is True
        clock.advance(3600)
        assert dispatcher.run_once() is False
    finally:
        receiver.close()
    assert [r.answered for r in receiver.received] == [503, 200]
    assert all(r.verified for r in receiver.received)
    body = receiver.received[-1].json()
    assert body["batch_id"] == created.id and body["status"] == "completed"
    assert body["counts"]["failed"] == 2 and body["progress"] == 1.0
    assert "items" not in body


def test_a_batch_without_a_webhook_settles_and_sends_nothing(
    catalog: CatalogStore, store: JobStore, account: AccountRecord
) -> None:
    created = batch(catalog, account, [item(0)])
    job = store.claim("w1", 30)
    assert job is not None
    store.fail(job.id, "w1", code="boom", message="x", transient=False)
    dispatcher = BatchDispatcher(catalog, BatchBodyRenderer("http://lightbox.test", "s" * 32))
    assert dispatcher.run_once() is False
    settled, _, _ = catalog.get_batch(account.id, created.id)
    assert settled.status == "completed" and settled.webhook_status is None
