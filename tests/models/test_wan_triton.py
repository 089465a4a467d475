"""The wan_t2v pipeline model served for real: a tiny random-weight WAN 2.1 checkpoint
exported by services.models.wan, the committed model_repository/wan_t2v driving it
over BLS in the pip-installed tritonserver.

Proof of parity: the video Triton returns equals diffusers' WanPipeline output for the
same weights, seed and steps (the checkpoint's UniPC flow scheduler), with and without
a negative prompt and without guidance, within 1e-3 (max abs diff, [0, 1] floats).
Also: seeds, per-request errors naming the input, the refusal to load without an
export, and the worker's generate_video against the same server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common import models
from services.common.errors import InvalidParameter, ModelUnavailable
from services.common.triton import TritonProcess
from services.jobs.engines import TritonEngines
from services.jobs.media.video import frame_count, generate_video
from services.models.wan.reference import (
    PARITY_NEGATIVE,
    PARITY_PROMPT,
    PARITY_SEED,
    DiffusersReference,
    Job,
    run_triton,
    triton_inputs,
)
from tests.models.wan_fixtures import UNEXPORTED, wan_export, wan_triton  # noqa: F401

PARITY_TOLERANCE = 1e-3
_REFERENCE: dict[str, DiffusersReference] = {}


@pytest.fixture(scope="module")
def client(wan_triton: TritonProcess) -> Any:  # noqa: F811
    c = triton_grpc.InferenceServerClient(wan_triton.grpc_addr)
    yield c
    c.close()


def _job(**change: Any) -> Job:
    base = Job(PARITY_PROMPT, PARITY_NEGATIVE, 48, 32, 5, 2, 5.0, PARITY_SEED)
    return Job(**{**base.__dict__, **change})


@pytest.mark.parametrize(
    "job",
    [
        _job(),
        _job(negative_prompt=None),
        _job(guidance_scale=1.0, num_frames=9, steps=3),
    ],
    ids=["negative", "no_negative", "no_guidance-9_frames"],
)
def test_triton_matches_diffusers(
    job: Job,
    client: Any,
    wan_export: tuple[Path, Path, Any],  # noqa: F811
) -> None:
    import torch

    torch.set_num_threads(1)
    if "ref" not in _REFERENCE:
        _REFERENCE["ref"] = DiffusersReference(wan_export[1])
    expected = _REFERENCE["ref"](job)
    got, got_u8 = run_triton(client, job)
    assert got.shape == expected.shape == (job.num_frames, job.height, job.width, 3)
    # Random weights must still draw a moving picture, or the comparison proves little.
    assert expected.std() > 0.05 and ((expected > 0) & (expected < 1)).mean() > 0.5
    assert np.abs(expected[0] - expected[-1]).mean() > 0.02
    diff = float(np.abs(got - expected).max())
    print(f"max abs diff {job.negative_prompt!r} g={job.guidance_scale}: {diff:.2e}")
    assert diff <= PARITY_TOLERANCE
    expected_u8 = (expected * 255).round().astype(np.uint8)
    assert int(np.abs(got_u8.astype(int) - expected_u8).max()) <= 1


def _video(client: Any, drop: tuple[str, ...] = (), **change: Any) -> tuple[np.ndarray, int]:
    inputs = [i for i in triton_inputs(_job(**change)) if i.name() not in drop]
    result = client.infer(
        "wan_t2v",
        inputs,
        outputs=[
            triton_grpc.InferRequestedOutput("VIDEO"),
            triton_grpc.InferRequestedOutput("SEED"),
        ],
    )
    return result.as_numpy("VIDEO"), int(result.as_numpy("SEED")[0])


def test_seed_decides_the_video(client: Any) -> None:
    first, seed = _video(client, seed=7)
    again, _ = _video(client, seed=7)
    other, _ = _video(client, seed=8)
    assert seed == 7
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 5
    drawn, drawn_seed = _video(client, drop=("SEED",))
    replay, _ = _video(client, seed=drawn_seed)
    np.testing.assert_array_equal(drawn, replay)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_frames": 20}, "NUM_FRAMES: 20 is not 4k+1"),
        ({"width": 40}, "WIDTH: 40 is not a multiple of 16"),
        ({"height": 8}, "HEIGHT: 8 is outside 16..1280"),
        ({"steps": 500}, "STEPS: 500 is outside 1..100"),
        ({"guidance_scale": 99.0}, "GUIDANCE_SCALE: 99.0 is outside"),
    ],
)
def test_bad_inputs_are_invalid_argument(client: Any, change: dict[str, Any], message: str) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer("wan_t2v", triton_inputs(_job(**change)))
    assert "INVALID_ARGUMENT" in str(caught.value.status())
    assert message in caught.value.message()


def test_unexported_pipeline_does_not_load(client: Any) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.load_model(UNEXPORTED)
    assert "no exported checkpoint" in caught.value.message()
    assert "lightbox models export wan" in caught.value.message()
    assert not client.is_model_ready(UNEXPORTED)


# generate_video: the worker's call.


@pytest.fixture(scope="module")
def engines(wan_triton: TritonProcess) -> Any:  # noqa: F811
    e = TritonEngines(wan_triton.grpc_addr)
    yield e
    e.close()


def test_generate_video_is_the_pipeline_output(engines: TritonEngines, client: Any) -> None:
    # 0.25 s at 16 fps is 4 frames: WAN's 4k + 1 makes 5.
    assert frame_count(0.25) == 5
    video, engine = generate_video(
        engines, PARITY_PROMPT, width=48, height=32, duration_s=0.25, seed=3, steps=2
    )
    _, expected = run_triton(client, _job(negative_prompt=None, seed=3, steps=2))
    assert engine == "wan2.1-t2v" and video.dtype == np.uint8 and video.shape == (5, 32, 48, 3)
    np.testing.assert_array_equal(video, expected)


def test_generate_video_names_the_bad_field(engines: TritonEngines) -> None:
    with pytest.raises(InvalidParameter) as caught:
        generate_video(engines, "a cat", width=40, height=32, duration_s=0.25, steps=1, seed=1)
    assert caught.value.field == "resolution" and caught.value.http_status == 422
    assert "WIDTH: 40 is not a multiple of 16" in str(caught.value)
    with pytest.raises(InvalidParameter) as caught:
        generate_video(engines, "a cat", width=48, height=32, duration_s=11, steps=1, seed=1)
    assert caught.value.field == "duration"  # 177 frames: past max_frames
    with pytest.raises(InvalidParameter) as caught:
        generate_video(engines, "a cat", width=48, height=32, duration_s=0, steps=1)
    assert caught.value.field == "duration"


def test_generate_video_unavailable(
    engines: TritonEngines, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engines, "ready_models", lambda: {"wan_t2v", "wan_t2v_transformer"})
    with pytest.raises(ModelUnavailable) as caught:
        generate_video(engines, "a cat", width=832, height=480, duration_s=3)
    assert caught.value.http_status == 503
    assert caught.value.guidance == models.INSTALL_HINT[models.WAN_T2V]
