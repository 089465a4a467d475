"""The MusicGen pipeline model served for real: the tiny random-weight checkpoint
exported by services.models.musicgen.export, the committed model_repository/musicgen
driving its three components over BLS in the pip-installed tritonserver.

Parity: the codes Triton generates equal those of transformers'
MusicgenForConditionalGeneration.generate for the same weights and prompt, greedy with
and without classifier-free guidance, and sampled (top-k) after torch.manual_seed with
the same seed; the decoded audio is within 1e-3 (max abs diff) of transformers'.

Also: inputs refused with INVALID_ARGUMENT naming them, a missing component, and the
committed model refusing to load without an exported checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common.triton import TritonProcess
from services.models.musicgen.reference import PARITY_PROMPT, Job, TransformersReference
from tests.models.musicgen_fixtures import (  # noqa: F401  (fixtures)
    UNEXPORTED,
    musicgen_checkpoint,
    musicgen_repo,
    musicgen_triton,
)

AUDIO_TOLERANCE = 1e-3
_REFERENCE: dict[str, TransformersReference] = {}


@pytest.fixture(scope="module")
def client(musicgen_triton: TritonProcess) -> Any:  # noqa: F811
    c = triton_grpc.InferenceServerClient(musicgen_triton.grpc_addr)
    yield c
    c.close()


def _tensor(name: str, array: np.ndarray, dtype: str) -> Any:
    t = triton_grpc.InferInput(name, list(array.shape), dtype)
    t.set_data_from_numpy(array)
    return t


def _inputs(prompt: str = PARITY_PROMPT, duration: float = 0.6, **extra: Any) -> list[Any]:
    inputs = [
        _tensor("PROMPT", np.array([prompt.encode("utf-8")], dtype=np.object_), "BYTES"),
        _tensor("DURATION", np.array([duration], np.float32), "FP32"),
    ]
    kinds = {
        "SEED": (np.int64, "INT64"),
        "GUIDANCE_SCALE": (np.float32, "FP32"),
        "TOP_K": (np.int32, "INT32"),
        "DO_SAMPLE": (np.bool_, "BOOL"),
    }
    for name, value in extra.items():
        dtype, triton_type = kinds[name]
        inputs.append(_tensor(name, np.array([value], dtype=dtype), triton_type))
    return inputs


def _generate(client: Any, model: str = "musicgen", **kwargs: Any) -> dict[str, np.ndarray]:
    result = client.infer(model, _inputs(**kwargs))
    return {n: result.as_numpy(n) for n in ("AUDIO", "SAMPLE_RATE", "SEED", "CODES")}


@pytest.mark.parametrize("guidance", [3.0, 1.0])
def test_triton_matches_transformers_greedy(
    guidance: float,
    client: Any,
    musicgen_checkpoint: Path,  # noqa: F811
) -> None:
    if "ref" not in _REFERENCE:
        _REFERENCE["ref"] = TransformersReference(musicgen_checkpoint)
    job = Job(PARITY_PROMPT, 1.0, guidance)
    want_audio, want_codes = _REFERENCE["ref"](job)
    got = _generate(client, duration=1.0, GUIDANCE_SCALE=guidance, DO_SAMPLE=False)
    assert got["CODES"].shape == (4, 50) and got["AUDIO"].shape == (1, 32_000)
    assert int(got["SAMPLE_RATE"][0]) == 32_000
    # Random weights must still make codes that vary, or equality proves little.
    assert all(len(set(row)) > 1 for row in want_codes)
    np.testing.assert_array_equal(got["CODES"], want_codes)
    assert want_audio.std() > 0.01
    assert float(np.abs(got["AUDIO"] - want_audio).max()) <= AUDIO_TOLERANCE


def test_triton_matches_transformers_sampling(
    client: Any,
    musicgen_checkpoint: Path,  # noqa: F811
) -> None:
    if "ref" not in _REFERENCE:
        _REFERENCE["ref"] = TransformersReference(musicgen_checkpoint)
    # The model's defaults: sampling, guidance 3, top-k 250 (all 64 tiny codes).
    job = Job(PARITY_PROMPT, 1.0, 3.0, seed=20_261_207, do_sample=True)
    want_audio, want_codes = _REFERENCE["ref"](job)
    got = _generate(client, duration=1.0, SEED=job.seed)
    assert all(len(set(row)) > 10 for row in want_codes)
    np.testing.assert_array_equal(got["CODES"], want_codes)
    assert float(np.abs(got["AUDIO"] - want_audio).max()) <= AUDIO_TOLERANCE


def test_prompt_and_guidance_change_the_music(client: Any) -> None:
    base = _generate(client, DO_SAMPLE=False)["CODES"]
    other_prompt = _generate(client, prompt="jazz trio with upright bass", DO_SAMPLE=False)
    unguided = _generate(client, GUIDANCE_SCALE=1.0, DO_SAMPLE=False)
    assert (base != other_prompt["CODES"]).mean() > 0.2
    assert (base != unguided["CODES"]).mean() > 0.2


def test_seed_decides_the_sampled_audio(client: Any) -> None:
    first = _generate(client, SEED=7)
    again = _generate(client, SEED=7)
    other = _generate(client, SEED=8)
    assert int(first["SEED"][0]) == 7
    np.testing.assert_array_equal(first["AUDIO"], again["AUDIO"])
    assert (first["CODES"] != other["CODES"]).mean() > 0.3
    assert np.abs(first["AUDIO"] - other["AUDIO"]).mean() > 1e-3
    # Sampling from the single most likely code is greedy decoding.
    np.testing.assert_array_equal(
        _generate(client, SEED=9, TOP_K=1)["CODES"], _generate(client, DO_SAMPLE=False)["CODES"]
    )


def test_missing_seed_is_drawn_and_returned(client: Any) -> None:
    drawn = _generate(client)
    replay = _generate(client, SEED=int(drawn["SEED"][0]))
    np.testing.assert_array_equal(drawn["AUDIO"], replay["AUDIO"])


def test_duration_sets_the_length(client: Any) -> None:
    got = _generate(client, duration=0.25, SEED=1)
    # round(0.25 s * 50 Hz) = 12 frames (banker's rounding of 12.5), 640 samples each.
    assert got["CODES"].shape == (4, 12) and got["AUDIO"].shape == (1, 12 * 640)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"duration": 0.0}, "DURATION: 0 is outside (0, 30] seconds"),
        ({"duration": 31.0}, "DURATION: 31 is outside"),
        ({"duration": float("nan")}, "DURATION: nan is outside"),
        ({"duration": 0.005}, "DURATION: 0.005 s is less than one frame (0.02 s)"),
        ({"prompt": "   "}, "PROMPT: must not be empty"),
        ({"prompt": "x" * 2001}, "PROMPT: 2001 characters; at most 2000"),
        ({"GUIDANCE_SCALE": 99.0}, "GUIDANCE_SCALE: 99 is outside 0..30"),
        ({"TOP_K": -1}, "TOP_K: -1 is negative"),
        ({"SEED": -5}, "SEED: -5 is outside"),
    ],
)
def test_bad_inputs_are_invalid_argument(client: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer("musicgen", _inputs(**kwargs))
    assert "INVALID_ARGUMENT" in str(caught.value.status())
    assert message in caught.value.message()


def test_bad_request_fails_alone(client: Any) -> None:
    results: dict[str, Any] = {}

    def done(key: str) -> Any:
        return lambda result, error: results.__setitem__(key, (result, error))

    client.async_infer("musicgen", _inputs(duration=-1.0), callback=done("bad"))
    client.async_infer("musicgen", _inputs(duration=0.2, SEED=3), callback=done("good"))
    deadline = time.monotonic() + 60
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    bad_result, bad_error = results["bad"]
    good_result, good_error = results["good"]
    assert bad_result is None and "DURATION: -1 is outside" in bad_error.message()
    assert good_error is None and good_result.as_numpy("AUDIO").shape == (1, 10 * 640)


def test_missing_component_is_unavailable(client: Any) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer("musicgen_broken", _inputs(SEED=1))
    assert "UNAVAILABLE" in str(caught.value.status())
    assert "musicgen_decoder_not_deployed" in caught.value.message()
    assert _generate(client, duration=0.2, SEED=1)["AUDIO"].shape == (1, 10 * 640)


def test_unexported_pipeline_does_not_load(client: Any) -> None:
    """The committed pipeline model without an export: not loaded, and the reason
    says how to export; the worker sees it as not ready."""
    with pytest.raises(InferenceServerException) as caught:
        client.load_model(UNEXPORTED)
    assert "no exported checkpoint" in caught.value.message()
    assert "lightbox models export musicgen" in caught.value.message()
    assert not client.is_model_ready(UNEXPORTED)
