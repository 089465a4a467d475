import asyncio
import secrets

import pytest

from services.gateway.ratelimit import MemoryLimiter, RedisLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_memory_window() -> None:
    lim = MemoryLimiter()
    decisions = [lim.hit_sync("k", 3, now=120.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[0].reset_seconds == 60
    assert lim.hit_sync("k", 3, now=180.5).allowed  # next minute
    assert lim.hit_sync("other", 3, now=120.0).remaining == 2


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("Redis not reachable on 127.0.0.1:6379")


def test_redis_shared_between_limiters() -> None:
    _redis_or_skip()

    async def run() -> list[bool]:
        a, b = RedisLimiter(REDIS_URL), RedisLimiter(REDIS_URL)
        bucket = f"test-{secrets.token_hex(4)}"
        try:
            return [
                (await a.hit(bucket, 2, now=60.0)).allowed,
                (await b.hit(bucket, 2, now=60.0)).allowed,
                (await a.hit(bucket, 2, now=60.0)).allowed,  # the two share one count
            ]
        finally:
            await a.close()
            await b.close()

    assert asyncio.run(run()) == [True, True, False]


def test_redis_down_counts_in_process_and_reports_it() -> None:
    errors: list[int] = []

    async def run() -> list[bool]:
        # Port 1 refuses connections: every hit falls back to the local count.
        lim = RedisLimiter("redis://127.0.0.1:1/0", on_error=lambda: errors.append(1))
        try:
            return [(await lim.hit("k", 2, now=60.0)).allowed for _ in range(3)]
        finally:
            await lim.close()

    assert asyncio.run(run()) == [True, True, False]
    assert len(errors) == 3
