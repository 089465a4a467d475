"""Running a checked catalog: what is not done yet is sent (as server batches when the
server offers them, else one submit per item under a concurrency cap), followed to its
end, and its output written to `DIR/<sku>/<variant>.<ext>`, every step recorded in the
manifest first. Items already submitted by an earlier run are only followed again,
never sent twice; each is submitted under the server's default item key, so even a
resend after a crash returns the first job instead of charging again."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightbox_client.catalog import Item, idempotency_key
from lightbox_client.client import AsyncLightbox
from lightbox_client.errors import (
    APIError,
    BatchInvalid,
    ConnectionFailed,
    IdempotencyConflict,
    InsufficientCredits,
    LightboxError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    WaitTimeout,
)
from lightbox_client.inputs import sniff
from lightbox_client.jobs import EXTENSIONS, TERMINAL, AsyncJob
from lightbox_client.manifest import Entry, Manifest
from lightbox_client.progress import Progress
from lightbox_client.resources import Profile

MAX_BATCH_ITEMS = 1000
# Worth another run: the server was down or busy, credits ran out, a wait ran out.
TRANSIENT = (ConnectionFailed, ServiceUnavailable, ServerError, RateLimited, WaitTimeout)
_RETRY_SUFFIX = re.compile(r":retry(\d+)$")


@dataclass(frozen=True)
class Plan:
    operation: str
    profile: Profile | None
    fields: dict[str, Any]

    @property
    def profile_ref(self) -> str | None:
        return self.profile.ref if self.profile else None

    def settings(self) -> dict[str, Any]:
        return {"profile": self.profile_ref, "operation": self.operation, "fields": self.fields}

    def key(self, item: Item) -> str:
        return idempotency_key(item.sku, item.variant, self.profile_ref, self.operation)


@dataclass
class Stats:
    submitted: int = 0  # items sent to the server by this run
    refused: int = 0  # items the server would not take (a submit or upload answered 4xx)
    resumed: int = 0  # items an earlier run had sent, followed again
    skipped: int = 0  # items finished before this run
    mode: str = ""
    batches: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "submitted": self.submitted,
            "refused": self.refused,
            "resumed": self.resumed,
            "skipped": self.skipped,
            "batches": self.batches,
        }


def qa_summary(qa: Any) -> dict[str, Any] | None:
    """What the report needs of a job's `qa`: whether a person should look, and why."""
    if not isinstance(qa, dict):
        return None
    reasons = [str(r.get("code")) for r in qa.get("reasons") or [] if isinstance(r, dict)]
    return {"needs_review": bool(qa.get("needs_review")), "reasons": reasons}


def _error(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, APIError):
        return {"error": exc.code, "message": exc.message}
    return {"error": type(exc).__name__, "message": str(exc)}


class Runner:
    def __init__(
        self,
        client: AsyncLightbox,
        plan: Plan,
        items: list[Item],
        manifest: Manifest,
        out: Path,
        progress: Progress,
        concurrency: int = 4,
        retry_failed: bool = False,
        job_timeout: float = 600.0,
    ) -> None:
        self.client = client
        self.plan = plan
        self.items = items
        self.manifest = manifest
        self.out = out
        self.progress = progress
        self.slots = asyncio.Semaphore(max(1, concurrency))
        self.concurrency = max(1, concurrency)
        self.retry_failed = retry_failed
        self.job_timeout = job_timeout
        self.stats = Stats()
        self.out_of_credits = False

    # -- what is left ------------------------------------------------------------------

    def finished(self, entry: Entry) -> bool:
        if entry.status == "completed":
            return bool(entry.output) and (self.out / str(entry.output)).is_file()
        return entry.final and not self.retry_failed

    def _next_key(self, item: Item, entry: Entry) -> str:
        """The item's key; a failed item sent again (--retry-failed) needs a new one,
        since its old key would only return the failed job."""
        key = self.plan.key(item)
        if entry.final and entry.status != "completed" and entry.key:
            m = _RETRY_SUFFIX.search(entry.key)
            return f"{key}:retry{int(m.group(1)) + 1 if m else 2}"
        return entry.key or key

    def _fresh(self, item: Item, entry: Entry) -> Entry:
        """The entry of an item about to be sent."""
        return Entry(item.sku, item.variant, status="pending", key=self._next_key(item, entry))

    async def run(self, use_batches: bool) -> Stats:
        self.stats.mode = "batches" if use_batches else "jobs"
        follow_jobs: list[tuple[Item, Entry]] = []
        follow_batches: list[tuple[Item, Entry]] = []
        send: list[tuple[Item, Entry]] = []
        for item in self.items:
            entry = self.manifest.entry(item.sku, item.variant)
            if self.finished(entry):
                self.stats.skipped += 1
                self.progress.set(item.name, entry.status, draw=False)
                continue
            if entry.status == "completed" and entry.job_id:
                follow_jobs.append((item, entry))  # done, but its file is missing
            elif not entry.final and entry.batch_id:
                follow_batches.append((item, entry))
            elif not entry.final and entry.job_id:
                follow_jobs.append((item, entry))
            else:
                send.append((item, self._fresh(item, entry)))
                continue
            self.stats.resumed += 1
            self.progress.set(item.name, "queued", draw=False)
        for item, _ in send:
            self.progress.set(item.name, "pending", draw=False)
        self.progress.start()
        tasks = [self._follow_job(item, entry) for item, entry in follow_jobs]
        if use_batches:
            tasks.append(self._batches(follow_batches, send))
        else:
            tasks += [self._submit_job(item, entry) for item, entry in send]
        await asyncio.gather(*tasks)
        self.progress.close()
        return self.stats

    # -- one job per item --------------------------------------------------------------

    async def _submit_job(self, item: Item, entry: Entry) -> None:
        async with self.slots:
            if self.out_of_credits:
                return
            try:
                job = await self.client.submit(
                    self.plan.operation,
                    item.image,
                    fields=self.plan.fields,
                    profile=self.plan.profile_ref,
                    placement=item.placement,
                    vars=item.vars or None,
                    idempotency_key=entry.key,
                )
            except LightboxError as exc:
                self._refused(item, entry, exc)
                return
            self.stats.submitted += 1
            entry.job_id, entry.status = job.id, job.status
            self.manifest.record(entry)
            await self._wait_and_conclude(item, entry, job)

    async def _follow_job(self, item: Item, entry: Entry) -> None:
        async with self.slots:
            assert entry.job_id
            try:
                job = await self.client.job(entry.job_id)
            except LightboxError as exc:
                self._refused(item, entry, exc)
                return
            await self._wait_and_conclude(item, entry, job)

    async def _wait_and_conclude(self, item: Item, entry: Entry, job: AsyncJob) -> None:
        try:
            self.progress.set(item.name, job.status)
            await job.wait(
                timeout=self.job_timeout,
                raise_on_failure=False,
                on_progress=lambda j: self.progress.set(item.name, j.status),
            )
            await self._conclude(item, entry, job)
        except LightboxError as exc:
            self._refused(item, entry, exc)

    # -- server batches ----------------------------------------------------------------

    async def _upload(self, item: Item, entry: Entry) -> dict[str, Any] | None:
        """The item as a batch item; a local file is uploaded first."""
        body: dict[str, Any] = {
            "sku": item.sku,
            "variant": item.variant,
            "idempotency_key": entry.key,
        }
        if item.placement:
            body["placement"] = item.placement
        if item.vars:
            body["vars"] = item.vars
        if item.is_url:
            body["image_url"] = item.image
            return body
        async with self.slots:
            try:
                body["upload_id"] = (await self.client.upload(item.image)).upload_id
            except LightboxError as exc:
                self._refused(item, entry, exc)
                return None
        return body

    async def _batches(
        self, follow: list[tuple[Item, Entry]], send: list[tuple[Item, Entry]]
    ) -> None:
        tracked = list(follow)
        for start in range(0, len(send), MAX_BATCH_ITEMS):
            if self.out_of_credits:
                break
            chunk = send[start : start + MAX_BATCH_ITEMS]
            bodies = await asyncio.gather(*(self._upload(i, e) for i, e in chunk))
            ready = [(i, e, b) for (i, e), b in zip(chunk, bodies, strict=True) if b is not None]
            tracked += await self._create_batch(ready)
        await self._follow_batches(tracked)

    async def _create_batch(
        self, ready: list[tuple[Item, Entry, dict[str, Any]]]
    ) -> list[tuple[Item, Entry]]:
        """Sends the items as one batch; items the server refuses are marked failed
        (with its message) and the rest sent again without them."""
        while ready:
            try:
                batch = await self.client.create_batch(
                    [b for _, _, b in ready],
                    operation=None if self.plan.profile else self.plan.operation,
                    profile=self.plan.profile_ref,
                    fields=self.plan.fields or None,
                )
            except (BatchInvalid, IdempotencyConflict) as exc:
                # Each bad item named by its index: a 422 lists every one, a 409 the
                # first item whose key was used before for other content.
                rows = exc.errors if isinstance(exc, BatchInvalid) else [exc.detail]
                bad = {int(e["index"]): e for e in rows if isinstance(e.get("index"), int)}
                if not bad or max(bad) >= len(ready):
                    for item, entry, _ in ready:
                        self._refused(item, entry, exc)
                    return []
                for index, err in bad.items():
                    item, entry, _ = ready[index]
                    field = f"{err['field']}: " if err.get("field") else ""
                    self._reject(
                        item,
                        entry,
                        {
                            "error": str(err.get("error") or exc.code),
                            "message": field + str(err.get("message", "")),
                        },
                    )
                ready = [r for n, r in enumerate(ready) if n not in bad]
                continue
            except LightboxError as exc:
                for item, entry, _ in ready:
                    self._refused(item, entry, exc)
                return []
            self.stats.batches.append(batch.batch_id)
            self.stats.submitted += len(ready)
            for item, entry, _ in ready:
                entry.batch_id, entry.status = batch.batch_id, "queued"
                self.manifest.record(entry)
                self.progress.set(item.name, "queued", draw=False)
            self.progress.draw()
            return [(item, entry) for item, entry, _ in ready]
        return []

    async def _follow_batches(self, tracked: list[tuple[Item, Entry]]) -> None:
        waiting = {(e.batch_id, i.sku, i.variant): (i, e) for i, e in tracked}
        delay = 0.5
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.job_timeout + 60 * len(waiting) / self.concurrency
        while waiting:
            for batch_id in sorted({b for b, _, _ in waiting if b}):
                try:
                    items = [it async for it in self.client.batch_items(batch_id, 1000)]
                except LightboxError as exc:
                    if isinstance(exc, TRANSIENT):
                        continue
                    for key in [k for k in waiting if k[0] == batch_id]:
                        self._refused(*waiting.pop(key), exc)
                    continue
                concluding = []
                for it in items:
                    key = (batch_id, str(it.get("sku")), str(it.get("variant")))
                    if key not in waiting:
                        continue
                    item, entry = waiting[key]
                    status = str(it.get("status"))
                    self.progress.set(item.name, status, draw=False)
                    if it.get("generation_id") and entry.job_id != it["generation_id"]:
                        entry.job_id = str(it["generation_id"])
                        self.manifest.record(entry)
                    if status in TERMINAL:
                        del waiting[key]
                        concluding.append(self._conclude_item(item, entry, it))
                self.progress.draw()
                await asyncio.gather(*concluding)
            if not waiting:
                break
            if loop.time() > deadline:
                for item, entry in waiting.values():
                    self._refused(item, entry, WaitTimeout(entry.job_id or "", entry.status, delay))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    async def _conclude_item(self, item: Item, entry: Entry, it: dict[str, Any]) -> None:
        async with self.slots:
            if it.get("status") == "completed" and entry.job_id:
                try:
                    job = await self.client.job(entry.job_id)
                    await self._conclude(item, entry, job)
                except LightboxError as exc:
                    self._refused(item, entry, exc)
                return
            entry.status, entry.final = str(it.get("status")), True
            entry.error = it.get("error") or {"error": entry.status, "message": ""}
            entry.credits_used = 0.0
            self.manifest.record(entry)
            self.progress.set(item.name, entry.status)

    # -- endings -----------------------------------------------------------------------

    async def _conclude(self, item: Item, entry: Entry, job: AsyncJob) -> None:
        entry.job_id = job.id
        if job.status == "completed":
            data = await job.read()
            ext = (sniff(data) or ("", EXTENSIONS.get(job.format or "", "bin")))[1]
            target = self.out / item.sku / f"{item.variant}.{ext}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            entry.output = target.relative_to(self.out).as_posix()
            entry.width, entry.height = job.width, job.height
            entry.error = None
            entry.qa = qa_summary(job.data.get("qa"))
        else:
            entry.error = job.error or {"error": job.status, "message": ""}
        entry.status, entry.final = job.status, True
        entry.credits_used = job.credits_used
        self.manifest.record(entry)
        self.progress.set(item.name, entry.status)

    def _refused(self, item: Item, entry: Entry, exc: BaseException) -> None:
        """An item the server would not take, or that could not be followed. The
        server's verdict on the item itself is final; trouble a re-run may not meet
        (the server down, credits short, a wait run out) leaves it to the next run."""
        error = _error(exc)
        entry.error = error
        if isinstance(exc, InsufficientCredits):
            self.out_of_credits = True
        if isinstance(exc, (*TRANSIENT, InsufficientCredits)):
            entry.final = False
            self.progress.set(item.name, entry.status if entry.job_id else "pending")
            self.manifest.record(entry)
        elif not entry.job_id and not entry.batch_id:
            self._reject(item, entry, error)
        else:
            entry.status, entry.final = "failed", True
            self.manifest.record(entry)
            self.progress.set(item.name, "failed")

    def _reject(self, item: Item, entry: Entry, error: dict[str, str]) -> None:
        """The server would not take the item (its submit, upload or batch row)."""
        self.stats.refused += 1
        entry.status, entry.final, entry.error = "failed", True, error
        self.manifest.record(entry)
        self.progress.set(item.name, "failed")
