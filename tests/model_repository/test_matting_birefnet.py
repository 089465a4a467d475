"""matting_birefnet: the ensemble (pre -> ONNX -> post) through the real tritonserver
against the same steps in-process, and the full-resolution edge refinement."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common.samples import make_sample
from services.common.triton import TritonProcess
from tests.model_repository.triton_fixtures import config_parameters, load_model_module


@pytest.fixture(scope="module")
def pre() -> ModuleType:
    return load_model_module("matting_birefnet_pre", "birefnet_pre")


@pytest.fixture(scope="module")
def post() -> ModuleType:
    return load_model_module("matting_birefnet_post", "birefnet_post")


def infer(server: TritonProcess, image: np.ndarray) -> np.ndarray:
    client = triton_grpc.InferenceServerClient(server.grpc_addr)
    try:
        tensor = triton_grpc.InferInput("IMAGE", list(image.shape), "UINT8")
        tensor.set_data_from_numpy(image)
        return client.infer("matting_birefnet", [tensor]).as_numpy("ALPHA")
    finally:
        client.close()


def test_served_ensemble_matches_the_steps_in_process(
    production_server: TritonProcess, production_repo: Path, pre: ModuleType, post: ModuleType
) -> None:
    image = make_sample("bottle", "plain", size=(640, 480)).rgb
    served = infer(production_server, image)
    session = ort.InferenceSession(
        str(production_repo / "matting_birefnet_onnx" / "1" / "model.onnx"),
        providers=["CPUExecutionProvider"],
    )
    x = pre.preprocess(image, pre.PreParams(work_size=1024))
    assert x.shape == (1, 3, 1024, 1024) and x.dtype == np.float32
    logits = session.run(["output_image"], {"input_image": x})[0]
    params = post.PostParams(
        **{
            k: type(getattr(post.PostParams(), k))(v)
            for k, v in config_parameters("matting_birefnet_post").items()
        }
    )
    expected = post.postprocess(logits, image, params)
    assert served.shape == (480, 640) and served.dtype == np.uint8
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1


def test_a_bad_image_is_invalid_arg(production_server: TritonProcess) -> None:
    with pytest.raises(InferenceServerException, match="at least 16 pixels") as err:
        infer(production_server, np.zeros((8, 8, 3), np.uint8))
    assert "INVALID_ARG" in str(err.value.status())


def test_normalisation_is_imagenets(pre: ModuleType) -> None:
    grey = np.full((32, 32, 3), 124, np.uint8)  # ~ the ImageNet mean
    x = pre.preprocess(grey, pre.PreParams(work_size=64))
    assert x.shape == (1, 3, 64, 64)
    expected = (124 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(x[0, :, 0, 0], expected, atol=1e-5)


def four_k_scene() -> tuple[np.ndarray, np.ndarray]:
    """A 3840 x 2160 photo with hard-edged subjects on a textured backdrop, and its
    exact matte."""
    h, w = 2160, 3840
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = (((xx - 1900) / 1200) ** 2 + ((yy - 1080) / 800) ** 2 < 1).astype(np.float32)
    truth = np.maximum(truth, ((abs(xx - 800) < 300) & (abs(yy - 700) < 500)).astype(np.float32))
    backdrop = np.dstack(
        [np.full((h, w), 200.0), 180 + 20 * np.sin(xx / 50), np.full((h, w), 170.0)]
    )
    subject = np.dstack([np.full((h, w), 40.0), 60 + 10 * np.cos(yy / 30), np.full((h, w), 120.0)])
    noise = np.random.default_rng(0).normal(0, 3, (h, w, 3))
    photo = truth[..., None] * subject + (1 - truth[..., None]) * backdrop + noise
    return np.clip(photo, 0, 255).astype(np.uint8), truth


def test_four_k_edges_stay_crisp(post: ModuleType) -> None:
    photo, truth = four_k_scene()
    # What a 1024 px model sees and answers: the matte at its resolution, a little soft.
    low = cv2.GaussianBlur(
        cv2.resize(truth, (1024, 1024), interpolation=cv2.INTER_AREA), (0, 0), 1.0
    )
    low = np.clip(low, 1e-4, 1 - 1e-4)
    logits = np.log(low / (1 - low))[None, None].astype(np.float32)
    refined = post.postprocess(logits, photo, post.PostParams()).astype(np.float32) / 255
    upsampled = cv2.resize(low, (3840, 2160), interpolation=cv2.INTER_LINEAR)

    def soft(alpha: np.ndarray) -> int:
        return int(((alpha > 0.1) & (alpha < 0.9)).sum())

    assert soft(refined) < 0.5 * soft(upsampled)
    assert np.abs(refined - truth).mean() < 0.75 * np.abs(upsampled - truth).mean()
    # Solid subject and clear backdrop (beyond the refinement band) stay 1 and 0.
    inside = cv2.distanceTransform(truth.astype(np.uint8), cv2.DIST_L2, 3) > 32
    outside = cv2.distanceTransform((1 - truth).astype(np.uint8), cv2.DIST_L2, 3) > 32
    assert (refined[inside] > 0.99).all() and (refined[outside] < 0.01).all()
