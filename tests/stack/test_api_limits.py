"""Rate limits (in-process and shared through Redis by two gateways), the
headers every response carries, and request ids from the client into the
services' logs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.gateway.stackutil import Process, error_of, make_key, product, service
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack

REDIS_URL = "redis://127.0.0.1:6379/15"


def fresh_window(url: str) -> None:
    """Wait for the next minute if this one is nearly over, so a count test
    does not straddle two windows."""
    r = requests.get(f"{url}/healthz")
    if int(r.headers["X-RateLimit-Reset"]) < 8:
        time.sleep(int(r.headers["X-RateLimit-Reset"]) + 0.5)


def test_every_response_carries_the_headers(sqlite_stack: RunningStack) -> None:
    k = make_key(sqlite_stack)
    responses = [
        requests.get(f"{sqlite_stack.url}/healthz"),
        requests.get(f"{sqlite_stack.url}/openapi.json"),
        requests.get(f"{sqlite_stack.url}/no/such/page"),
        requests.get(f"{sqlite_stack.url}/v1/image/x"),  # 401
        requests.get(f"{sqlite_stack.url}/v1/image/x", headers=k.headers),  # 404
        requests.post(
            f"{sqlite_stack.url}/v1/image/remove-background",
            headers=k.headers,
            data=b"x" * (11 * 1024 * 1024),
            timeout=30,
        ),  # 413
        requests.put(f"{sqlite_stack.url}/v1/account/balance", headers=k.headers),  # 405
    ]
    assert [r.status_code for r in responses] == [200, 200, 404, 401, 404, 413, 405]
    for r in responses:
        for name in (
            "X-Request-ID",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
        ):
            assert r.headers.get(name), (r.url, r.status_code, name)
        if r.status_code >= 400:
            assert error_of(r)
    assert responses[4].headers["X-RateLimit-Limit"] == "6000"


def test_per_key_limit_429_with_retry_after(sqlite_stack: RunningStack) -> None:
    k = make_key(sqlite_stack, rpm=3)
    other = make_key(sqlite_stack, rpm=3)
    fresh_window(sqlite_stack.url)
    url = f"{sqlite_stack.url}/v1/account/balance"
    got = [requests.get(url, headers=k.headers) for _ in range(4)]
    assert [r.status_code for r in got] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in got] == ["2", "1", "0", "0"]
    limited = got[-1]
    assert error_of(limited) == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["Retry-After"] == limited.headers["X-RateLimit-Reset"]
    # Submits count too, and are refused before any work.
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=k.headers,
        files={"image": ("p.png", product())},
    )
    assert r.status_code == 429
    # Another key has its own budget.
    assert requests.get(url, headers=other.headers).status_code == 200


@pytest.fixture(scope="module")
def redis_gateways(sqlite_stack: RunningStack) -> Iterator[tuple[Process, Process]]:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("Redis not reachable on 127.0.0.1:6379")
    env = {"LIGHTBOX_REDIS_URL": REDIS_URL, "LIGHTBOX_ANONYMOUS_RATE_LIMIT_PER_MINUTE": "4"}
    with service(sqlite_stack, "gateway", **env) as a, service(sqlite_stack, "gateway", **env) as b:
        yield a, b


def test_two_gateways_share_one_limit_through_redis(
    sqlite_stack: RunningStack, redis_gateways: tuple[Process, Process]
) -> None:
    a, b = redis_gateways
    k = make_key(sqlite_stack, rpm=5)
    fresh_window(a.url)
    answers = []
    for i in range(7):
        gw = (a, b)[i % 2]
        r = requests.get(f"{gw.url}/v1/account/balance", headers=k.headers)
        answers.append((r.status_code, r.headers["X-RateLimit-Remaining"]))
    assert answers == [
        (200, "4"),
        (200, "3"),
        (200, "2"),
        (200, "1"),
        (200, "0"),
        (429, "0"),
        (429, "0"),
    ]
    # In-process limits on the stack's own gateway know nothing of these hits.
    assert (
        requests.get(f"{sqlite_stack.url}/v1/account/balance", headers=k.headers).status_code == 200
    )


def test_key_guessing_is_limited_per_address(
    sqlite_stack: RunningStack, redis_gateways: tuple[Process, Process]
) -> None:
    a, b = redis_gateways
    fresh_window(a.url)
    codes = []
    for i in range(12):
        gw = (a, b)[i % 2]
        r = requests.get(f"{gw.url}/v1/image/x", headers={"Authorization": f"Bearer lb_guess_{i}"})
        codes.append(r.status_code)
        if r.status_code == 429:
            assert error_of(r) == "rate_limited" and r.headers["Retry-After"]
    # Four guesses per minute per address across both gateways (this limit is
    # also shared with the other tests' anonymous calls from 127.0.0.1).
    assert codes.count(401) <= 4 and codes[-1] == 429
    # Output links (no key) share that budget; probes do not.
    assert requests.get(f"{a.url}/v1/files/outputs/x").status_code == 429
    assert requests.get(f"{b.url}/healthz").status_code == 200


def test_request_id_is_echoed_or_made(sqlite_stack: RunningStack) -> None:
    mine = requests.get(f"{sqlite_stack.url}/healthz", headers={"X-Request-ID": "req-42.a:b"})
    assert mine.headers["X-Request-ID"] == "req-42.a:b"
    made = [requests.get(f"{sqlite_stack.url}/healthz").headers["X-Request-ID"] for _ in range(2)]
    assert made[0] != made[1] and len(made[0]) >= 16
    for hostile in ("has spaces in it", "x" * 300, "tab\there"):
        r = requests.get(f"{sqlite_stack.url}/healthz", headers={"X-Request-ID": hostile})
        assert r.headers["X-Request-ID"] != hostile and len(r.headers["X-Request-ID"]) >= 16


def test_request_id_reaches_the_jobs_service_log(sqlite_stack: RunningStack) -> None:
    k = make_key(sqlite_stack)
    rid = f"trace-{time.time_ns()}"
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=k.h(**{"X-Request-ID": rid}),
        files={"image": ("p.png", product())},
    )
    assert r.status_code == 202 and r.headers["X-Request-ID"] == rid
    job_id = r.json()["id"]
    # The gateway logs the submit once the jobs service has answered, and each
    # service's output reaches stack.log through its own pipe: the jobs line
    # can land well before the gateway's, so wait for both.
    deadline = time.monotonic() + 10
    while True:
        log = (sqlite_stack.home / "stack.log").read_text(errors="replace")
        lines = [line for line in log.splitlines() if f"[{rid}]" in line]
        services = {line.split("|", 1)[0].strip() for line in lines}
        if {"gateway", "jobs"} <= services or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {"gateway", "jobs"} <= services, lines
    assert any(job_id in line for line in lines if line.startswith("jobs"))
