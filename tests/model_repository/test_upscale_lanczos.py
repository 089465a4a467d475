"""upscale_lanczos: the algorithm in-process, and the model through the real
tritonserver (signature, per-request errors)."""

from __future__ import annotations

from types import ModuleType

import cv2
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common.triton import TritonProcess
from services.samples.synthetic import make_sample
from tests.model_repository.triton_fixtures import config_parameters, load_model_module


@pytest.fixture(scope="module")
def lanczos() -> ModuleType:
    return load_model_module("upscale_lanczos", "lanczos")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def test_upscale_restores_a_downscaled_photo(lanczos: ModuleType) -> None:
    truth = make_sample("bottle", "wood", size=(512, 512)).rgb
    small = cv2.resize(truth, (128, 128), interpolation=cv2.INTER_AREA)
    out = lanczos.upscale(small, 4, lanczos.LanczosParams())
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    plain = cv2.resize(small, (512, 512), interpolation=cv2.INTER_LINEAR)
    # Sharper than bilinear on the edges, and still faithful overall.
    assert psnr(out, truth) >= psnr(plain, truth) - 0.5
    assert psnr(out, truth) >= 24
    grad = lambda im: np.abs(np.diff(im.astype(np.int16), axis=1)).mean()  # noqa: E731
    assert grad(out) > grad(plain)


def test_banded_unsharp_equals_a_whole_image_pass(lanczos: ModuleType) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (301, 97, 3), dtype=np.uint8)
    banded, whole = image.copy(), image.copy()
    lanczos.unsharp(banded, 2.0, 0.6, 2, band_rows=40)
    lanczos.unsharp(whole, 2.0, 0.6, 2, band_rows=10_000)
    assert np.array_equal(banded, whole)
    assert not np.array_equal(whole, image)


def test_flat_areas_stay_flat(lanczos: ModuleType) -> None:
    flat = np.full((40, 50, 3), 200, np.uint8)
    out = lanczos.upscale(flat, 2, lanczos.LanczosParams())
    assert out.shape == (80, 100, 3) and (out == 200).all()


@pytest.mark.parametrize(
    "shape, scale, match",
    [
        ((10, 10, 4), 2, "HxWx3"),
        ((10, 10, 3), 3, "SCALE must be one of"),
        ((3000, 10, 3), 4, "limit is 8192"),
    ],
)
def test_bad_requests_are_refused(
    lanczos: ModuleType, shape: tuple[int, ...], scale: int, match: str
) -> None:
    with pytest.raises(lanczos.UpscaleInputError, match=match):
        lanczos.upscale(np.zeros(shape, np.uint8), scale, lanczos.LanczosParams())


def test_unknown_parameter_is_refused(lanczos: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown upscale_lanczos parameters"):
        lanczos.parse_params({"sharpness": "1"})
    assert lanczos.parse_params({"unsharp_amount": "0.3"}).unsharp_amount == 0.3


def _infer(server: TritonProcess, image: np.ndarray, scale: int) -> np.ndarray:
    client = triton_grpc.InferenceServerClient(server.grpc_addr)
    try:
        a = triton_grpc.InferInput("IMAGE", list(image.shape), "UINT8")
        a.set_data_from_numpy(image)
        b = triton_grpc.InferInput("SCALE", [1], "INT32")
        b.set_data_from_numpy(np.array([scale], np.int32))
        return client.infer("upscale_lanczos", [a, b]).as_numpy("UPSCALED")
    finally:
        client.close()


def test_served_model_matches_the_algorithm(
    triton_server: TritonProcess, lanczos: ModuleType
) -> None:
    image = make_sample("mug", "plain", size=(160, 120)).rgb
    served = _infer(triton_server, image, 2)
    params = lanczos.parse_params(config_parameters("upscale_lanczos"))
    assert np.array_equal(served, lanczos.upscale(image, 2, params))


def test_served_model_answers_a_bad_request_with_invalid_arg(triton_server: TritonProcess) -> None:
    with pytest.raises(InferenceServerException, match="SCALE must be one of") as err:
        _infer(triton_server, np.zeros((8, 8, 3), np.uint8), 3)
    assert "INVALID_ARG" in str(err.value.status())
    # ... and keeps serving.
    assert _infer(triton_server, np.zeros((8, 8, 3), np.uint8), 4).shape == (32, 32, 3)
