"""The SDXL pipeline models served for real: tiny random-weight checkpoints exported by
services.models.sdxl.export, the committed model_repository/sdxl and sdxl_inpaint
pipeline models driving them over BLS in the pip-installed tritonserver.

Proof of parity: for every scheduler in text-to-image, 9-channel inpainting and
4-channel inpainting, the image Triton returns equals diffusers' own pipeline output
for the same weights, seed, scheduler and steps within 1e-3 (max abs diff, [0, 1]
floats). bench/sdxl_bench.py writes the same table to bench/results/sdxl_parity.json.

Also: per-request errors, seeds, and the worker's engine methods
(TritonEngines.generate / inpaint) against the same server.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common import models
from services.common.errors import InvalidParameter, ModelUnavailable, ServiceUnavailable
from services.common.triton import MODEL_REPOSITORY, TritonProcess
from services.jobs.engines import TritonEngines
from services.models.sdxl.reference import (
    PARITY_CASES,
    DiffusersReference,
    Job,
    ParityCase,
    parity_job,
    product_scene,
    run_triton,
)
from tests.models.sdxl_fixtures import (  # noqa: F401  (fixtures)
    MODE_MODELS,
    NUMBA_CACHE,
    sdxl_checkpoints,
    sdxl_repo,
    sdxl_triton,
)

PARITY_TOLERANCE = 1e-3

_REFERENCES: dict[str, DiffusersReference] = {}


@pytest.fixture(scope="module")
def client(sdxl_triton: TritonProcess) -> Any:  # noqa: F811
    c = triton_grpc.InferenceServerClient(sdxl_triton.grpc_addr)
    yield c
    c.close()


def _reference(mode: str, checkpoints: dict[str, Path]) -> DiffusersReference:
    if mode not in _REFERENCES:
        folder = checkpoints["inpaint"] if mode == "inpaint" else checkpoints["base"]
        _REFERENCES[mode] = DiffusersReference(folder, inpaint=mode != "txt2img")
    return _REFERENCES[mode]


def _case_id(case: ParityCase) -> str:
    extra = "" if case.strength == 1.0 else f"-strength{case.strength}"
    extra += "" if case.negative_prompt is not None else "-no_negative"
    return f"{case.mode}-{case.scheduler}{extra}"


@pytest.mark.parametrize("case", PARITY_CASES, ids=_case_id)
def test_triton_matches_diffusers(
    case: ParityCase,
    client: Any,
    sdxl_checkpoints: dict[str, Path],  # noqa: F811
) -> None:
    job = parity_job(case)
    expected = _reference(case.mode, sdxl_checkpoints)(job)
    model, inpaint = MODE_MODELS[case.mode]
    got, got_u8 = run_triton(client, model, job, inpaint)
    assert got.shape == expected.shape == (job.height, job.width, 3)
    # The random weights must draw a real picture, or the comparison proves little.
    assert expected.std() > 0.05 and ((expected > 0) & (expected < 1)).mean() > 0.5
    assert float(np.abs(got - expected).max()) <= PARITY_TOLERANCE
    # uint8 rounding of near-equal floats differs by at most one level.
    expected_u8 = (expected * 255).round().astype(np.uint8)
    assert int(np.abs(got_u8.astype(int) - expected_u8).max()) <= 1


def _generate(client: Any, **overrides: Any) -> tuple[np.ndarray, int]:
    job = Job(
        prompt=overrides.pop("prompt", "a bottle on marble"),
        negative_prompt=None,
        width=96,
        height=64,
        steps=4,
        guidance_scale=5.0,
        seed=overrides.pop("seed", 7),
        scheduler="euler",
    )
    inputs = [i for i in _inputs(job) if i.name() not in overrides.get("drop", ())]
    result = client.infer(
        "sdxl",
        inputs,
        outputs=[
            triton_grpc.InferRequestedOutput("IMAGE"),
            triton_grpc.InferRequestedOutput("SEED"),
        ],
    )
    return result.as_numpy("IMAGE"), int(result.as_numpy("SEED")[0])


def _inputs(job: Job, inpaint: bool = False) -> list[Any]:
    from services.models.sdxl.reference import triton_inputs

    return triton_inputs(job, inpaint)


def test_seed_decides_the_image(client: Any) -> None:
    first, seed = _generate(client, seed=7)
    again, _ = _generate(client, seed=7)
    other, _ = _generate(client, seed=8)
    assert seed == 7
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 5


def test_prompt_changes_the_image(client: Any) -> None:
    first, _ = _generate(client, prompt="a bottle on marble")
    other, _ = _generate(client, prompt="a red sneaker on wet sand at golden hour")
    assert np.abs(first.astype(int) - other).mean() > 1


def test_missing_seed_is_drawn_and_returned(client: Any) -> None:
    image, seed = _generate(client, drop=("SEED",))
    replay, _ = _generate(client, seed=seed)
    np.testing.assert_array_equal(image, replay)


def test_bad_request_fails_alone(client: Any) -> None:
    """A bad request and a good one in flight together: only the bad one fails, with
    INVALID_ARGUMENT naming the input."""
    good = Job("a bottle", None, 96, 64, 2, 5.0, 3, "euler")
    bad = Job("a bottle", None, 96, 64, 0, 5.0, 3, "euler")
    results: dict[str, Any] = {}

    def done(key: str) -> Any:
        return lambda result, error: results.__setitem__(key, (result, error))

    client.async_infer("sdxl", _inputs(bad), callback=done("bad"))
    client.async_infer("sdxl", _inputs(good), callback=done("good"))
    deadline = time.monotonic() + 60
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    bad_result, bad_error = results["bad"]
    good_result, good_error = results["good"]
    assert bad_result is None and "INVALID_ARGUMENT" in str(bad_error.status())
    assert "STEPS: 0 is outside 1..100" in bad_error.message()
    assert good_error is None and good_result.as_numpy("IMAGE").shape == (64, 96, 3)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"width": 100}, "WIDTH: 100 is not a multiple of 8"),
        ({"scheduler": "ddim"}, "SCHEDULER: 'ddim' is not one of"),
        ({"guidance_scale": 99.0}, "GUIDANCE_SCALE: 99.0 is outside"),
    ],
)
def test_out_of_range_inputs_are_invalid_argument(
    client: Any, change: dict[str, Any], message: str
) -> None:
    job = Job(**{**Job("a bottle", None, 96, 64, 2, 5.0, 3, "euler").__dict__, **change})
    with pytest.raises(InferenceServerException) as caught:
        client.infer("sdxl", _inputs(job))
    assert "INVALID_ARGUMENT" in str(caught.value.status())
    assert message in caught.value.message()


def test_inpaint_mask_must_match_image(client: Any) -> None:
    image, mask = product_scene(96, 64)
    job = Job("a bottle", None, 96, 64, 2, 5.0, 3, "euler", 1.0, image, mask[:, :-8])
    with pytest.raises(InferenceServerException) as caught:
        client.infer("sdxl_inpaint", _inputs(job, inpaint=True))
    assert "MASK: must be uint8 HxW at the image's size [64, 96]" in caught.value.message()


def test_missing_component_is_unavailable(client: Any) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer("sdxl_broken", _inputs(Job("a bottle", None, 96, 64, 2, 5.0, 3, "euler")))
    assert "UNAVAILABLE" in str(caught.value.status())
    assert "sdxl_unet_not_deployed" in caught.value.message()
    # The failure was that request's alone; the model keeps serving the others.
    image, _ = _generate(client)
    assert image.shape == (64, 96, 3)


def test_unexported_pipeline_does_not_load(tmp_path: Path) -> None:
    """The committed pipeline model without an export: not loaded, and the reason
    says how to export."""
    repo = tmp_path / "repo"
    shutil.copytree(
        MODEL_REPOSITORY / "sdxl", repo / "sdxl", ignore=shutil.ignore_patterns("__pycache__")
    )
    with TritonProcess.start(
        repo,
        tmp_path / "work",
        model_control="explicit",
        load_models=[],
        numba_cache_dir=NUMBA_CACHE,
    ) as triton:
        c = triton_grpc.InferenceServerClient(triton.grpc_addr)
        with pytest.raises(InferenceServerException) as caught:
            c.load_model("sdxl")
        c.close()
    assert "no exported checkpoint" in caught.value.message()
    assert "lightbox models export sdxl" in caught.value.message()


# TritonEngines: the worker's calls.


@pytest.fixture(scope="module")
def engines(sdxl_triton: TritonProcess) -> Any:  # noqa: F811
    e = TritonEngines(sdxl_triton.grpc_addr)
    yield e
    e.close()


def test_engine_generate_is_the_pipeline_output(engines: TritonEngines, client: Any) -> None:
    case = ParityCase("dpmpp_2m_karras", "txt2img", 8, 5.0)
    job = parity_job(case)
    rgb, engine = engines.generate(
        job.prompt,
        job.negative_prompt,
        width=job.width,
        height=job.height,
        steps=job.steps,
        guidance_scale=job.guidance_scale,
        seed=job.seed,
        scheduler=job.scheduler,
    )
    _, expected = run_triton(client, "sdxl", job, inpaint=False)
    assert engine == "sdxl" and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, expected)


def test_engine_generate_defaults(engines: TritonEngines) -> None:
    # Model defaults (30 steps, euler) and a random seed; just a valid image back.
    rgb, _ = engines.generate("a bottle", width=64, height=64, steps=2)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8


def test_engine_generate_names_the_bad_field(engines: TritonEngines) -> None:
    with pytest.raises(InvalidParameter) as caught:
        engines.generate("a bottle", width=96, height=64, steps=500, seed=1)
    assert caught.value.field == "steps" and caught.value.http_status == 422
    with pytest.raises(InvalidParameter) as caught:
        engines.generate("a bottle", width=90, height=64, steps=2, seed=1)
    assert caught.value.field == "width"


def test_engine_inpaint_any_size_same_seed_same_image(engines: TritonEngines) -> None:
    # 100 x 70 is no multiple of 8: generated at 96 x 64, resized back.
    image, mask = product_scene(100, 70)
    first = engines.inpaint(image, mask >= 128, "a bottle on marble", steps=4, seed=11)
    again = engines.inpaint(image, mask, "a bottle on marble", steps=4, seed=11)
    other = engines.inpaint(image, mask, "a bottle on marble", steps=4, seed=12)
    assert first.shape == (70, 100, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 5
    assert np.abs(first.astype(int) - image).mean() > 5


def test_engine_inpaint_checks_inputs(engines: TritonEngines) -> None:
    image, mask = product_scene(96, 64)
    with pytest.raises(InvalidParameter) as caught:
        engines.inpaint(image, mask[:, :10], "a bottle")
    assert caught.value.field == "mask"
    with pytest.raises(InvalidParameter) as caught:
        engines.inpaint(image, mask, "a bottle", strength=1.5, seed=1, steps=2)
    assert caught.value.field == "strength"


def test_engine_unavailable_model(engines: TritonEngines, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "ready_models", lambda: {"matting_classical"})
    with pytest.raises(ModelUnavailable) as caught:
        engines.generate("a bottle", width=64, height=64)
    assert caught.value.http_status == 503
    assert caught.value.guidance == models.INSTALL_HINT[models.SDXL]
    image, mask = product_scene(64, 64)
    with pytest.raises(ModelUnavailable, match="sdxl_inpaint"):
        engines.inpaint(image, mask, "a bottle")


def test_engine_component_down_is_transient(engines: TritonEngines) -> None:
    from services.jobs.engines import _infer_input, _sdxl_inputs

    inputs = _sdxl_inputs("a bottle", None, 2, 5.0, 1, None)
    inputs += [
        _infer_input("WIDTH", np.array([64], np.int32)),
        _infer_input("HEIGHT", np.array([64], np.int32)),
    ]
    with pytest.raises(ServiceUnavailable, match="sdxl_unet_not_deployed"):
        engines._sdxl_call("sdxl_broken", inputs, timeout_s=60)
