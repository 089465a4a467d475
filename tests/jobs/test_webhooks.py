"""Webhooks on SQLite and PostgreSQL: the outbox is written with the terminal
state, deliveries are signed, retried with back-off, recorded per attempt,
shown on the job, resumed after a dispatcher dies, never started twice, and
refused for non-public addresses unless loopback is allowed."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from services.gateway import signing
from services.gateway.views import job_body
from services.jobs.convert import job_to_proto
from services.jobs.models import ledger, webhook_deliveries, webhooks
from services.jobs.store import AccountRecord, JobRecord, JobStore
from services.jobs.webhooks import (
    Dispatcher,
    JobBodyRenderer,
    check_url,
    post,
    retry_delay,
    sign,
    verify,
)
from tests.jobs.webhook_receiver import Receiver

if TYPE_CHECKING:
    from tests.jobs.conftest import FakeClock

BASE_URL = "http://lightbox.test"
LINK_SECRET = "link-signing-secret-for-tests-0123456789"
PRICE = 7.0


@pytest.fixture
def account(store: JobStore) -> AccountRecord:
    return store.create_account("hooks", credits=100)


@pytest.fixture
def receiver(account: AccountRecord) -> Iterator[Receiver]:
    r = Receiver(secret=account.webhook_secret)
    yield r
    r.close()


def dispatcher(store: JobStore, name: str = "d1", **overrides: Any) -> Dispatcher:
    options: dict[str, Any] = {
        "dispatcher_id": name,
        "timeout_s": 2.0,
        "retry_base_s": 1.0,
        "retry_max_s": 60.0,
        "allow_loopback": True,
    }
    options.update(overrides)
    return Dispatcher(store, JobBodyRenderer(BASE_URL, LINK_SECRET), **options)


def submit(store: JobStore, account: AccountRecord, url: str | None, **extra: Any) -> JobRecord:
    job, _ = store.submit(
        account_id=account.id,
        operation="product-photo",
        params={"preset": "marble"},
        inputs={"image": "inputs/20260101/" + "a" * 22 + ".png"},
        credits=PRICE,
        pipeline=["remove-background", "replace-background"],
        estimated_seconds=3,
        webhook_url=url,
        **extra,
    )
    return job


def run_to_completion(store: JobStore, job_id: str, worker: str = "w1") -> None:
    claimed = store.claim(worker, 60)
    assert claimed is not None and claimed.id == job_id
    assert store.complete(
        job_id,
        worker,
        output_key="outputs/20260101/" + "b" * 22 + ".jpg",
        width=640,
        height=480,
        format="jpeg",
        processing_ms=120,
        engines={"matting": "classical"},
        pipeline=["remove-background", "replace-background"],
        output_ttl_seconds=3600,
    )


def deliveries(store: JobStore, job_id: str) -> list[Any]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                select(webhook_deliveries)
                .where(webhook_deliveries.c.job_id == job_id)
                .order_by(webhook_deliveries.c.attempt)
            )
        )


def outbox(store: JobStore, job_id: str) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(select(webhooks).where(webhooks.c.job_id == job_id)).one()


# -- signatures --------------------------------------------------------------------------


def test_signature_signs_timestamp_and_exact_body() -> None:
    body = b'{"id":"abc","status":"completed"}'
    header = sign("whsec", body, 1_700_000_000)
    t, v1 = header.split(",")
    assert t == "t=1700000000" and v1.startswith("v1=") and len(v1) == 3 + 64
    assert verify("whsec", body, header, now=1_700_000_010)
    assert not verify("whsec", body + b" ", header, now=1_700_000_010)
    assert not verify("other", body, header, now=1_700_000_010)
    # A captured request replayed later is refused.
    assert not verify("whsec", body, header, now=1_700_000_000 + 301)
    assert not verify("whsec", body, "v1=" + v1[3:], now=1_700_000_000)
    assert not verify("whsec", body, "garbage", now=1_700_000_000)


def test_retry_delay_grows_and_is_capped() -> None:
    assert 5 <= retry_delay(1, 5, 3600) <= 6.25
    assert 40 <= retry_delay(4, 5, 3600) <= 50
    assert 3600 <= retry_delay(30, 5, 3600) <= 4500


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "http:///nohost", "https://user:pw@example.com/", "x" * 10],
)
def test_urls_refused_without_network(url: str) -> None:
    from services.jobs.webhooks import WebhookRefused

    with pytest.raises(WebhookRefused):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/", "http://localhost:9/", "http://10.0.0.1/", "http://169.254.169.254/"],
)
def test_non_public_addresses_refused_before_connecting(url: str) -> None:
    from services.jobs.webhooks import WebhookRefused

    with pytest.raises(WebhookRefused):
        post(url, b"{}", [], 1.0, False)


# -- delivery ----------------------------------------------------------------------------


def test_signed_delivery_retried_until_2xx_and_recorded(
    store: JobStore, clock: FakeClock, account: AccountRecord, receiver: Receiver
) -> None:
    receiver.answers = [500, 500]
    job = submit(store, account, receiver.url)
    d = dispatcher(store)
    assert d.run_once() is False  # nothing ended yet
    assert store.get(job.id).webhook is not None
    assert store.get(job.id).webhook.status == "pending"  # type: ignore[union-attr]

    run_to_completion(store, job.id)
    assert d.run_once() is True
    assert d.run_once() is False  # the retry waits out its back-off
    clock.advance(1.25)
    assert d.run_once() is True
    clock.advance(2.5)
    assert d.run_once() is True
    clock.advance(3600)
    assert d.run_once() is False  # delivered: nothing more to send

    assert [(r.attempt, r.answered, r.verified) for r in receiver.received] == [
        (1, 500, True),
        (2, 500, True),
        (3, 200, True),
    ]
    rows = deliveries(store, job.id)
    assert [(r.attempt, r.status_code, r.error, r.dispatcher) for r in rows] == [
        (1, 500, None, "d1"),
        (2, 500, None, "d1"),
        (3, 200, None, "d1"),
    ]
    assert rows[0].next_attempt_at is not None and rows[2].next_attempt_at is None
    box = outbox(store, job.id)
    assert (box.status, box.attempts, box.lease_owner, box.finished_at is not None) == (
        "delivered",
        3,
        None,
        True,
    )

    # What was POSTed is the public job body, with a working signed output link.
    sent = receiver.received[-1].json()
    assert sent["id"] == job.id and sent["status"] == "completed"
    parts = urlsplit(sent["output_url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    key = parts.path.removeprefix("/v1/files/")
    assert parts.scheme + "://" + parts.netloc == BASE_URL
    assert signing.check(LINK_SECRET, key, int(query["expires"]), query["signature"]) == "ok"
    assert sent["webhook"]["status"] == "pending"  # as it stood when attempt 3 went out
    assert [a["status_code"] for a in sent["webhook"]["attempts"]] == [500, 500]

    # And the job shows every attempt.
    body = job_body(job_to_proto(store.get(job.id, account.id)), BASE_URL, LINK_SECRET)
    assert body["webhook"]["url"] == receiver.url
    assert body["webhook"]["status"] == "delivered"
    assert body["webhook"]["next_attempt_at"] is None
    assert [(a["attempt"], a["status_code"], a["error"]) for a in body["webhook"]["attempts"]] == [
        (1, 500, None),
        (2, 500, None),
        (3, 200, None),
    ]


def test_timeout_is_an_attempt_and_retried(
    store: JobStore, clock: FakeClock, account: AccountRecord, receiver: Receiver
) -> None:
    receiver.delay = 1.0
    job = submit(store, account, receiver.url)
    run_to_completion(store, job.id)
    assert dispatcher(store, timeout_s=0.2).run_once()
    (row,) = deliveries(store, job.id)
    assert row.status_code is None and "no answer within 0.2 s" in row.error
    assert 150 <= row.duration_ms < 900
    box = outbox(store, job.id)
    assert box.status == "pending" and box.next_attempt_at > clock()


def test_connection_refused_is_retried(
    store: JobStore, clock: FakeClock, account: AccountRecord, receiver: Receiver
) -> None:
    url = receiver.url
    receiver.close()  # nothing listens there any more
    job = submit(store, account, url)
    run_to_completion(store, job.id)
    assert dispatcher(store).run_once()
    (row,) = deliveries(store, job.id)
    assert row.status_code is None and row.error.startswith("connection failed")
    assert outbox(store, job.id).status == "pending"


def test_gives_up_24_hours_after_the_job_ended(
    store: JobStore, clock: FakeClock, account: AccountRecord, receiver: Receiver
) -> None:
    receiver.answers = [503] * 100
    job = submit(store, account, receiver.url)
    run_to_completion(store, job.id)
    d = dispatcher(store, retry_base_s=3600, retry_max_s=4 * 3600)
    for _ in range(40):
        d.run_once()
        clock.advance(5 * 3600)
    box = outbox(store, job.id)
    assert box.status == "failed" and box.next_attempt_at is None
    # Polled every 5 h, back-off 1 h, 2 h, 4 h (capped): about five attempts, the
    # last one started within 24 h of the job's end.
    rows = deliveries(store, job.id)
    assert 4 <= len(rows) <= 6
    assert all(r.status_code == 503 for r in rows)
    assert rows[-1].at < box.created_at + timedelta(hours=24)
    # The last attempt's back-off would have ended past the 24 h: no attempt is due.
    assert rows[-1].next_attempt_at is None and rows[-2].next_attempt_at is not None
    assert len(receiver.received) == len(rows)
    assert store.get(job.id).webhook.status == "failed"  # type: ignore[union-attr]


def test_loopback_refused_unless_allowed(
    store: JobStore, account: AccountRecord, receiver: Receiver
) -> None:
    job = submit(store, account, receiver.url)
    run_to_completion(store, job.id)
    assert dispatcher(store, allow_loopback=False).run_once()
    (row,) = deliveries(store, job.id)
    assert row.status_code is None and row.error.startswith("refused:")
    assert "non-public" in row.error
    assert outbox(store, job.id).status == "failed"  # a refusal is not retried
    assert receiver.received == []


def test_every_terminal_state_is_delivered_once(
    store: JobStore, clock: FakeClock, account: AccountRecord, receiver: Receiver
) -> None:
    failed = submit(store, account, receiver.url)
    claimed = store.claim("w1", 60)
    assert claimed is not None and claimed.id == failed.id
    store.fail(failed.id, "w1", code="invalid_image", message="bad", transient=False)
    canceled = submit(store, account, receiver.url)
    store.cancel(canceled.id, account.id)
    blocked = submit(store, account, receiver.url, blocked_reason="no")
    quiet = submit(store, account, None)  # no webhook_url: nothing to send
    # An idempotent replay of an ended job queues no second delivery.
    replay = submit(store, account, receiver.url, idempotency_key="k1", request_fingerprint="f")
    again = submit(store, account, receiver.url, idempotency_key="k1", request_fingerprint="f")
    assert again.id == replay.id
    store.cancel(replay.id, account.id)

    d = dispatcher(store)
    while d.run_once():
        pass
    by_job = {r.job_id: r.json() for r in receiver.received}
    assert Counter(r.job_id for r in receiver.received) == {
        failed.id: 1,
        canceled.id: 1,
        blocked.id: 1,
        replay.id: 1,
    }
    assert quiet.id not in by_job
    assert by_job[failed.id]["status"] == "failed"
    assert by_job[failed.id]["error"] == {"error": "invalid_image", "message": "bad"}
    assert by_job[failed.id]["credits_refunded"] == PRICE
    assert by_job[canceled.id]["status"] == "canceled"
    assert by_job[blocked.id]["status"] == "blocked"
    assert all(r.verified for r in receiver.received)
    # Refunds: only `quiet` (still queued) is charged.
    with store.engine.connect() as conn:
        reasons = Counter(
            row.reason for row in conn.execute(select(ledger).where(ledger.c.job_id.is_not(None)))
        )
    assert reasons == {"charge": 4, "refund": 3}
    assert store.balance(account.id) == 100 - PRICE


def test_restarted_dispatcher_resumes_a_dead_ones_delivery(
    store: JobStore, clock: FakeClock, account: AccountRecord, receiver: Receiver
) -> None:
    job = submit(store, account, receiver.url)
    run_to_completion(store, job.id)
    # Dispatcher "dead" claims attempt 1 and dies before sending or recording.
    task = store.claim_webhook("dead", lease_seconds=40)
    assert task is not None and task.attempt == 1 and task.secret == account.webhook_secret
    fresh = dispatcher(store, "fresh")
    assert fresh.run_once() is False  # the lease is alive: nobody else may send
    clock.advance(41)
    assert fresh.run_once() is True
    rows = deliveries(store, job.id)
    assert [(r.attempt, r.dispatcher, r.status_code) for r in rows] == [
        (1, "dead", None),
        (2, "fresh", 200),
    ]
    assert "lease expired" in rows[0].error
    assert [r.attempt for r in receiver.received] == [2]
    assert outbox(store, job.id).status == "delivered"


def test_late_outcome_of_a_lost_lease_does_not_overwrite_the_new_holder(
    store: JobStore, clock: FakeClock, account: AccountRecord, receiver: Receiver
) -> None:
    job = submit(store, account, receiver.url)
    run_to_completion(store, job.id)
    slow = store.claim_webhook("slow", lease_seconds=10)
    assert slow is not None
    clock.advance(11)
    assert dispatcher(store, "fresh").run_once()
    assert outbox(store, job.id).status == "delivered"
    # The slow dispatcher finally reports a 500 for attempt 1.
    state = store.record_webhook_attempt(
        job.id,
        "slow",
        1,
        started_at=clock(),
        duration_ms=9000,
        status_code=500,
        error=None,
        delivered=False,
        retry_in_seconds=5,
    )
    assert state.status == "delivered"
    assert [(a.attempt, a.status_code) for a in state.attempts] == [(1, 500), (2, 200)]


def test_racing_dispatchers_never_send_an_attempt_twice(
    store: JobStore, account: AccountRecord, receiver: Receiver
) -> None:
    jobs = []
    for _ in range(12):
        jobs.append(submit(store, account, receiver.url))
        run_to_completion(store, jobs[-1].id)
    racers = [dispatcher(store, f"d{i}") for i in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(racers))

    def drain(d: Dispatcher) -> None:
        start.wait()
        try:
            while d.run_once():
                pass
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(d,)) for d in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sent = Counter((r.job_id, r.attempt) for r in receiver.received)
    assert sent == {(j.id, 1): 1 for j in jobs}
    for j in jobs:
        assert [r.status_code for r in deliveries(store, j.id)] == [200]


def test_rotated_secret_signs_the_next_delivery(
    store: JobStore, account: AccountRecord, receiver: Receiver
) -> None:
    rotated = store.rotate_webhook_secret(account.id)
    assert rotated.webhook_secret != account.webhook_secret and len(rotated.webhook_secret) == 64
    job = submit(store, account, receiver.url)
    run_to_completion(store, job.id)
    assert dispatcher(store).run_once()
    (got,) = receiver.received
    assert not got.verified  # the receiver still holds the old secret
    assert verify(rotated.webhook_secret, got.body, got.signature)


def test_dispatcher_thread_delivers_soon_after_the_job_ends(
    db_url: str, receiver: Receiver
) -> None:
    """Real clock, the run_forever loop: what a worker process runs."""
    store = JobStore(db_url)
    try:
        account = store.create_account("live", credits=10)
        receiver.secret = account.webhook_secret
        job = submit(store, account, receiver.url)
        stop = threading.Event()
        d = dispatcher(store, poll_s=0.05)
        thread = threading.Thread(target=d.run_forever, args=(stop,))
        thread.start()
        try:
            run_to_completion(store, job.id)
            deadline = time.monotonic() + 10
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            stop.set()
            thread.join()
        assert [r.verified for r in receiver.received] == [True]
    finally:
        store.close()


def test_admin_commands_show_and_rotate_the_secret_and_a_jobs_deliveries(
    db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services import cli

    monkeypatch.setenv("LIGHTBOX_HOME", str(tmp_path))
    monkeypatch.setenv("LIGHTBOX_DATABASE_URL", db_url)
    store = JobStore(db_url)
    try:
        account = store.create_account("cli", credits=10)
        assert cli.main(["admin", "webhook-secret", account.id]) == 0
        assert capsys.readouterr().out.strip() == account.webhook_secret
        assert cli.main(["admin", "webhook-secret", account.id, "--rotate"]) == 0
        rotated = capsys.readouterr().out.strip()
        assert rotated != account.webhook_secret
        assert store.get_account(account.id).webhook_secret == rotated

        receiver = Receiver(secret=rotated, answers=[502])
        try:
            job = submit(store, account, receiver.url)
            run_to_completion(store, job.id)
            d = dispatcher(store, retry_base_s=0.01, retry_max_s=0.01)
            d.run_once()
            time.sleep(0.05)
            d.run_once()
        finally:
            receiver.close()
        assert cli.main(["admin", "job", job.id]) == 0
        out = capsys.readouterr().out
        assert f"job {job.id} product-photo" in out and "status=completed" in out
        assert " queued     attempt 0" in out and " processing attempt 1 by w1" in out
        assert " completed  attempt 1 by w1" in out
        assert f"webhook {receiver.url}: delivered" in out
        assert "#1" in out and "-> 502" in out and "#2" in out and "-> 200" in out
    finally:
        store.close()


def test_readme_verification_snippet_accepts_our_signatures_only() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```python\nimport hashlib, hmac, time")
    code = readme[start + len("```python\n") : readme.index("```", start + 10)]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    check = namespace["verify_lightbox_signature"]
    body = b'{"id":"abc","status":"completed"}'
    header = sign("whsec", body, int(time.time()))
    assert check("whsec", body, header)
    assert not check("whsec", body + b"\n", header)
    assert not check("other", body, header)
    assert not check("whsec", body, sign("whsec", body, int(time.time()) - 3600))
    assert not check("whsec", body, "nonsense")
