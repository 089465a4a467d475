"""upscale_rrdn: the served front over a toy RRDN stand-in against the same tiling
in-process (4x, and 2x as the 4x result area-averaged), and the real provisioned model
tiled against untiled."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc

from services.common.triton import MODEL_REPOSITORY, TritonProcess
from services.models import rrdn
from services.models.pybackend import tiling
from services.samples.photos import load_photo
from services.samples.synthetic import make_sample
from tests.model_repository.triton_fixtures import config_parameters


def infer(server: TritonProcess, model: str, image: np.ndarray, scale: int) -> np.ndarray:
    client = triton_grpc.InferenceServerClient(server.grpc_addr)
    try:
        a = triton_grpc.InferInput("IMAGE", list(image.shape), "UINT8")
        a.set_data_from_numpy(image)
        b = triton_grpc.InferInput("SCALE", [1], "INT32")
        b.set_data_from_numpy(np.array([scale], np.int32))
        return client.infer(model, [a, b]).as_numpy("UPSCALED")
    finally:
        client.close()


def test_the_config_names_its_model_and_scale() -> None:
    params = tiling.parse_params(config_parameters("upscale_rrdn"))
    assert params.network_model == "upscale_rrdn_onnx"
    assert params.model_scale == 4
    with pytest.raises(ValueError, match="unknown upscale parameters"):
        tiling.parse_params({"tile_size": "64"})


@pytest.mark.parametrize("k", [2, 4])
def test_served_front_matches_the_in_process_tiling(
    production_server: TritonProcess, production_repo: Path, k: int
) -> None:
    image = make_sample("bottle", "wood", size=(300, 280)).rgb
    served = infer(production_server, "upscale_rrdn", image, k)
    sess = rrdn.session(production_repo / "upscale_rrdn_onnx" / "1" / "model.onnx")
    params = tiling.parse_params(config_parameters("upscale_rrdn"))
    expected = tiling.upscale_tiled(
        image, k, lambda x: sess.run(["output"], {"input": x})[0], params
    )
    assert served.shape == (280 * k, 300 * k, 3)
    # OpenVINO serves it (bf16 where the CPU has it); the toy weights keep values small.
    assert np.abs(served.astype(int) - expected.astype(int)).mean() < 2.0


def test_a_scale_the_front_cannot_make_is_refused(production_server: TritonProcess) -> None:
    image = make_sample("bottle", "plain", size=(64, 64)).rgb
    with pytest.raises(triton_grpc.InferenceServerException, match="SCALE must be one of"):
        infer(production_server, "upscale_rrdn", image, 3)
    big = np.zeros((2100, 16, 3), np.uint8)
    with pytest.raises(triton_grpc.InferenceServerException, match="the limit is 8192"):
        infer(production_server, "upscale_rrdn", big, 4)


def test_the_real_model_tiled_equals_untiled() -> None:
    """With the model `make test` provisions: a photo cut into 40 px cores (the served
    context and overlap) against one pass over the whole photo."""
    path = MODEL_REPOSITORY / "upscale_rrdn_onnx" / "1" / "model.onnx"
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail("upscale_rrdn_onnx is not provisioned (`make models`)")
        pytest.skip("RRDN is not provisioned: `lightbox models fetch rrdn`")
    sess = rrdn.session(path)
    image = cv2.resize(load_photo("coffee").rgb, (96, 72), interpolation=cv2.INTER_AREA)
    whole = rrdn.upscale_whole(sess, image)
    served = tiling.parse_params(config_parameters("upscale_rrdn"))
    params = tiling.TileParams(
        network_model=served.network_model,
        tile=40,
        pad=served.pad,
        overlap=served.overlap,
        model_scale=4,
    )
    tiled = tiling.upscale_tiled(image, 4, lambda x: sess.run(["output"], {"input": x})[0], params)
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.01
