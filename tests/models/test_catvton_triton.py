"""The CatVTON pipeline model served for real: the tiny random-weight checkpoint
exported by services.models.catvton, the committed model_repository/catvton driving it
over BLS in the pip-installed tritonserver (one server for the module).

Proof of parity: IMAGE_FLOAT (the decoded person half at the working size) equals the
torch reference (services/models/catvton/reference.py: CatVTON's loop over the
diffusers modules and diffusers' DDIMScheduler) for the same weights, seed and steps
within 1e-3 max abs diff on [0, 1] floats, SDXL's bar. Also: seeds, per-request
errors naming the input, the unexported model not loading, and `try_on` through the
worker's TritonEngines (outside the mask, the person photo bit for bit).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common import models
from services.common.errors import InvalidImage, ModelUnavailable
from services.common.triton import MODEL_REPOSITORY, TritonProcess
from services.jobs.engines import TritonEngines
from services.jobs.media import tryon
from services.models.catvton.reference import CatvtonReference, ort_pipeline, pipeline_module
from tests.jobs.media.bodies import synthetic_person
from tests.models.catvton_fixtures import (  # noqa: F401  (fixtures)
    NUMBA_CACHE,
    WORK_SIZE,
    catvton_folder,
    catvton_repo,
    tryon_case,
)

PARITY_TOLERANCE = 1e-3
SERVED = ["catvton_unet", "catvton_vae_encoder", "catvton_vae_decoder", "catvton"]

cp = pipeline_module()


@pytest.fixture(scope="module")
def triton(
    catvton_repo: tuple[Path, Any],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TritonProcess]:
    repo, _ = catvton_repo
    # The committed pipeline model with no export beside it, under another name.
    missing = repo / "catvton_unexported"
    if not missing.exists():
        shutil.copytree(
            MODEL_REPOSITORY / "catvton", missing, ignore=shutil.ignore_patterns("__pycache__")
        )
        config = missing / "config.pbtxt"
        config.write_text(
            config.read_text().replace('name: "catvton"', 'name: "catvton_unexported"')
        )
    with TritonProcess.start(
        repo,
        tmp_path_factory.mktemp("catvton_triton"),
        model_control="explicit",
        load_models=SERVED,
        numba_cache_dir=NUMBA_CACHE,
        ready_models=SERVED,
        timeout=180,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def client(triton: TritonProcess) -> Iterator[Any]:
    c = triton_grpc.InferenceServerClient(triton.grpc_addr)
    yield c
    c.close()


def _infer(client: Any, inputs: dict[str, np.ndarray], outputs: tuple[str, ...]) -> Any:
    kinds = {np.uint8: "UINT8", np.int32: "INT32", np.int64: "INT64", np.float32: "FP32"}
    tensors = []
    for name, array in inputs.items():
        t = triton_grpc.InferInput(name, list(array.shape), kinds[array.dtype.type])
        t.set_data_from_numpy(array)
        tensors.append(t)
    return client.infer(
        "catvton", tensors, outputs=[triton_grpc.InferRequestedOutput(n) for n in outputs]
    )


def _request(seed: int | None = 77, steps: int = 2, guidance: float = 2.5) -> dict[str, np.ndarray]:
    person, garment, mask = tryon_case()
    inputs = {
        "PERSON": person,
        "GARMENT": garment,
        "MASK": mask,
        "STEPS": np.array([steps], np.int32),
        "GUIDANCE_SCALE": np.array([guidance], np.float32),
    }
    if seed is not None:
        inputs["SEED"] = np.array([seed], np.int64)
    return inputs


@pytest.mark.parametrize("guidance", [2.5, 1.0], ids=["cfg", "no_cfg"])
def test_served_matches_torch_reference(
    client: Any,
    catvton_folder: Path,  # noqa: F811
    catvton_repo: tuple[Path, Any],  # noqa: F811
    guidance: float,
) -> None:
    inputs = _request(steps=2, guidance=guidance)
    result = _infer(client, inputs, ("IMAGE", "IMAGE_FLOAT", "SEED"))
    got, got_u8 = result.as_numpy("IMAGE_FLOAT"), result.as_numpy("IMAGE")
    person, garment, mask = inputs["PERSON"], inputs["GARMENT"], inputs["MASK"]
    settled = cp.Settled(person, garment, mask, 2, guidance, 77)
    pipe = ort_pipeline(catvton_repo[0])
    fitted_person, fitted_garment, fitted_mask, box = pipe.prepare(settled)
    expected = CatvtonReference(catvton_folder)(
        fitted_person, fitted_garment, fitted_mask, steps=2, guidance_scale=guidance, seed=77
    )
    assert got.shape == expected.shape == (WORK_SIZE[1], WORK_SIZE[0], 3)
    # The random weights must draw a real picture, or the comparison proves little.
    assert expected.std() > 0.05 and ((expected > 0) & (expected < 1)).mean() > 0.5
    diff = float(np.abs(got - expected).max())
    print(f"catvton parity guidance={guidance}: max abs diff {diff:.2e}")
    assert diff <= PARITY_TOLERANCE
    # IMAGE: the same frame cut out of the padding and back at the person's size.
    back = cp.to_uint8(cp.unfit(expected, box, person.shape[1], person.shape[0]))
    assert got_u8.shape == person.shape
    assert int(np.abs(got_u8.astype(int) - back).max()) <= 1
    assert int(result.as_numpy("SEED")[0]) == 77


def test_seed_decides_the_image(client: Any) -> None:
    first = _infer(client, _request(seed=5), ("IMAGE",)).as_numpy("IMAGE")
    again = _infer(client, _request(seed=5), ("IMAGE",)).as_numpy("IMAGE")
    other = _infer(client, _request(seed=6), ("IMAGE",)).as_numpy("IMAGE")
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 1
    drawn = _infer(client, _request(seed=None), ("IMAGE", "SEED"))
    replay = _infer(client, _request(seed=int(drawn.as_numpy("SEED")[0])), ("IMAGE",))
    np.testing.assert_array_equal(drawn.as_numpy("IMAGE"), replay.as_numpy("IMAGE"))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"MASK": np.zeros((150, 80), np.uint8)}, "MASK: must be uint8 HxW at the person"),
        ({"MASK": np.zeros((150, 90), np.uint8)}, "MASK: marks nothing"),
        ({"STEPS": np.array([0], np.int32)}, "STEPS: 0 is outside 1..100"),
        ({"GUIDANCE_SCALE": np.array([99.0], np.float32)}, "GUIDANCE_SCALE: 99.0 is outside"),
        ({"GARMENT": np.zeros((8, 200, 3), np.uint8)}, "GARMENT: 200x8 px"),
        ({"SEED": np.array([-1], np.int64)}, "SEED: -1 is outside"),
    ],
    ids=["mask_size", "mask_empty", "steps", "guidance", "garment_size", "seed"],
)
def test_bad_inputs_are_invalid_argument(
    client: Any, change: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        _infer(client, {**_request(), **change}, ("IMAGE",))
    assert "INVALID_ARGUMENT" in str(caught.value.status())
    assert message in caught.value.message()


def test_unexported_pipeline_does_not_load(client: Any) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.load_model("catvton_unexported")
    assert "no exported checkpoint" in caught.value.message()
    assert "lightbox models export catvton" in caught.value.message()
    assert not client.is_model_ready("catvton_unexported")


class SyntheticMatting(TritonEngines):
    """The worker's engines with matting answered by a drawn silhouette (the matting
    models have their own tests); everything else goes to the served CatVTON."""

    def __init__(self, grpc_addr: str, alpha: np.ndarray) -> None:
        super().__init__(grpc_addr, timeout_s=120)
        self.alpha = alpha

    def matting(self, rgb: np.ndarray) -> tuple[np.ndarray, str]:
        assert rgb.shape[:2] == self.alpha.shape
        return self.alpha, "synthetic"


def test_try_on_pastes_inside_the_mask_only(triton: TritonProcess) -> None:
    person, alpha = synthetic_person()
    garment = np.full((120, 100, 3), (30, 60, 220), np.uint8)
    engines = SyntheticMatting(triton.grpc_addr, alpha)
    try:
        result, used = tryon.try_on(engines, person, garment, "upperbody", seed=3, steps=2)
        again, _ = tryon.try_on(engines, person, garment, "upperbody", seed=3, steps=2)
    finally:
        engines.close()
    assert used == {"tryon": "catvton", "body-mask": "synthetic"}
    assert result.shape == person.shape and result.dtype == np.uint8
    np.testing.assert_array_equal(result, again)
    mask = tryon.body_mask(alpha, "upperbody")
    outside = mask < 128
    np.testing.assert_array_equal(result[outside], person[outside])
    assert np.abs(result[~outside].astype(int) - person[~outside]).mean() > 5


def test_try_on_needs_the_model(triton: TritonProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    person, alpha = synthetic_person()
    engines = SyntheticMatting(triton.grpc_addr, alpha)
    monkeypatch.setattr(engines, "ready_models", lambda: {"catvton", "catvton_unet"})
    try:
        with pytest.raises(ModelUnavailable) as caught:
            tryon.try_on(engines, person, person, "dress")
        assert caught.value.guidance == models.INSTALL_HINT[models.CATVTON]
        with pytest.raises(InvalidImage):
            tryon.try_on(engines, person[..., 0], person, "dress")
    finally:
        engines.close()
