"""Text to video (PixelAPI's POST /v1/video/generate) on the `wan_t2v` Triton pipeline
model (WAN 2.1, model_repository/wan_t2v), and the MP4 the job hands back.

Duration to frames: WAN makes 4k + 1 frames (its VAE encodes the first frame alone and
then four frames per latent frame). A request for `duration_s` seconds at FPS gets the
shortest WAN length that fills it: the smallest 4k + 1 not below duration_s x FPS
(1 s -> 17 frames, 3 s -> 49, 5 s -> 81, WAN's native length, 10 s -> 161). Every
generated frame is kept, so the MP4 plays 1/16 s longer than asked (3 s -> 3.0625 s):
the extra frame is WAN's own, not padding.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import numpy as np

from services.common import models
from services.common.errors import (
    GpuOutOfMemory,
    InvalidParameter,
    LightboxError,
    ModelUnavailable,
    ServiceUnavailable,
)
from services.jobs.engines import TritonEngines

FPS = 16
RESOLUTIONS = {"480p": (832, 480), "720p": (1280, 720)}
ENGINE = "wan2.1-t2v"
# One call makes the whole video: minutes on a GPU (docs/wan.md), far longer on a CPU.
VIDEO_TIMEOUT_S = 3600.0
# WAN's VAE: 4 frames per latent frame after the first.
_TEMPORAL = 4
# The pipeline model's inputs -> the API's fields, for the rejections it names
# ("NUM_FRAMES: 20 is not 4k+1"): width and height come from `resolution`, the frame
# count from `duration`.
_API_FIELDS = {
    "PROMPT": "prompt",
    "NEGATIVE_PROMPT": "negative_prompt",
    "WIDTH": "resolution",
    "HEIGHT": "resolution",
    "NUM_FRAMES": "duration",
    "STEPS": "steps",
    "GUIDANCE_SCALE": "guidance_scale",
    "SEED": "seed",
}
_OUT_OF_MEMORY = re.compile(r"out of memory|failed to allocate memory", re.IGNORECASE)
# FFmpeg's AVCOL_*_SMPTE170M (BT.601 525) and AVCOL_RANGE_MPEG.
_BT601 = 6
_LIMITED_RANGE = 1


def frame_count(duration_s: float) -> int:
    """Frames WAN makes for `duration_s` seconds at FPS: the smallest 4k + 1 not below
    duration_s x FPS. ValueError for a duration that is not a positive number."""
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration_s!r}")
    # Rounded first so 0.1 * 16 = 1.6000000000000001 does not become 2 frames' worth.
    frames = math.ceil(round(duration_s * FPS, 6))
    return _TEMPORAL * math.ceil(frames / _TEMPORAL) + 1


def generate_video(
    engines: TritonEngines,
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
    """(uint8 [T, H, W, 3] RGB frames, engine name) for the prompt; T = frame_count.

    ModelUnavailable (503, not charged) unless wan_t2v and its components are ready;
    a value the model refuses is InvalidParameter naming the field; a component out of
    GPU memory is GpuOutOfMemory (503); other Triton failures are mapped as for every
    stage (ServiceUnavailable when transient)."""
    engines.require(models.WAN_T2V)
    try:
        frames = frame_count(duration_s)
    except ValueError as exc:
        raise InvalidParameter("duration", str(exc)) from exc
    inputs: dict[str, np.ndarray] = {
        "PROMPT": _text(prompt),
        "WIDTH": np.array([width], np.int32),
        "HEIGHT": np.array([height], np.int32),
        "NUM_FRAMES": np.array([frames], np.int32),
    }
    if negative_prompt is not None:
        inputs["NEGATIVE_PROMPT"] = _text(negative_prompt)
    if seed is not None:
        inputs["SEED"] = np.array([seed], np.int64)
    if steps is not None:
        inputs["STEPS"] = np.array([steps], np.int32)
    if guidance_scale is not None:
        inputs["GUIDANCE_SCALE"] = np.array([guidance_scale], np.float32)
    try:
        out = engines.call(
            models.WAN_T2V,
            inputs,
            ("VIDEO",),
            timeout_s=timeout_s or VIDEO_TIMEOUT_S,
            fields=_API_FIELDS,
        )
    except (InvalidParameter, ServiceUnavailable, ModelUnavailable):
        raise
    except LightboxError as exc:
        # A component that ran out of GPU memory (torch's VAE decode, onnxruntime's
        # CUDA/TensorRT arena) fails the pipeline with INTERNAL and says so in words.
        if _OUT_OF_MEMORY.search(str(exc)):
            raise GpuOutOfMemory(
                f"{models.WAN_T2V} ran out of GPU memory for {frames} frames at "
                f"{width}x{height}: {exc}"
            ) from exc
        raise
    video = out["VIDEO"]
    if video.dtype != np.uint8 or video.shape != (frames, height, width, 3):
        raise LightboxError(
            f"{models.WAN_T2V} returned {video.dtype} {list(video.shape)} for VIDEO; "
            f"expected uint8 {[frames, height, width, 3]}"
        )
    return video, ENGINE


def encode_mp4(frames: np.ndarray, fps: int = FPS) -> bytes:
    """uint8 [T, H, W, 3] RGB frames -> an H.264 (yuv420p) MP4 at `fps`, moov atom first
    so browsers start playing before the download ends. H and W must be even (4:2:0
    chroma subsampling)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or not len(frames):
        raise ValueError(
            f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}"
        )
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
    # A real file: moving the moov atom to the front re-reads the output by name,
    # which an in-memory buffer cannot offer.
    with tempfile.TemporaryDirectory(prefix="lightbox-mp4-") as tmp:
        path = Path(tmp) / "video.mp4"
        _write_mp4(path, frames, fps)
        return path.read_bytes()


def _write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    import av

    _, height, width, _ = frames.shape
    with av.open(
        str(path), mode="w", format="mp4", options={"movflags": "+faststart"}
    ) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # swscale converts RGB with BT.601 coefficients into limited range; say so in
        # the stream, or players guess BT.709 for HD sizes and shift the colours.
        ctx = stream.codec_context
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = _BT601
        ctx.color_range = _LIMITED_RANGE
        # Visually lossless for generated video; the medium preset keeps encoding quick.
        stream.options = {"crf": "18", "preset": "medium"}
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _text(value: str) -> np.ndarray:
    return np.array([value.encode("utf-8")], dtype=np.object_)
