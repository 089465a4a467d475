"""The gateway's short-lived GetJob cache (services/gateway/context.py JobCache): a
running job is re-read after `live_s`, a finished one kept `terminal_s`, concurrent
misses for one job share one read, and accounts never share entries."""

from __future__ import annotations

import asyncio

from lightbox.v1 import jobs_pb2

from services.gateway.context import JobCache
from services.gateway.settings import GatewaySettings


def _job(status: int, job_id: str = "j1") -> jobs_pb2.Job:
    return jobs_pb2.Job(id=job_id, status=status)


class _Jobs:
    """A stand-in for the jobs service's GetJob: counts reads, answers the current
    status after an optional delay."""

    def __init__(self, status: int, delay: float = 0.0) -> None:
        self.status, self.delay, self.reads = status, delay, 0

    async def load(self) -> jobs_pb2.Job:
        self.reads += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return _job(self.status)


def test_a_running_job_is_reread_after_the_live_window() -> None:
    async def run() -> tuple[int, int, int]:
        cache = JobCache(live_s=0.05, terminal_s=2.0)
        jobs = _Jobs(jobs_pb2.JOB_STATUS_PROCESSING)
        await cache.fetch("a", "j1", jobs.load)
        await cache.fetch("a", "j1", jobs.load)  # within 50 ms: shared
        within = jobs.reads
        jobs.status = jobs_pb2.JOB_STATUS_COMPLETED
        await asyncio.sleep(0.06)
        seen = await cache.fetch("a", "j1", jobs.load)  # the completion, at most 50 ms late
        return within, jobs.reads, seen.status

    within, reads, status = asyncio.run(run())
    assert within == 1 and reads == 2
    assert status == jobs_pb2.JOB_STATUS_COMPLETED


def test_a_finished_job_is_kept_for_the_terminal_window() -> None:
    async def run() -> int:
        cache = JobCache(live_s=0.01, terminal_s=2.0)
        jobs = _Jobs(jobs_pb2.JOB_STATUS_COMPLETED)
        for _ in range(3):
            await cache.fetch("a", "j1", jobs.load)
            await asyncio.sleep(0.02)  # past the live window, inside the terminal one
        return jobs.reads

    assert asyncio.run(run()) == 1


def test_concurrent_misses_share_one_read_and_accounts_do_not_share() -> None:
    async def run() -> tuple[int, int]:
        cache = JobCache(live_s=0.0, terminal_s=0.0)  # no caching: only coalescing
        jobs = _Jobs(jobs_pb2.JOB_STATUS_PROCESSING, delay=0.05)
        await asyncio.gather(*(cache.fetch("a", "j1", jobs.load) for _ in range(10)))
        together = jobs.reads
        await cache.fetch("a", "j1", jobs.load)
        await cache.fetch("b", "j1", jobs.load)
        return together, jobs.reads

    together, reads = asyncio.run(run())
    assert together == 1  # ten polls in flight at once: one read
    assert reads == 3  # nothing kept with zero windows; account b reads for itself


def test_forget_drops_the_entry() -> None:
    cache = JobCache(live_s=5.0, terminal_s=5.0)
    cache.put("a", _job(jobs_pb2.JOB_STATUS_QUEUED))
    assert cache.get("a", "j1") is not None and cache.get("b", "j1") is None
    cache.forget("a", "j1")
    assert cache.get("a", "j1") is None


def test_default_live_window_is_short() -> None:
    # A running job's completion must not wait long in the gateway: see the setting's
    # comment and BENCHMARKS.md (end to end).
    fields = GatewaySettings.model_fields
    assert fields["job_cache_seconds"].default == 0.05
    assert fields["job_cache_terminal_seconds"].default == 2.0
