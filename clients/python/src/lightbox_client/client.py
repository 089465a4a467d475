"""`Lightbox` and its async twin `AsyncLightbox`: a method per operation (the image
operations, and PixelAPI's audio, video and virtual try-on), the account, profiles,
uploads and batches. Requests are built once (`Call`s, below) and sent by either
client's sender, so the two cannot drift apart."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from lightbox_client._http import AsyncSender, Call, FilePart, RetryPolicy, SyncSender
from lightbox_client.errors import NotFound
from lightbox_client.inputs import FieldValue, ImageInput, form_value, is_url, read_image
from lightbox_client.jobs import STATUS_PATHS, AsyncJob, Job, ProgressCallback
from lightbox_client.resources import (
    Balance,
    Batch,
    Profile,
    Upload,
    UsagePage,
    latest_version,
    split_profile_ref,
)

JobT = TypeVar("JobT")
MAX_PREFER_WAIT = 60  # the server holds an answer at most this long (API.md)
# The operations that are not under /v1/image/: JSON only, no image or mask upload.
MEDIA_PATHS = {
    "audio-generate": "/v1/audio/generate",
    "video-generate": "/v1/video/generate",
    "virtual-tryon": "/v1/virtual-tryon",
}


@dataclass(frozen=True)
class Submit:
    """What every operation method takes beyond the operation's own fields."""

    profile: str | None
    placement: str | None
    vars: Mapping[str, str] | None
    fields: Mapping[str, FieldValue] | None
    webhook_url: str | None
    idempotency_key: str | None
    wait: bool
    timeout: float | None
    on_progress: ProgressCallback | None


def submit_call(
    operation: str,
    image: ImageInput | None,
    mask: ImageInput | None,
    own: Mapping[str, Any],
    opts: Submit,
) -> Call:
    """The POST for one operation: JSON when every image is a URL (or there is none),
    else multipart with the files and the other fields as form fields."""
    if operation in MEDIA_PATHS and (image is not None or mask is not None):
        raise ValueError(f"{operation} takes no image upload; its fields carry everything")
    fields: dict[str, Any] = {k: v for k, v in own.items() if v is not None}
    for name, value in (opts.fields or {}).items():
        if name in fields:
            raise ValueError(f"{name!r} is given both as an argument and in fields")
        fields[name] = value
    profile_fields: dict[str, Any] = {
        "profile": opts.profile,
        "placement": opts.placement,
        "vars": dict(opts.vars) if opts.vars else None,
        "webhook_url": opts.webhook_url,
    }
    fields.update({k: v for k, v in profile_fields.items() if v is not None})
    files: dict[str, FilePart] = {}
    images: dict[str, ImageInput | None] = {"image": image, "mask": mask}
    for role, source in images.items():
        if source is None:
            continue
        img = read_image(source, role)
        if img.url is not None:
            fields[f"{role}_url"] = img.url
        else:
            assert img.part is not None
            files[role] = img.part
    headers = {"Idempotency-Key": opts.idempotency_key or uuid.uuid4().hex}
    hold = 0
    if opts.wait:
        hold = int(min(opts.timeout or MAX_PREFER_WAIT, MAX_PREFER_WAIT))
        headers["Prefer"] = f"wait={hold}"
    path = MEDIA_PATHS.get(operation, f"/v1/image/{operation}")
    if files:
        data = {k: form_value(v) for k, v in fields.items()}
        return Call("POST", path, data=data, files=files, headers=headers, hold_seconds=hold)
    return Call("POST", path, json=fields, headers=headers, hold_seconds=hold)


def photo_base64(photo: ImageInput, role: str) -> str:
    """A try-on photo (a path, bytes or a binary file) as the bare base64 the API takes.
    Its format and size are the server's to check: it names the field it refuses."""
    if is_url(photo):
        raise ValueError(f"{role}: virtual try-on takes the photo itself, not a URL")
    img = read_image(photo, role)
    assert img.part is not None
    return base64.b64encode(img.part[1]).decode("ascii")


def media_job_call(operation: str, job_id: str) -> Call:
    """GET of a job on its operation's own route (video, try-on)."""
    if not job_id:
        raise ValueError("a job id is required")
    return Call("GET", STATUS_PATHS[operation].format(id=quote(job_id, safe="")))


def profile_calls(ref: str) -> tuple[Call, bool]:
    """The GET for a profile reference, and whether its answer lists versions."""
    name, version = split_profile_ref(ref)
    if version is None:
        return Call("GET", f"/v1/profiles/{name}"), True
    return Call("GET", f"/v1/profiles/{name}/versions/{version}"), False


def profile_of(body: dict[str, Any], listed: bool) -> Profile:
    return Profile.of(latest_version(body) if listed else body)


def create_profile_call(
    name: str,
    operation: str,
    fields: Mapping[str, Any] | None,
    locked: Sequence[str] | None,
    placements: Mapping[str, Mapping[str, Any]] | None,
    prompts: Mapping[str, str] | None,
    qa_thresholds: Mapping[str, Any] | None,
    description: str | None,
) -> Call:
    body: dict[str, Any] = {"name": name, "operation": operation}
    for key, value in (
        ("fields", fields),
        ("locked", list(locked) if locked is not None else None),
        ("placements", placements),
        ("prompts", prompts),
        ("qa_thresholds", qa_thresholds),
        ("description", description),
    ):
        if value is not None:
            body[key] = value
    return Call("POST", "/v1/profiles", json=body)


def upload_call(image: ImageInput) -> Call:
    img = read_image(image)
    if img.part is None:
        raise ValueError("upload takes a file (path, bytes or file object), not a URL")
    return Call("POST", "/v1/uploads", files={"image": img.part})


def create_batch_call(
    items: Sequence[Mapping[str, Any]],
    operation: str | None,
    profile: str | None,
    fields: Mapping[str, Any] | None,
    webhook_url: str | None,
) -> Call:
    body: dict[str, Any] = {"items": [dict(item) for item in items]}
    for key, value in (
        ("operation", operation),
        ("profile", profile),
        ("fields", fields),
        ("webhook_url", webhook_url),
    ):
        if value is not None:
            body[key] = value
    return Call("POST", "/v1/batches", json=body)


def batch_call(batch_id: str, limit: int, cursor: str | None) -> Call:
    params: dict[str, str | int] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    return Call("GET", f"/v1/batches/{batch_id}", params=params)


def usage_call(limit: int, cursor: str | None) -> Call:
    params: dict[str, str | int] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/v1/account/usage", params=params)


def _timeout(timeout: float | httpx.Timeout) -> httpx.Timeout:
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


class _Operations(Generic[JobT]):
    """The operation methods, shared by both clients; `_submit` sends and wraps."""

    def _submit(
        self,
        operation: str,
        image: ImageInput | None,
        mask: ImageInput | None,
        own: Mapping[str, Any],
        opts: Submit,
    ) -> JobT:
        raise NotImplementedError

    def product_photo(
        self,
        image: ImageInput,
        *,
        preset: str | None = None,
        background_prompt: str | None = None,
        shadow_type: str | None = None,
        output_format: str | None = None,
        image_quality: int | None = None,
        aspect_ratio: str | None = None,
        output_size: str | None = None,
        scale: float | None = None,
        x: float | None = None,
        y: float | None = None,
        seed: int | None = None,
        negative_prompt: str | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        lighting: bool | None = None,
        detail_transfer: bool | None = None,
        detailer_mode: str | None = None,
        profile: str | None = None,
        placement: str | None = None,
        vars: Mapping[str, str] | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """Matte the product, new background, shadow, composite (API.md's fields).
        `profile`/`placement`/`vars` apply a generation profile; `fields` takes any
        other field by its API name. `wait=True` returns the finished job."""
        own = dict(
            preset=preset,
            background_prompt=background_prompt,
            shadow_type=shadow_type,
            output_format=output_format,
            image_quality=image_quality,
            aspect_ratio=aspect_ratio,
            output_size=output_size,
            scale=scale,
            x=x,
            y=y,
            seed=seed,
            negative_prompt=negative_prompt,
            steps=steps,
            guidance_scale=guidance_scale,
            lighting=lighting,
            detail_transfer=detail_transfer,
            detailer_mode=detailer_mode,
        )
        opts = Submit(
            profile,
            placement,
            vars,
            fields,
            webhook_url,
            idempotency_key,
            wait,
            timeout,
            on_progress,
        )
        return self._submit("product-photo", image, None, own, opts)

    def remove_background(
        self,
        image: ImageInput,
        *,
        output_format: str | None = None,
        bg_color: str | None = None,
        crop: bool | None = None,
        mask_only: bool | None = None,
        profile: str | None = None,
        placement: str | None = None,
        vars: Mapping[str, str] | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """A transparent cut-out (or flattened onto `bg_color`)."""
        own = dict(output_format=output_format, bg_color=bg_color, crop=crop, mask_only=mask_only)
        opts = Submit(
            profile,
            placement,
            vars,
            fields,
            webhook_url,
            idempotency_key,
            wait,
            timeout,
            on_progress,
        )
        return self._submit("remove-background", image, None, own, opts)

    def replace_background(
        self,
        image: ImageInput,
        *,
        prompt: str | None = None,
        preserve_shadow: bool | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        output_format: str | None = None,
        profile: str | None = None,
        placement: str | None = None,
        vars: Mapping[str, str] | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """The same subject in a new scene (`prompt`)."""
        own = dict(
            prompt=prompt,
            preserve_shadow=preserve_shadow,
            negative_prompt=negative_prompt,
            seed=seed,
            output_format=output_format,
        )
        opts = Submit(
            profile,
            placement,
            vars,
            fields,
            webhook_url,
            idempotency_key,
            wait,
            timeout,
            on_progress,
        )
        return self._submit("replace-background", image, None, own, opts)

    def upscale(
        self,
        image: ImageInput,
        *,
        scale: int | None = None,
        profile: str | None = None,
        placement: str | None = None,
        vars: Mapping[str, str] | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """2x or 4x super-resolution."""
        opts = Submit(
            profile,
            placement,
            vars,
            fields,
            webhook_url,
            idempotency_key,
            wait,
            timeout,
            on_progress,
        )
        return self._submit("upscale", image, None, dict(scale=scale), opts)

    def remove_object(
        self,
        image: ImageInput,
        *,
        mask: ImageInput | None = None,
        prompt: str | None = None,
        profile: str | None = None,
        placement: str | None = None,
        vars: Mapping[str, str] | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """Erase what `mask` (white = remove, the image's size) or `prompt` names."""
        opts = Submit(
            profile,
            placement,
            vars,
            fields,
            webhook_url,
            idempotency_key,
            wait,
            timeout,
            on_progress,
        )
        return self._submit("remove-object", image, mask, dict(prompt=prompt), opts)

    def restore_face(
        self,
        image: ImageInput,
        *,
        fidelity: float | None = None,
        profile: str | None = None,
        placement: str | None = None,
        vars: Mapping[str, str] | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """Restore faces; `fidelity` 0-1."""
        opts = Submit(
            profile,
            placement,
            vars,
            fields,
            webhook_url,
            idempotency_key,
            wait,
            timeout,
            on_progress,
        )
        return self._submit("restore-face", image, None, dict(fidelity=fidelity), opts)

    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        negative_prompt: str | None = None,
        width: int | None = None,
        height: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        profile: str | None = None,
        placement: str | None = None,
        vars: Mapping[str, str] | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """Text to image (no input image)."""
        own = dict(
            prompt=prompt,
            model=model,
            negative_prompt=negative_prompt,
            width=width,
            height=height,
            steps=steps,
            guidance_scale=guidance_scale,
            seed=seed,
        )
        opts = Submit(
            profile,
            placement,
            vars,
            fields,
            webhook_url,
            idempotency_key,
            wait,
            timeout,
            on_progress,
        )
        return self._submit("generate", None, None, own, opts)

    def generate_audio(
        self,
        prompt: str,
        *,
        duration: float | None = None,
        model: str | None = None,
        seed: int | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """Music from text (POST /v1/audio/generate): `duration` 5-30 s (server default
        15), `model` musicgen-small. The output is a WAV (`read`, `download`)."""
        own = dict(prompt=prompt, duration=duration, model=model, seed=seed)
        opts = Submit(
            None, None, None, fields, webhook_url, idempotency_key, wait, timeout, on_progress
        )
        return self._submit("audio-generate", None, None, own, opts)

    def generate_video(
        self,
        prompt: str,
        *,
        duration: float | None = None,
        resolution: str | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 1200.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """Video from text (POST /v1/video/generate): `duration` 1-10 s (default 3),
        `resolution` 480p or 720p. The job is polled at GET /v1/video/{id}; the output
        is an MP4 at 16 fps. Video takes minutes, hence the longer default `timeout`."""
        own = dict(
            prompt=prompt,
            duration=duration,
            resolution=resolution,
            negative_prompt=negative_prompt,
            seed=seed,
            steps=steps,
            guidance_scale=guidance_scale,
        )
        opts = Submit(
            None, None, None, fields, webhook_url, idempotency_key, wait, timeout, on_progress
        )
        return self._submit("video-generate", None, None, own, opts)

    def virtual_tryon(
        self,
        person: ImageInput,
        garment: ImageInput,
        *,
        category: str,
        seed: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobT:
        """Dress `person` in `garment` (POST /v1/virtual-tryon): each a path, bytes or
        a binary file (not a URL: the API takes the photos inline, and the client
        base64-encodes them); `category` upperbody, lowerbody or dress. The job is
        polled at GET /v1/virtual-tryon/jobs/{id}; `result_image()` is the PNG."""
        own = dict(
            person_image=photo_base64(person, "person_image"),
            garment_image=photo_base64(garment, "garment_image"),
            category=category,
            seed=seed,
            steps=steps,
            guidance_scale=guidance_scale,
        )
        opts = Submit(
            None, None, None, fields, webhook_url, idempotency_key, wait, timeout, on_progress
        )
        return self._submit("virtual-tryon", None, None, own, opts)

    def submit(
        self,
        operation: str,
        image: ImageInput | None = None,
        *,
        fields: Mapping[str, Any] | None = None,
        profile: str | None = None,
        placement: str | None = None,
        vars: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
    ) -> JobT:
        """Any operation by its API name (`product-photo`, ..., `audio-generate`,
        `video-generate`, `virtual-tryon`) with its fields."""
        opts = Submit(profile, placement, vars, None, None, idempotency_key, wait, timeout, None)
        return self._submit(operation, image, None, dict(fields or {}), opts)


class Lightbox(_Operations[Job]):
    """The Lightbox API. `base_url` like `http://localhost:8080`; `max_retries=0`
    turns retries off; `transport` is an httpx transport (tests, proxies)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._sender = SyncSender(
            base_url, api_key, _timeout(timeout), RetryPolicy(max_retries=max_retries), transport
        )

    def __enter__(self) -> Lightbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sender.close()

    def _submit(
        self,
        operation: str,
        image: ImageInput | None,
        mask: ImageInput | None,
        own: Mapping[str, Any],
        opts: Submit,
    ) -> Job:
        start = time.monotonic()
        job = Job(self._sender.send(submit_call(operation, image, mask, own, opts)), self._sender)
        if opts.wait:
            left = None if opts.timeout is None else opts.timeout - (time.monotonic() - start)
            job.wait(timeout=left, on_progress=opts.on_progress)
        return job

    def read_output(self, url: str) -> bytes:
        """The bytes behind a signed output link (no key is sent to it)."""
        return self._sender.get_bytes(url)

    def job(self, job_id: str) -> Job:
        """The job with this id, as it is now."""
        return Job({"id": job_id, "status": "queued"}, self._sender).refresh()

    def video_job(self, job_id: str) -> Job:
        """A video job from GET /v1/video/{id} (any other job there is NotFound)."""
        return Job(self._sender.send(media_job_call("video-generate", job_id)), self._sender)

    def tryon_job(self, job_id: str) -> Job:
        """A try-on job from GET /v1/virtual-tryon/jobs/{id}, with `result_image_b64`
        once completed (any other job there is NotFound)."""
        return Job(self._sender.send(media_job_call("virtual-tryon", job_id)), self._sender)

    def balance(self) -> Balance:
        return Balance.of(self._sender.send(Call("GET", "/v1/account/balance")))

    def usage(self, limit: int = 20, cursor: str | None = None) -> UsagePage:
        """One page of this account's jobs, newest first."""
        return UsagePage.of(self._sender.send(usage_call(limit, cursor)))

    def models(self) -> dict[str, Any]:
        """Operations, prices in force, engines, deployed models, presets."""
        return dict(self._sender.send(Call("GET", "/v1/models")))

    # -- profiles ----------------------------------------------------------------------

    def create_profile(
        self,
        name: str,
        operation: str,
        *,
        fields: Mapping[str, Any] | None = None,
        locked: Sequence[str] | None = None,
        placements: Mapping[str, Mapping[str, Any]] | None = None,
        prompts: Mapping[str, str] | None = None,
        qa_thresholds: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> Profile:
        """Creates the profile, or its next version when `name` exists."""
        call = create_profile_call(
            name, operation, fields, locked, placements, prompts, qa_thresholds, description
        )
        return Profile.of(self._sender.send(call))

    def profiles(self) -> list[dict[str, Any]]:
        """Every profile of the account: name, latest_version, operation, updated_at."""
        return list(self._sender.send(Call("GET", "/v1/profiles"))["profiles"])

    def profile(self, ref: str) -> Profile:
        """`name@N` that version; `name` or `name@latest` the newest."""
        call, listed = profile_calls(ref)
        return profile_of(self._sender.send(call), listed)

    def profile_versions(self, name: str) -> list[Profile]:
        body = self._sender.send(Call("GET", f"/v1/profiles/{name}"))
        return [Profile.of({"name": name, **v}) for v in body.get("versions") or []]

    # -- uploads and batches -----------------------------------------------------------

    def upload(self, image: ImageInput) -> Upload:
        """Stores a local image on the server for batches (`upload_id`)."""
        return Upload.of(self._sender.send(upload_call(image)))

    def batches_supported(self) -> bool:
        """Whether this server offers batches (older servers answer 404)."""
        try:
            self._sender.send(Call("GET", "/v1/batches"))
        except NotFound:
            return False
        return True

    def create_batch(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        operation: str | None = None,
        profile: str | None = None,
        fields: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
    ) -> Batch:
        """Queues up to 1,000 items (each: sku, variant, image_url or upload_id,
        placement, vars, fields, idempotency_key) after validating every one."""
        call = create_batch_call(items, operation, profile, fields, webhook_url)
        return Batch.of(self._sender.send(call))

    def batch(self, batch_id: str, limit: int = 100, cursor: str | None = None) -> Batch:
        """The batch's counts and one page of its items."""
        return Batch.of(self._sender.send(batch_call(batch_id, limit, cursor)))

    def batch_items(self, batch_id: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every item of the batch, page after page."""
        cursor: str | None = None
        while True:
            page = self.batch(batch_id, page_size, cursor)
            yield from page.items
            cursor = page.next_cursor
            if not cursor:
                return

    def cancel_batch(self, batch_id: str) -> Batch:
        """Cancels the still-queued items (refunded)."""
        return Batch.of(self._sender.send(Call("DELETE", f"/v1/batches/{batch_id}")))

    def list_batches(self) -> list[dict[str, Any]]:
        body = self._sender.send(Call("GET", "/v1/batches"))
        return list(body.get("batches") or [])


class AsyncLightbox(_Operations[Awaitable[AsyncJob]]):
    """`Lightbox` with awaitables: every method is awaited, jobs are `AsyncJob`s."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._sender = AsyncSender(
            base_url, api_key, _timeout(timeout), RetryPolicy(max_retries=max_retries), transport
        )

    async def __aenter__(self) -> AsyncLightbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def _run_submit(self, call: Call, opts: Submit) -> AsyncJob:
        start = time.monotonic()
        job = AsyncJob(await self._sender.send(call), self._sender)
        if opts.wait:
            left = None if opts.timeout is None else opts.timeout - (time.monotonic() - start)
            await job.wait(timeout=left, on_progress=opts.on_progress)
        return job

    def _submit(
        self,
        operation: str,
        image: ImageInput | None,
        mask: ImageInput | None,
        own: Mapping[str, Any],
        opts: Submit,
    ) -> Awaitable[AsyncJob]:
        # Built now, so a bad argument raises at the call, not at the await.
        return self._run_submit(submit_call(operation, image, mask, own, opts), opts)

    async def read_output(self, url: str) -> bytes:
        return await self._sender.get_bytes(url)

    async def job(self, job_id: str) -> AsyncJob:
        return await AsyncJob({"id": job_id, "status": "queued"}, self._sender).refresh()

    async def video_job(self, job_id: str) -> AsyncJob:
        call = media_job_call("video-generate", job_id)
        return AsyncJob(await self._sender.send(call), self._sender)

    async def tryon_job(self, job_id: str) -> AsyncJob:
        call = media_job_call("virtual-tryon", job_id)
        return AsyncJob(await self._sender.send(call), self._sender)

    async def balance(self) -> Balance:
        return Balance.of(await self._sender.send(Call("GET", "/v1/account/balance")))

    async def usage(self, limit: int = 20, cursor: str | None = None) -> UsagePage:
        return UsagePage.of(await self._sender.send(usage_call(limit, cursor)))

    async def models(self) -> dict[str, Any]:
        return dict(await self._sender.send(Call("GET", "/v1/models")))

    async def create_profile(
        self,
        name: str,
        operation: str,
        *,
        fields: Mapping[str, Any] | None = None,
        locked: Sequence[str] | None = None,
        placements: Mapping[str, Mapping[str, Any]] | None = None,
        prompts: Mapping[str, str] | None = None,
        qa_thresholds: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> Profile:
        call = create_profile_call(
            name, operation, fields, locked, placements, prompts, qa_thresholds, description
        )
        return Profile.of(await self._sender.send(call))

    async def profiles(self) -> list[dict[str, Any]]:
        return list((await self._sender.send(Call("GET", "/v1/profiles")))["profiles"])

    async def profile(self, ref: str) -> Profile:
        call, listed = profile_calls(ref)
        return profile_of(await self._sender.send(call), listed)

    async def profile_versions(self, name: str) -> list[Profile]:
        body = await self._sender.send(Call("GET", f"/v1/profiles/{name}"))
        return [Profile.of({"name": name, **v}) for v in body.get("versions") or []]

    async def upload(self, image: ImageInput) -> Upload:
        return Upload.of(await self._sender.send(upload_call(image)))

    async def batches_supported(self) -> bool:
        try:
            await self._sender.send(Call("GET", "/v1/batches"))
        except NotFound:
            return False
        return True

    async def create_batch(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        operation: str | None = None,
        profile: str | None = None,
        fields: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
    ) -> Batch:
        call = create_batch_call(items, operation, profile, fields, webhook_url)
        return Batch.of(await self._sender.send(call))

    async def batch(self, batch_id: str, limit: int = 100, cursor: str | None = None) -> Batch:
        return Batch.of(await self._sender.send(batch_call(batch_id, limit, cursor)))

    async def batch_items(
        self, batch_id: str, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            page = await self.batch(batch_id, page_size, cursor)
            for item in page.items:
                yield item
            cursor = page.next_cursor
            if not cursor:
                return

    async def cancel_batch(self, batch_id: str) -> Batch:
        return Batch.of(await self._sender.send(Call("DELETE", f"/v1/batches/{batch_id}")))

    async def list_batches(self) -> list[dict[str, Any]]:
        body = await self._sender.send(Call("GET", "/v1/batches"))
        return list(body.get("batches") or [])
