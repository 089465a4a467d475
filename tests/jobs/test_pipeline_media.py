"""The worker's audio, video and try-on stages (services/jobs/pipeline.py) with
doubles of the media modules' functions (services/jobs/media, interfaces of
issue 19): the arguments they get, the one encoded output stored with its
content type, the engines and stages on the job, and a failing engine failing
the job with its code and refunding it. The real Worker and JobStore (SQLite)
and the compositor's servicer in-process run around them."""

from __future__ import annotations

import importlib
import io
import types
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tritonclient.utils import InferenceServerException

from services.common.blobstore import LocalBlobStore, content_type
from services.common.errors import BodySegmentationFailed, GpuOutOfMemory
from services.common.operations import OPERATIONS
from services.jobs.engines import _map_error
from services.jobs.pipeline import Pipeline
from services.jobs.settings import JobsSettings
from services.jobs.store import AccountRecord, JobRecord, JobStore
from services.jobs.worker import Worker
from tests.jobs.qa_cases import _InProcessCompositor

ENGINES = object()  # the TritonEngines the worker passes through, untouched
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 32


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray
    sample_rate: int


class Media:
    """Doubles of the three modules, recording every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.raise_from: dict[str, Exception] = {}

    def _record(self, name: str, args: tuple, kwargs: dict) -> None:
        self.calls.append((name, args, kwargs))
        if name in self.raise_from:
            raise self.raise_from[name]

    def modules(self) -> dict[str, types.ModuleType]:
        media = self

        def generate_music(
            engines: Any,
            prompt: str,
            duration_s: float,
            *,
            seed: int | None = None,
            guidance_scale: float | None = None,
            timeout_s: float | None = None,
        ) -> tuple[Audio, str]:
            media._record(
                "generate_music",
                (engines, prompt, duration_s),
                {"seed": seed, "guidance_scale": guidance_scale},
            )
            n = int(duration_s * 100)
            samples = np.sin(np.linspace(0, 40, n, dtype=np.float32))[None, :] * 0.5
            return Audio(samples.astype(np.float32), 100), "musicgen"

        def encode_wav(audio: Audio) -> bytes:
            buf = io.BytesIO()
            with wave.open(buf, "wb") as w:
                w.setnchannels(audio.samples.shape[0])
                w.setsampwidth(2)
                w.setframerate(audio.sample_rate)
                w.writeframes((audio.samples.T * 32767).astype("<i2").tobytes())
            return buf.getvalue()

        def frame_count(duration_s: float) -> int:
            return 4 * round(duration_s * 16 / 4) + 1

        def generate_video(
            engines: Any,
            prompt: str,
            *,
            width: int,
            height: int,
            duration_s: float,
            negative_prompt: str | None = None,
            seed: int | None = None,
            steps: int | None = None,
            guidance_scale: float | None = None,
            timeout_s: float | None = None,
        ) -> tuple[np.ndarray, str]:
            media._record(
                "generate_video",
                (engines, prompt),
                {
                    "width": width,
                    "height": height,
                    "duration_s": duration_s,
                    "negative_prompt": negative_prompt,
                    "seed": seed,
                    "steps": steps,
                },
            )
            return np.zeros((frame_count(duration_s), height, width, 3), np.uint8), "wan2.1-t2v"

        def encode_mp4(frames: np.ndarray, fps: int = 16) -> bytes:
            media.calls.append(("encode_mp4", (frames.shape, fps), {}))
            return MP4

        def try_on(
            engines: Any,
            person: np.ndarray,
            garment: np.ndarray,
            category: str,
            *,
            seed: int | None = None,
            steps: int | None = None,
            guidance_scale: float | None = None,
            timeout_s: float | None = None,
        ) -> tuple[np.ndarray, dict[str, str]]:
            media._record(
                "try_on", (engines, person.shape, garment.shape, category), {"seed": seed}
            )
            return person[:, ::-1].copy(), {"tryon": "catvton", "body-mask": "isnet"}

        music = types.ModuleType("services.jobs.media.music")
        music.Audio, music.generate_music, music.encode_wav = Audio, generate_music, encode_wav  # type: ignore[attr-defined]
        video = types.ModuleType("services.jobs.media.video")
        video.FPS = 16  # type: ignore[attr-defined]
        video.RESOLUTIONS = {"480p": (832, 480), "720p": (1280, 720)}  # type: ignore[attr-defined]
        video.frame_count, video.generate_video = frame_count, generate_video  # type: ignore[attr-defined]
        video.encode_mp4 = encode_mp4  # type: ignore[attr-defined]
        tryon = types.ModuleType("services.jobs.media.tryon")
        tryon.CATEGORIES = ("upperbody", "lowerbody", "dress")  # type: ignore[attr-defined]
        tryon.try_on = try_on  # type: ignore[attr-defined]
        return {"music": music, "video": video, "tryon": tryon}


@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch) -> Media:
    doubles = Media()
    for name, module in doubles.modules().items():
        real = importlib.import_module(f"services.jobs.media.{name}")
        for attr in ("generate_music", "encode_wav", "generate_video", "encode_mp4", "try_on"):
            if hasattr(module, attr):
                monkeypatch.setattr(real, attr, getattr(module, attr))
    return doubles


@pytest.fixture(scope="module")
def compositor() -> _InProcessCompositor:
    return _InProcessCompositor()


@pytest.fixture
def world(tmp_path: Path, compositor: _InProcessCompositor) -> Iterator[tuple[Any, ...]]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = JobStore(url)
    store.migrate()
    blobs = LocalBlobStore(tmp_path / "blobs")
    settings = JobsSettings(
        home=tmp_path / "home", database_url=url, blob_dir=tmp_path / "blobs", max_attempts=3
    )
    pipeline = Pipeline(blobs, ENGINES, compositor, 30.0)  # type: ignore[arg-type]
    account = store.create_account("media", credits=1000, max_concurrent_jobs=10)
    yield store, blobs, Worker(settings, store, pipeline, worker_id="w"), pipeline, account
    store.close()


def _png(w: int, h: int) -> bytes:
    rng = np.random.default_rng(w * h)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _submit(
    store: JobStore,
    account: AccountRecord,
    operation: str,
    params: dict[str, Any],
    inputs: dict[str, str] | None = None,
) -> JobRecord:
    op = OPERATIONS[operation]
    job, _ = store.submit(
        account_id=account.id,
        operation=operation,
        params=params,
        inputs=inputs or {},
        credits=op.credits_for(params),
        pipeline=list(op.pipeline),
        estimated_seconds=op.estimated_seconds,
        idempotency_key=None,
        request_fingerprint="fp",
        webhook_url=None,
        max_attempts=3,
    )
    return job


def test_audio_stage_stores_one_wav(world: tuple[Any, ...], media: Media) -> None:
    store, blobs, worker, pipeline, account = world
    job = _submit(
        store, account, "audio-generate", {"prompt": "calm piano", "duration": 20.5, "seed": 7}
    )
    assert job.credits == 10.0 and store.balance(account.id) == 990.0
    stages: list[str] = []
    result = pipeline.run(store.get(job.id), stages.append)
    assert stages == ["generate-audio", "encode"]
    assert media.calls[0] == (
        "generate_music",
        (ENGINES, "calm piano", 20.5),
        {"seed": 7, "guidance_scale": None},
    )
    assert (result.format, result.engines, result.qa) == ("wav", {"music": "musicgen"}, None)

    assert worker.run_once()
    done = store.get(job.id)
    assert done.status == "completed" and done.format == "wav"
    assert done.output_key.endswith(".wav") and content_type(done.output_key) == "audio/wav"
    with wave.open(io.BytesIO(blobs.get(done.output_key))) as w:
        assert (w.getframerate(), w.getnframes(), w.getsampwidth()) == (100, 2050, 2)
    assert done.engines == {"music": "musicgen"} and done.pipeline == ["generate-audio"]
    assert store.balance(account.id) == 990.0


def test_video_stage_stores_one_mp4_at_the_resolution(world: tuple[Any, ...], media: Media) -> None:
    store, blobs, worker, _, account = world
    params = {"prompt": "a red kite", "duration": 2, "resolution": "720p", "seed": 3}
    job = _submit(store, account, "video-generate", {**params, "negative_prompt": "blur"})
    assert job.credits == 65.0
    assert worker.run_once()
    done = store.get(job.id)
    name, args, kwargs = media.calls[0]
    assert (name, args) == ("generate_video", (ENGINES, "a red kite"))
    assert kwargs == {
        "width": 1280,
        "height": 720,
        "duration_s": 2.0,
        "negative_prompt": "blur",
        "seed": 3,
        "steps": None,
    }
    assert media.calls[1] == ("encode_mp4", ((33, 720, 1280, 3), 16), {})
    assert done.status == "completed" and (done.width, done.height, done.format) == (
        1280,
        720,
        "mp4",
    )
    assert content_type(done.output_key) == "video/mp4" and blobs.get(done.output_key) == MP4
    assert done.engines == {"video": "wan2.1-t2v"}


def test_tryon_stage_encodes_a_png_of_the_person_size_and_grades_it(
    world: tuple[Any, ...], media: Media
) -> None:
    store, blobs, worker, pipeline, account = world
    person = blobs.put(_png(120, 160), "inputs", ".png")
    garment = blobs.put(_png(140, 110), "inputs", ".png")
    job = _submit(
        store,
        account,
        "virtual-tryon",
        {"category": "dress", "seed": 11},
        {"person": person, "garment": garment},
    )
    assert job.credits == 25.0
    stages: list[str] = []
    result = pipeline.run(store.get(job.id), stages.append)
    assert stages == ["decode", "virtual-tryon", "encode", "qa"]
    assert media.calls[0] == (
        "try_on",
        (ENGINES, (160, 120, 3), (110, 140, 3), "dress"),
        {"seed": 11},
    )
    assert result.qa is not None and result.qa["scores"]["resolution"]["width"] == 120
    assert worker.run_once()
    done = store.get(job.id)
    assert done.status == "completed" and content_type(done.output_key) == "image/png"
    with Image.open(io.BytesIO(blobs.get(done.output_key))) as out:
        assert (out.format, out.size) == ("PNG", (120, 160))
    assert done.engines == {"tryon": "catvton", "body-mask": "isnet"}


@pytest.mark.parametrize(
    ("operation", "params", "double", "error"),
    [
        (
            "virtual-tryon",
            {"category": "upperbody"},
            "try_on",
            BodySegmentationFailed("No upper body found in the person photo."),
        ),
        (
            "video-generate",
            {"prompt": "waves", "duration": 10, "resolution": "720p"},
            "generate_video",
            GpuOutOfMemory("Triton: wan_t2v ran out of GPU memory"),
        ),
    ],
)
def test_an_engine_failure_fails_the_job_once_and_refunds_it(
    world: tuple[Any, ...],
    media: Media,
    operation: str,
    params: dict[str, Any],
    double: str,
    error: Exception,
) -> None:
    store, blobs, worker, _, account = world
    inputs = {}
    if operation == "virtual-tryon":
        inputs = {
            "person": blobs.put(_png(100, 150), "inputs", ".png"),
            "garment": blobs.put(_png(100, 100), "inputs", ".png"),
        }
    job = _submit(store, account, operation, params, inputs)
    assert store.balance(account.id) == 1000.0 - job.credits
    media.raise_from[double] = error
    assert worker.run_once()
    done = store.get(job.id)
    # Permanent: not retried (a second attempt would fail the same way).
    assert (done.status, done.attempts, done.error_code) == ("failed", 1, error.code)  # type: ignore[attr-defined]
    assert done.refunded_at is not None and store.balance(account.id) == 1000.0


@pytest.mark.parametrize(
    "message",
    [
        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)",
        "onnx runtime error 6: CUDA failure 2: out of memory ; GPU=0",
        "torch.OutOfMemoryError: ...",
    ],
)
def test_triton_out_of_gpu_memory_is_gpu_out_of_memory(message: str) -> None:
    err = _map_error(InferenceServerException(message, status="StatusCode.INTERNAL"), "wan_t2v")
    assert (err.code, err.http_status) == ("gpu_out_of_memory", 503)
    other = _map_error(InferenceServerException("bad shape", status="StatusCode.INTERNAL"), "x")
    assert other.code == "internal_error"
