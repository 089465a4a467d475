"""Batch housekeeping in the worker processes: settle batches whose items have
all ended, and deliver each finished batch's one webhook.

The webhook uses the job webhooks' transport and signature (services.jobs.
webhooks: `post`, `sign`, `retry_delay`, the same address rules and timeouts);
its outbox is the batch row itself (CatalogStore.settle makes it pending in the
transaction that finishes the batch; claims are leased). Delivery is at least
once, retried with back-off until a 2xx or the give-up time; receivers
deduplicate on X-Lightbox-Batch-Id."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from services.common.links import load_signing_secret, public_base_url
from services.jobs.catalog_store import BatchRecord, BatchWebhookTask, CatalogStore
from services.jobs.settings import JobsSettings
from services.jobs.store import JobStore
from services.jobs.webhooks import (
    LEASE_MARGIN_SECONDS,
    SIGNATURE_HEADER,
    DeliveryFailed,
    Sender,
    WebhookRefused,
    post,
    retry_delay,
    sign,
)

log = logging.getLogger(__name__)


class BatchBodyRenderer:
    """The body of GET /v1/batches/{id} without items, as bytes."""

    def __init__(self, base_url: str, signing_secret: str) -> None:
        self.base_url = base_url
        self.signing_secret = signing_secret

    def __call__(self, batch: BatchRecord) -> bytes:
        from services.gateway.catalog_views import batch_body
        from services.jobs.catalog_api import batch_to_proto

        body = batch_body(batch_to_proto(batch), self.base_url, self.signing_secret)
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class BatchDispatcher:
    def __init__(
        self,
        catalog: CatalogStore,
        render: Callable[[BatchRecord], bytes],
        *,
        timeout_s: float = 10.0,
        retry_base_s: float = 5.0,
        retry_max_s: float = 3600.0,
        poll_s: float = 0.5,
        allow_loopback: bool = False,
        send: Sender = post,
    ) -> None:
        self.catalog = catalog
        self.render = render
        self.id = f"{socket.gethostname()}:{os.getpid()}:batch-{uuid.uuid4().hex[:6]}"
        self.timeout_s = timeout_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.poll_s = poll_s
        self.allow_loopback = allow_loopback
        self.send = send

    @classmethod
    def from_settings(cls, settings: JobsSettings, store: JobStore) -> BatchDispatcher:
        render = BatchBodyRenderer(
            public_base_url(settings.public_base_url, settings.http_port),
            load_signing_secret(settings.signing_secret, settings.home, settings.mode),
        )
        return cls(
            CatalogStore(store),
            render,
            timeout_s=settings.webhook_timeout_seconds,
            retry_base_s=settings.webhook_retry_base_seconds,
            retry_max_s=settings.webhook_retry_max_seconds,
            poll_s=settings.webhook_poll_seconds,
            allow_loopback=settings.allow_loopback_urls,
        )

    def run_once(self) -> bool:
        """Settle what has ended, then make one due delivery; False when none was due."""
        self.catalog.settle_running()
        due = self.catalog.seconds_until_batch_webhook_due()
        if due is None or due > 0:
            return False
        task = self.catalog.claim_batch_webhook(self.id, self.timeout_s + LEASE_MARGIN_SECONDS)
        if task is None:
            return False
        self._attempt(task)
        return True

    def _attempt(self, task: BatchWebhookTask) -> str:
        status_code: int | None = None
        error: str | None = None
        permanent = False
        try:
            body = self.render(task.batch)
            headers = [
                (SIGNATURE_HEADER, sign(task.secret, body, int(time.time()))),
                ("X-Lightbox-Batch-Id", task.batch.id),
                ("X-Lightbox-Attempt", str(task.attempt)),
            ]
            status_code = self.send(task.url, body, headers, self.timeout_s, self.allow_loopback)
        except WebhookRefused as exc:
            error, permanent = f"refused: {exc}", True
        except DeliveryFailed as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - recorded on the batch, then retried
            log.exception("batch webhook %s attempt %d", task.batch.id, task.attempt)
            error = f"{type(exc).__name__}: {exc}"
        delivered = status_code is not None and 200 <= status_code < 300
        retry = None
        if not delivered and not permanent:
            retry = retry_delay(task.attempt, self.retry_base_s, self.retry_max_s)
        state = self.catalog.record_batch_webhook(
            task.batch.id,
            self.id,
            task.attempt,
            status_code=status_code,
            error=error,
            delivered=delivered,
            retry_in_seconds=retry,
        )
        log.log(
            logging.INFO if delivered else logging.WARNING,
            "batch webhook %s attempt %d -> %s (%s)",
            task.batch.id,
            task.attempt,
            status_code or error,
            state,
        )
        return state

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception:
                log.exception("batch dispatcher loop error; backing off")
                stop.wait(1.0)
                continue
            stop.wait(self.poll_s)


def start_batch_thread(
    settings: JobsSettings, store: JobStore, stop: threading.Event
) -> threading.Thread:
    dispatcher = BatchDispatcher.from_settings(settings, store)
    thread = threading.Thread(
        target=dispatcher.run_forever, args=(stop,), name="batches", daemon=True
    )
    thread.start()
    return thread
