"""inpaint_telea: the algorithm in-process, and the model through the real
tritonserver."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common.triton import TritonProcess
from tests.model_repository.triton_fixtures import config_parameters, load_model_module


@pytest.fixture(scope="module")
def telea() -> ModuleType:
    return load_model_module("inpaint_telea", "telea")


def gradient_scene(h: int = 240, w: int = 320) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([60 + 0.4 * xx, 80 + 0.5 * yy, 150 + 0.1 * (xx - yy)], axis=2)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def test_an_object_on_a_smooth_backdrop_disappears(telea: ModuleType) -> None:
    scene = gradient_scene()
    photo = scene.copy()
    photo[100:140, 150:190] = (20, 20, 20)  # the object
    mask = np.zeros(scene.shape[:2], np.uint8)
    mask[98:142, 148:192] = 255
    out = telea.inpaint(photo, mask, telea.TeleaParams())
    err = np.abs(out.astype(int) - scene.astype(int))
    assert err[100:140, 150:190].mean() < 6
    # Far from the mask every pixel is the input's, bit for bit.
    far = np.ones(mask.shape, bool)
    far[80:160, 130:210] = False
    assert np.array_equal(out[far], photo[far])


def test_large_crops_are_filled_at_reduced_size(telea: ModuleType) -> None:
    scene = gradient_scene(600, 800)
    photo = scene.copy()
    photo[100:500, 100:700] = 0
    mask = np.zeros(scene.shape[:2], np.uint8)
    mask[100:500, 100:700] = 255
    params = telea.parse_params({"work_long_side": "128"})
    out = telea.inpaint(photo, mask, params)
    assert np.abs(out.astype(int) - scene.astype(int))[100:500, 100:700].mean() < 12


def test_regions_far_apart_get_separate_crops_and_close_ones_merge(telea: ModuleType) -> None:
    mask = np.zeros((400, 400), bool)
    mask[10:20, 10:20] = True
    mask[300:310, 300:310] = True
    mask[300:310, 330:340] = True
    boxes = telea.mask_regions(mask, 16, 0.0)
    assert sorted(boxes) == [(0, 0, 36, 36), (284, 284, 356, 326)]


def test_empty_mask_returns_the_image(telea: ModuleType) -> None:
    photo = gradient_scene(32, 32)
    out = telea.inpaint(photo, np.zeros((32, 32), np.uint8), telea.TeleaParams())
    assert np.array_equal(out, photo)


def test_mask_of_another_size_is_refused(telea: ModuleType) -> None:
    with pytest.raises(telea.InpaintInputError, match="MASK must be uint8 HxW"):
        telea.inpaint(gradient_scene(32, 32), np.zeros((31, 32), np.uint8), telea.TeleaParams())


def _infer(server: TritonProcess, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    client = triton_grpc.InferenceServerClient(server.grpc_addr)
    try:
        a = triton_grpc.InferInput("IMAGE", list(image.shape), "UINT8")
        a.set_data_from_numpy(image)
        b = triton_grpc.InferInput("MASK", list(mask.shape), "UINT8")
        b.set_data_from_numpy(mask)
        return client.infer("inpaint_telea", [a, b]).as_numpy("INPAINTED")
    finally:
        client.close()


def test_served_model_matches_the_algorithm(
    triton_server: TritonProcess, telea: ModuleType
) -> None:
    photo = gradient_scene()
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[50:70, 60:200] = 255
    served = _infer(triton_server, photo, mask)
    expected = telea.inpaint(photo, mask, telea.parse_params(config_parameters("inpaint_telea")))
    assert np.array_equal(served, expected)


def test_served_model_refuses_a_mismatched_mask(triton_server: TritonProcess) -> None:
    with pytest.raises(InferenceServerException, match="MASK must be uint8 HxW") as err:
        _infer(triton_server, gradient_scene(32, 32), np.zeros((16, 16), np.uint8))
    assert "INVALID_ARG" in str(err.value.status())
