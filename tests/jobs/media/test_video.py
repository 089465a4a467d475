"""services/jobs/media/video.py without Triton: the duration -> WAN frame count rule and
the MP4 encoder, decoded back with PyAV. generate_video against a served tiny WAN is in
tests/models/test_wan_triton.py (one tritonserver for both)."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from services.jobs.media.video import FPS, RESOLUTIONS, encode_mp4, frame_count


@pytest.mark.parametrize(
    "duration, frames",
    [(1, 17), (3, 49), (5, 81), (10, 161), (1.5, 25), (0.1, 5), (2.99, 49), (0.25, 5)],
)
def test_frame_count_is_the_shortest_wan_length_that_fills_the_duration(
    duration: float, frames: int
) -> None:
    got = frame_count(duration)
    assert got == frames and (got - 1) % 4 == 0 and got >= duration * FPS


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_frame_count_refuses_non_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        frame_count(bad)


def test_resolutions_are_wan_sizes() -> None:
    assert RESOLUTIONS == {"480p": (832, 480), "720p": (1280, 720)}
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in RESOLUTIONS.values())


def _moving_gradient(frames: int, height: int, width: int) -> np.ndarray:
    t, y, x = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    video = np.stack([x * 2 + t * 3, y * 3 + t, (x + y) // 2 + 40], axis=-1)
    return video.clip(0, 255).astype(np.uint8)


def test_mp4_decodes_back_to_the_frames() -> None:
    frames = _moving_gradient(17, 48, 80)
    data = encode_mp4(frames)
    assert data[4:8] == b"ftyp" and 0 < data.find(b"moov") < data.find(b"mdat")  # faststart
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == FPS
        assert (stream.codec_context.width, stream.codec_context.height) == (80, 48)
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        seconds = float(container.duration / av.time_base)
    assert decoded.shape == frames.shape
    assert seconds == pytest.approx(17 / FPS, abs=1e-3)
    diff = np.abs(decoded.astype(int) - frames)
    # 4:2:0 chroma and BT.601 rounding cost a level or two; frame order must hold.
    assert diff.mean() < 3 and np.percentile(diff, 99) <= 8


def test_mp4_refuses_what_h264_yuv420p_cannot_hold() -> None:
    with pytest.raises(ValueError, match="even"):
        encode_mp4(np.zeros((3, 31, 48, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        encode_mp4(np.zeros((3, 32, 48, 3), np.float32))


class _FailingEngines:
    """TritonEngines' two methods generate_video uses, with the call failing as a
    component out of GPU memory reaches the worker (INTERNAL, said in words)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def require(self, model: str) -> None:
        assert model == "wan_t2v"

    def call(
        self,
        model: str,
        inputs: dict,
        outputs: tuple,
        timeout_s: float | None = None,
        fields: dict | None = None,
    ):
        raise self.error


def test_gpu_out_of_memory_is_its_own_error() -> None:
    from services.common.errors import GpuOutOfMemory, LightboxError
    from services.jobs.media.video import generate_video

    oom = LightboxError(
        "Triton: wan_t2v failed: INTERNAL: wan_t2v: component wan_t2v_vae_decoder: "
        "out of memory decoding [1, 16, 21, 60, 104] latents on cuda:0"
    )
    with pytest.raises(GpuOutOfMemory) as caught:
        generate_video(_FailingEngines(oom), "a cat", width=832, height=480, duration_s=5)
    assert caught.value.http_status == 503 and "81 frames at 832x480" in str(caught.value)
    other = LightboxError("Triton: wan_t2v failed: INTERNAL: something else")
    with pytest.raises(LightboxError) as caught:
        generate_video(_FailingEngines(other), "a cat", width=832, height=480, duration_s=5)
    assert type(caught.value) is LightboxError
