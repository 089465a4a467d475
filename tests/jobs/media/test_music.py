"""services/jobs/media/music.py: generate_music against the served tiny MusicGen
(tests/models/musicgen_fixtures.py), and encode_wav read back by the stdlib `wave`."""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc

from services.common import models
from services.common.errors import InvalidParameter, ModelUnavailable
from services.common.triton import TritonProcess
from services.jobs.engines import TritonEngines
from services.jobs.media.music import Audio, encode_wav, generate_music
from tests.models.musicgen_fixtures import (  # noqa: F401  (fixtures)
    musicgen_checkpoint,
    musicgen_repo,
    musicgen_triton,
)


@pytest.fixture(scope="module")
def engines(musicgen_triton: TritonProcess) -> Any:  # noqa: F811
    e = TritonEngines(musicgen_triton.grpc_addr)
    yield e
    e.close()


def _read_wav(data: bytes) -> tuple[np.ndarray, int, int]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getcomptype() == "NONE"
        frames = wav.readframes(wav.getnframes())
        channels, rate = wav.getnchannels(), wav.getframerate()
    pcm = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).T
    return pcm, channels, rate


def test_generate_music(engines: TritonEngines, musicgen_triton: TritonProcess) -> None:  # noqa: F811
    audio, engine = generate_music(engines, "lofi beat with piano", 0.5, seed=4)
    assert engine == "musicgen" and audio.sample_rate == 32_000
    assert audio.samples.dtype == np.float32 and audio.samples.shape == (1, 25 * 640)
    assert float(np.abs(audio.samples).max()) <= 1.0 and audio.samples.std() > 0.01
    # The Audio is the pipeline model's output for the same request, clipped.
    client = triton_grpc.InferenceServerClient(musicgen_triton.grpc_addr)
    inputs = []
    for name, array, kind in (
        ("PROMPT", np.array([b"lofi beat with piano"], dtype=np.object_), "BYTES"),
        ("DURATION", np.array([0.5], np.float32), "FP32"),
        ("SEED", np.array([4], np.int64), "INT64"),
    ):
        tensor = triton_grpc.InferInput(name, list(array.shape), kind)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    served = client.infer("musicgen", inputs).as_numpy("AUDIO")
    client.close()
    np.testing.assert_array_equal(audio.samples, np.clip(served, -1, 1))
    again, _ = generate_music(engines, "lofi beat with piano", 0.5, seed=4)
    other, _ = generate_music(engines, "lofi beat with piano", 0.5, seed=5, guidance_scale=1.0)
    np.testing.assert_array_equal(audio.samples, again.samples)
    assert np.abs(audio.samples - other.samples).mean() > 1e-3


def test_generate_music_names_the_bad_field(engines: TritonEngines) -> None:
    with pytest.raises(InvalidParameter) as caught:
        generate_music(engines, "a song", 0.5, guidance_scale=99.0, seed=1)
    assert caught.value.field == "guidance_scale" and caught.value.http_status == 422
    with pytest.raises(InvalidParameter) as caught:
        generate_music(engines, "a song", 45.0, seed=1)
    assert caught.value.field == "duration" and "DURATION: 45 is outside" in caught.value.message
    with pytest.raises(InvalidParameter) as caught:
        generate_music(engines, "a song", 0.0)
    assert caught.value.field == "duration"


def test_generate_music_unavailable(
    engines: TritonEngines, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The decoder is missing: MusicGen is not usable even though its pipeline is.
    monkeypatch.setattr(engines, "ready_models", lambda: {"musicgen", "musicgen_text_encoder"})
    with pytest.raises(ModelUnavailable) as caught:
        generate_music(engines, "a song", 5.0)
    assert caught.value.http_status == 503
    assert caught.value.guidance == models.INSTALL_HINT[models.MUSICGEN]
    assert "musicgen_decoder" in caught.value.message


def test_encode_wav_round_trip() -> None:
    t = np.arange(3200, dtype=np.float32) / 32_000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = np.linspace(-1.2, 1.2, t.size, dtype=np.float32)  # overshoots: clipped
    data = encode_wav(Audio(np.stack([left, right]).astype(np.float32), 32_000))
    pcm, channels, rate = _read_wav(data)
    assert (channels, rate) == (2, 32_000) and pcm.shape == (2, 3200)
    assert np.abs(pcm[0] / 32767 - left).max() <= 0.5 / 32767 + 1e-7
    assert pcm[1].min() == -32767 and pcm[1].max() == 32767
    mono, channels, _ = _read_wav(encode_wav(Audio(left[None].astype(np.float32), 16_000)))
    assert channels == 1 and np.array_equal(mono[0], pcm[0])


@pytest.mark.parametrize(
    "samples, rate",
    [(np.zeros(10, np.float32), 32_000), (np.zeros((1, 10), np.float32), 0)],
)
def test_encode_wav_refuses_bad_audio(samples: np.ndarray, rate: int) -> None:
    with pytest.raises(ValueError):
        encode_wav(Audio(samples, rate))
