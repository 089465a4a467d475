"""A submitted job: its body, and waiting for it, downloading its output, canceling it.
`Job` works with `Lightbox`, `AsyncJob` (the same with awaitables) with `AsyncLightbox`.
Audio, video and try-on jobs are jobs like the others; each is read back from its
operation's own documented route (STATUS_PATHS)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightbox_client._http import AsyncSender, Call, SyncSender
from lightbox_client.errors import (
    JOB_FAILED_BY_CODE,
    JobBlocked,
    JobCanceled,
    JobError,
    JobFailed,
    LightboxError,
    WaitTimeout,
)

TERMINAL = frozenset({"completed", "failed", "blocked", "canceled"})
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "wav": "wav", "mp4": "mp4"}
# Where a job is read back: GET /v1/image/{id} answers every job, but a video job's
# documented route is GET /v1/video/{id}, and only the try-on route carries
# result_image_b64 (so polling it leaves the result in the last body).
STATUS_PATHS = {
    "video-generate": "/v1/video/{id}",
    "virtual-tryon": "/v1/virtual-tryon/jobs/{id}",
}
_ERRORS: dict[str, type[JobError]] = {
    "failed": JobFailed,
    "blocked": JobBlocked,
    "canceled": JobCanceled,
}


class JobBase:
    """The job body of API.md; `data` is all of it, the properties its common fields."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def id(self) -> str:
        return str(self.data.get("generation_id") or self.data["id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def operation(self) -> str:
        return str(self.data.get("operation", ""))

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def stage(self) -> str | None:
        return self.data.get("stage")

    @property
    def credits_used(self) -> float:
        return float(self.data.get("credits_used") or 0.0)

    @property
    def output_url(self) -> str | None:
        return self.data.get("output_url")

    @property
    def format(self) -> str | None:
        return self.data.get("format")

    @property
    def extension(self) -> str:
        """The output's file extension (jpg, png, webp)."""
        return EXTENSIONS.get(self.format or "", self.format or "bin")

    @property
    def width(self) -> int | None:
        return self.data.get("width")

    @property
    def height(self) -> int | None:
        return self.data.get("height")

    @property
    def duration(self) -> float | None:
        """Seconds of audio or video asked for (audio and video jobs)."""
        value = self.data.get("duration")
        return float(value) if value is not None else None

    @property
    def result_image_b64(self) -> str | None:
        """A completed try-on's PNG as base64 (only in bodies from its own route)."""
        return self.data.get("result_image_b64")

    @property
    def error(self) -> dict[str, str] | None:
        return self.data.get("error")

    @property
    def status_path(self) -> str:
        return STATUS_PATHS.get(self.operation, "/v1/image/{id}").format(id=self.id)

    def raise_for_status(self) -> None:
        """Raises JobFailed, JobBlocked or JobCanceled for those ends; a failure with
        a code of its own as its class (JobBodySegmentationFailed, JobGpuOutOfMemory)."""
        cls = _ERRORS.get(self.status)
        if cls is JobFailed:
            cls = JOB_FAILED_BY_CODE.get(str((self.error or {}).get("error", "")), JobFailed)
        if cls is not None:
            raise cls(self)

    def _check_tryon(self) -> bool:
        """Whether the result is already in this body; raises when there is none to
        have (not a try-on, not completed)."""
        if self.operation != "virtual-tryon":
            what = self.operation or "unknown"
            raise ValueError(f"job {self.id} is not a virtual-tryon job (operation {what})")
        self.raise_for_status()
        if self.status != "completed":
            raise JobError(self, "not finished: wait() for it first")
        return self.result_image_b64 is not None

    def _decode_result(self) -> bytes:
        text = self.result_image_b64
        if text is None:
            # The server keeps outputs for a while (retention), then answers null.
            raise JobError(self, "its result image is no longer stored")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise LightboxError(f"job {self.id}: result_image_b64 is not base64") from exc

    def _target(self, path: str | Path) -> Path:
        target = Path(path)
        if target.is_dir():
            target = target / f"{self.id}.{self.extension}"
        return target

    def _output(self) -> str:
        self.raise_for_status()
        if self.status != "completed" or not self.output_url:
            raise JobError(self)
        return self.output_url

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.operation} {self.status}>"


class _Backoff:
    """Poll delays: `first`, growing by half each time up to `cap`."""

    def __init__(self, first: float, cap: float) -> None:
        self.delay, self.cap = first, max(cap, first)

    def next(self, remaining: float | None) -> float:
        delay = self.delay
        self.delay = min(self.delay * 1.5, self.cap)
        return delay if remaining is None else max(0.0, min(delay, remaining))


ProgressCallback = Callable[["JobBase"], None]


class Job(JobBase):
    def __init__(self, data: dict[str, Any], sender: SyncSender) -> None:
        super().__init__(data)
        self._sender = sender

    def refresh(self) -> Job:
        self.data = self._sender.send(Call("GET", self.status_path))
        return self

    def wait(
        self,
        timeout: float | None = 300.0,
        poll_interval: float = 0.5,
        max_poll_interval: float = 5.0,
        on_progress: ProgressCallback | None = None,
        raise_on_failure: bool = True,
    ) -> Job:
        """Polls until the job ends (back-off from `poll_interval` up to
        `max_poll_interval`); calls `on_progress(job)` whenever status or stage
        changes. Raises JobFailed/JobBlocked/JobCanceled for those ends (unless
        `raise_on_failure=False`) and WaitTimeout past `timeout` seconds."""
        start = time.monotonic()
        backoff = _Backoff(poll_interval, max_poll_interval)
        seen: tuple[str, str | None] | None = None
        while True:
            if on_progress is not None and (self.status, self.stage) != seen:
                seen = (self.status, self.stage)
                on_progress(self)
            if self.done:
                break
            waited = time.monotonic() - start
            if timeout is not None and waited >= timeout:
                raise WaitTimeout(self.id, self.status, waited)
            time.sleep(backoff.next(None if timeout is None else timeout - waited))
            self.refresh()
        if raise_on_failure:
            self.raise_for_status()
        return self

    def read(self) -> bytes:
        """The output's bytes (the job must be completed)."""
        return self._sender.get_bytes(self._output())

    def download(self, path: str | Path) -> Path:
        """Writes the output to `path` (a file, or a folder: `<id>.<ext>` in it)."""
        target = self._target(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.read())
        return target

    def result_image(self) -> bytes:
        """A completed try-on's result PNG, decoded from `result_image_b64` (read from
        GET /v1/virtual-tryon/jobs/{id} when this body came from elsewhere)."""
        if not self._check_tryon():
            self.refresh()
        return self._decode_result()

    def cancel(self) -> Job:
        """Cancels a queued job (refunded); Conflict once it runs."""
        self.data = self._sender.send(Call("DELETE", f"/v1/image/{self.id}"))
        return self


class AsyncJob(JobBase):
    def __init__(self, data: dict[str, Any], sender: AsyncSender) -> None:
        super().__init__(data)
        self._sender = sender

    async def refresh(self) -> AsyncJob:
        self.data = await self._sender.send(Call("GET", self.status_path))
        return self

    async def wait(
        self,
        timeout: float | None = 300.0,
        poll_interval: float = 0.5,
        max_poll_interval: float = 5.0,
        on_progress: ProgressCallback | None = None,
        raise_on_failure: bool = True,
    ) -> AsyncJob:
        """As `Job.wait`."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        backoff = _Backoff(poll_interval, max_poll_interval)
        seen: tuple[str, str | None] | None = None
        while True:
            if on_progress is not None and (self.status, self.stage) != seen:
                seen = (self.status, self.stage)
                on_progress(self)
            if self.done:
                break
            waited = loop.time() - start
            if timeout is not None and waited >= timeout:
                raise WaitTimeout(self.id, self.status, waited)
            await asyncio.sleep(backoff.next(None if timeout is None else timeout - waited))
            await self.refresh()
        if raise_on_failure:
            self.raise_for_status()
        return self

    async def read(self) -> bytes:
        return await self._sender.get_bytes(self._output())

    async def download(self, path: str | Path) -> Path:
        target = self._target(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(await self.read())
        return target

    async def result_image(self) -> bytes:
        """As `Job.result_image`."""
        if not self._check_tryon():
            await self.refresh()
        return self._decode_result()

    async def cancel(self) -> AsyncJob:
        self.data = await self._sender.send(Call("DELETE", f"/v1/image/{self.id}"))
        return self
