"""Webhook delivery: POST the public job body to the job's webhook_url when the
job ends, signed with the account's webhook secret, retried with back-off.

Durability comes from the outbox in the database (`webhooks`, written in the
transaction that ended the job) and the delivery log (`webhook_deliveries`,
one row per attempt). Dispatchers claim due deliveries under a lease, as
workers claim jobs, so a restarted dispatcher resumes what a dead one left
and two dispatchers never start the same attempt. Delivery is at least once:
a dispatcher that dies after sending but before recording leaves an attempt
of unknown outcome, and the next attempt sends the body again (receivers
deduplicate on the job id).

Signature: `X-Lightbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>" under the account's webhook secret>` (see `verify`).

The address rules are those of image_url: http(s) only, no credentials, every
resolved address public (services.gateway.fetch.address_allowed), checked again
on the connected socket; the connection goes to the vetted address, so DNS
cannot change between check and connect. Redirects are not followed (a 3xx is
a failed attempt).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from urllib.parse import SplitResult, urlsplit

import h11

from services.common.links import load_signing_secret, public_base_url
from services.gateway.fetch import address_allowed
from services.jobs.convert import job_to_proto
from services.jobs.settings import JobsSettings
from services.jobs.store import JobRecord, JobStore, WebhookState, WebhookTask

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Lightbox-Signature"
# verify() refuses signatures older (or newer) than this: a captured request
# cannot be replayed later.
SIGNATURE_TOLERANCE_SECONDS = 300
USER_AGENT = "Lightbox-Webhooks/1.0"
# A claimed attempt's lease outlives its timeout by this much, so that only a
# dead dispatcher loses one.
LEASE_MARGIN_SECONDS = 30.0
# Record an outcome despite a database outage this many times before leaving
# the attempt to lease expiry.
RECORD_TRIES = 5
MAX_URL_LENGTH = 2048

Headers = Sequence[tuple[str, str]]
Sender = Callable[[str, bytes, Headers, float, bool], int]


# -- signatures ----------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Lightbox-Signature value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance_seconds: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: the header signs exactly these bytes with this
    secret, at a time within the tolerance of `now`."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


# -- one HTTP attempt ------------------------------------------------------------------


class WebhookRefused(Exception):
    """The URL may not be called (scheme, credentials, non-public address): not retried."""


class DeliveryFailed(Exception):
    """No HTTP answer (DNS, connection, TLS, timeout): retried."""


def check_url(url: str) -> None:
    """The checks that need no network; raises WebhookRefused."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("only http and https URLs are called")
    if not parts.hostname:
        raise WebhookRefused("the URL has no host")
    if parts.username or parts.password:
        raise WebhookRefused("credentials in URLs are not accepted")


def post(url: str, body: bytes, headers: Headers, timeout_s: float, allow_loopback: bool) -> int:
    """POST `body` as JSON to `url` under the address rules; the HTTP status.

    `timeout_s` bounds connecting, sending and waiting for the status line
    (name resolution uses the system resolver's own timeout).
    """
    check_url(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + timeout_s
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryFailed(f"cannot resolve {host}: {exc.strerror}") from None
    if not infos or any(not address_allowed(info[4][0], allow_loopback) for info in infos):
        raise WebhookRefused(f"{host} resolves to a non-public address")
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(address)
            if not address_allowed(sock.getpeername()[0], allow_loopback):
                raise WebhookRefused("the connected address is not public")
            if parts.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            return _exchange(sock, parts, host, body, headers, deadline)
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {timeout_s:g} s") from None
        except ssl.SSLError as exc:
            raise DeliveryFailed(f"TLS error: {exc.reason or exc}") from None
        except OSError as exc:
            raise DeliveryFailed(f"connection failed: {exc.strerror or exc}") from None
        except h11.ProtocolError as exc:
            raise DeliveryFailed(f"malformed HTTP answer: {exc}") from None
    finally:
        sock.close()


def _exchange(
    sock: socket.socket,
    parts: SplitResult,
    host: str,
    body: bytes,
    headers: Headers,
    deadline: float,
) -> int:
    conn = h11.Connection(our_role=h11.CLIENT)
    request = h11.Request(
        method="POST",
        target=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        headers=[
            ("Host", host if parts.port is None else f"{host}:{parts.port}"),
            ("User-Agent", USER_AGENT),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *headers,
        ],
    )
    sock.sendall(
        conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    )
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            return int(event.status_code)
        elif isinstance(event, h11.ConnectionClosed):
            raise DeliveryFailed("the connection closed before an answer")


# -- the dispatcher ----------------------------------------------------------------------


def retry_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Seconds before attempt `attempt + 1`: exponential, capped, with up to
    25 % jitter so deliveries failed by one outage do not return together."""
    return min(max_s, base_s * 2 ** (attempt - 1)) * random.uniform(1.0, 1.25)


class JobBodyRenderer:
    """The body of GET /v1/image/{id} for a job, as bytes: the gateway's own
    rendering, with output links signed by the gateway's secret."""

    def __init__(self, base_url: str, signing_secret: str) -> None:
        self.base_url = base_url
        self.signing_secret = signing_secret

    def __call__(self, job: JobRecord) -> bytes:
        from services.gateway.views import job_body

        body = job_body(job_to_proto(job), self.base_url, self.signing_secret)
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_settings(cls, settings: JobsSettings) -> JobBodyRenderer:
        return cls(
            public_base_url(settings.public_base_url, settings.http_port),
            load_signing_secret(settings.signing_secret, settings.home, settings.mode),
        )


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        render: Callable[[JobRecord], bytes],
        *,
        dispatcher_id: str | None = None,
        timeout_s: float = 10.0,
        retry_base_s: float = 5.0,
        retry_max_s: float = 3600.0,
        poll_s: float = 0.5,
        allow_loopback: bool = False,
        send: Sender = post,
        lease_s: float | None = None,
    ) -> None:
        """`lease_s`: how long a claimed attempt is ours; by default the
        timeout plus a margin for recording the outcome."""
        self.store = store
        self.render = render
        self.id = dispatcher_id or f"{socket.gethostname()}:{os.getpid()}:wh-{uuid.uuid4().hex[:6]}"
        self.timeout_s = timeout_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.poll_s = poll_s
        self.allow_loopback = allow_loopback
        self.send = send
        self.lease_s = lease_s if lease_s is not None else timeout_s + LEASE_MARGIN_SECONDS

    @classmethod
    def from_settings(
        cls, settings: JobsSettings, store: JobStore, dispatcher_id: str | None = None
    ) -> Dispatcher:
        return cls(
            store,
            JobBodyRenderer.from_settings(settings),
            dispatcher_id=dispatcher_id,
            timeout_s=settings.webhook_timeout_seconds,
            retry_base_s=settings.webhook_retry_base_seconds,
            retry_max_s=settings.webhook_retry_max_seconds,
            poll_s=settings.webhook_poll_seconds,
            allow_loopback=settings.allow_loopback_urls,
        )

    def run_once(self) -> bool:
        """Claim and make one due attempt; False when none was due."""
        task = self.store.claim_webhook(self.id, self.lease_s)
        if task is None:
            return False
        self._attempt(task)
        return True

    def _attempt(self, task: WebhookTask) -> WebhookState | None:
        job = task.job
        started_at = self.store.now()
        status_code: int | None = None
        error: str | None = None
        permanent = False
        t0 = time.monotonic()
        try:
            body = self.render(job)
            headers = [
                (SIGNATURE_HEADER, sign(task.secret, body, int(time.time()))),
                ("X-Lightbox-Job-Id", job.id),
                ("X-Lightbox-Attempt", str(task.attempt)),
            ]
            status_code = self.send(task.url, body, headers, self.timeout_s, self.allow_loopback)
        except WebhookRefused as exc:
            error, permanent = f"refused: {exc}", True
        except DeliveryFailed as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - recorded on the attempt, then retried
            log.exception("webhook %s attempt %d", job.id, task.attempt)
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = int((time.monotonic() - t0) * 1000)
        delivered = status_code is not None and 200 <= status_code < 300
        retry = None
        if not delivered and not permanent:
            retry = retry_delay(task.attempt, self.retry_base_s, self.retry_max_s)
        for attempt in range(RECORD_TRIES):
            try:
                state = self.store.record_webhook_attempt(
                    job.id,
                    self.id,
                    task.attempt,
                    started_at=started_at,
                    duration_ms=duration_ms,
                    status_code=status_code,
                    error=error,
                    delivered=delivered,
                    retry_in_seconds=retry,
                )
            except Exception as exc:  # noqa: BLE001 - the database may be back in a moment
                log.warning(
                    "webhook %s: recording attempt %d failed (%s)", job.id, task.attempt, exc
                )
                time.sleep(min(2.0**attempt, 5.0))
                continue
            log.log(
                logging.INFO if delivered else logging.WARNING,
                "webhook %s attempt %d -> %s (%s)",
                job.id,
                task.attempt,
                status_code or error,
                state.status,
            )
            return state
        log.error("webhook %s attempt %d left to lease expiry", job.id, task.attempt)
        return None

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            wait = self.poll_s
            try:
                due = self.store.seconds_until_webhook_due()
                if due is not None and due <= 0:
                    if self.run_once():
                        continue
                    due = self.store.seconds_until_webhook_due()
                if due is not None:
                    wait = min(wait, due)
            except Exception:
                log.exception("webhook dispatcher loop error; backing off")
                wait = 1.0
            stop.wait(max(wait, 0.02))


def start_webhook_threads(
    settings: JobsSettings, store: JobStore, stop: threading.Event
) -> list[threading.Thread]:
    """`webhook_threads` dispatchers as daemon threads of this process."""
    threads = []
    for n in range(settings.webhook_threads):
        dispatcher = Dispatcher.from_settings(settings, store)
        thread = threading.Thread(
            target=dispatcher.run_forever, args=(stop,), name=f"webhooks-{n}", daemon=True
        )
        thread.start()
        threads.append(thread)
    return threads
