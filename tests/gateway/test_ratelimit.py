import pytest

from services.gateway.ratelimit import MemoryLimiter, RedisLimiter


def test_memory_window() -> None:
    lim = MemoryLimiter()
    decisions = [lim.hit("k", 3, now=120.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[0].reset_seconds == 60
    assert lim.hit("k", 3, now=180.5).allowed  # next minute
    assert lim.hit("other", 3, now=120.0).remaining == 2


def test_redis_shared_between_limiters() -> None:
    import secrets

    try:
        a = RedisLimiter("redis://127.0.0.1:6379/0")
        a.ping()
    except Exception:
        pytest.skip("Redis not reachable on 127.0.0.1:6379")
    b = RedisLimiter("redis://127.0.0.1:6379/0")
    bucket = f"test-{secrets.token_hex(4)}"
    assert a.hit(bucket, 2, now=60.0).allowed
    assert b.hit(bucket, 2, now=60.0).allowed
    assert not a.hit(bucket, 2, now=60.0).allowed  # the two share one count
