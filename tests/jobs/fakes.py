"""A pipeline that does no pixel work, for driving the real Worker in tests:
it reports its stages, sleeps a little in each, and returns a tiny result."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from services.common.blobstore import LocalBlobStore
from services.jobs.pipeline import Result
from services.jobs.store import JobRecord


class FakePipeline:
    def __init__(
        self,
        blobs: LocalBlobStore,
        *,
        stage_seconds: tuple[float, float] = (0.0, 0.0),
        stages: tuple[str, ...] = ("decode", "compose"),
    ) -> None:
        self.blobs = blobs
        self.stage_seconds = stage_seconds
        self.stages = stages

    def run(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        for name in self.stages:
            stage(name)
            low, high = self.stage_seconds
            if high > 0:
                time.sleep(random.uniform(low, high))
        return Result(
            data=f"result of {job.id}".encode(),
            format="png",
            width=1,
            height=1,
            engines={"fake": "noop"},
            pipeline=list(job.pipeline),
        )
