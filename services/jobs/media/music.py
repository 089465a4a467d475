"""Text to music for PixelAPI's `POST /v1/audio/generate`: the `musicgen` pipeline
model in Triton (model_repository/musicgen: MusicGen's generation loop over its
exported text encoder, decoder and EnCodec models) makes the samples, and `encode_wav`
turns them into the job's one output file, 16-bit PCM WAV through the standard library.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass

import numpy as np

from services.common import models
from services.common.errors import InvalidParameter
from services.jobs.engines import TritonEngines

ENGINE = "musicgen"
# A whole generation is one call; on a CPU musicgen-small runs slower than real time.
_DEFAULT_TIMEOUT_S = 600.0
# The pipeline model names the offending input first ("DURATION: 0.0 is outside ...").
_API_FIELDS = {
    "PROMPT": "prompt",
    "DURATION": "duration",
    "SEED": "seed",
    "GUIDANCE_SCALE": "guidance_scale",
}


@dataclass(frozen=True)
class Audio:
    """Generated audio: `samples` float32 [channels, n] in [-1, 1] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int


def generate_music(
    engines: TritonEngines,
    prompt: str,
    duration_s: float,
    *,
    seed: int | None = None,
    guidance_scale: float | None = None,
    timeout_s: float | None = None,
) -> tuple[Audio, str]:
    """`duration_s` seconds of music for `prompt` from the `musicgen` pipeline model;
    returns (audio, engine name). ModelUnavailable (503, not charged) unless MusicGen
    and its components are deployed; InvalidParameter naming the field for a value
    the model refuses. EnCodec's output can overshoot [-1, 1] by a little; it is
    clipped here, once, so the WAV is what the Audio holds."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise InvalidParameter("duration", f"duration must be positive seconds, got {duration_s}")
    engines.require(models.MUSICGEN)
    inputs: dict[str, np.ndarray] = {
        "PROMPT": np.array([prompt.encode("utf-8")], dtype=np.object_),
        "DURATION": np.array([duration_s], dtype=np.float32),
    }
    if seed is not None:
        inputs["SEED"] = np.array([seed], dtype=np.int64)
    if guidance_scale is not None:
        inputs["GUIDANCE_SCALE"] = np.array([guidance_scale], dtype=np.float32)
    out = engines.call(
        models.MUSICGEN,
        inputs,
        ("AUDIO", "SAMPLE_RATE"),
        timeout_s=timeout_s or _DEFAULT_TIMEOUT_S,
        fields=_API_FIELDS,
    )
    samples = np.clip(np.asarray(out["AUDIO"], dtype=np.float32), -1.0, 1.0)
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise ValueError(f"{models.MUSICGEN} returned audio of shape {list(samples.shape)}")
    return Audio(samples, int(out["SAMPLE_RATE"].reshape(-1)[0])), ENGINE


def encode_wav(audio: Audio) -> bytes:
    """16-bit PCM WAV bytes of `audio` (channels interleaved), via the stdlib `wave`."""
    samples = np.asarray(audio.samples, dtype=np.float32)
    if samples.ndim != 2 or samples.shape[0] < 1:
        raise ValueError(f"audio samples must be [channels, n], got {list(samples.shape)}")
    if audio.sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {audio.sample_rate}")
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(samples.shape[0])
        out.setsampwidth(2)
        out.setframerate(int(audio.sample_rate))
        out.writeframes(np.ascontiguousarray(pcm.T).tobytes())
    return buffer.getvalue()
