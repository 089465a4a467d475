"""matting_birefnet and matting_isnet: the one learned-matting front (python backend +
BLS over the network's ONNX stand-in) through the real tritonserver, against the same
steps in-process, configured per model from its config.pbtxt."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common.triton import TritonProcess
from services.models.pybackend.matting import FrontParams, postprocess, preprocess
from services.samples.synthetic import make_sample
from tests.model_repository.triton_fixtures import (  # noqa: F401
    config_parameters,
    numba_cache,
    production_repo,
    production_server,
    test_models,
)

FRONTS = ("matting_birefnet", "matting_isnet")


def params(model: str) -> FrontParams:
    """The model's config.pbtxt parameters, typed as the python backend types them."""
    kinds = {f.name: f.type for f in dataclasses.fields(FrontParams)}
    casts = {"int": int, "float": float, "str": str}
    raw = config_parameters(model)
    return FrontParams(**{k: casts[kinds[k]](v) for k, v in raw.items()})  # type: ignore[arg-type]


def infer(server: TritonProcess, model: str, image: np.ndarray) -> np.ndarray:
    client = triton_grpc.InferenceServerClient(server.grpc_addr)
    try:
        tensor = triton_grpc.InferInput("IMAGE", list(image.shape), "UINT8")
        tensor.set_data_from_numpy(image)
        return client.infer(model, [tensor]).as_numpy("ALPHA")
    finally:
        client.close()


def test_each_config_describes_its_network() -> None:
    birefnet, isnet = params("matting_birefnet"), params("matting_isnet")
    assert birefnet.network_model == "matting_birefnet_onnx" and not birefnet.keep_aspect
    assert (birefnet.network_input, birefnet.activation) == ("input_image", "logits")
    assert isnet.network_model == "matting_isnet_onnx" and isnet.keep_aspect
    assert (isnet.network_input, isnet.activation) == ("input", "probability")
    assert isnet.size_multiple == 64


@pytest.mark.parametrize("model", FRONTS)
def test_served_front_matches_the_steps_in_process(
    production_server: TritonProcess,  # noqa: F811
    production_repo: Path,  # noqa: F811
    model: str,
) -> None:
    image = make_sample("bottle", "plain", size=(640, 480)).rgb
    served = infer(production_server, model, image)
    p = params(model)
    session = ort.InferenceSession(
        str(production_repo / p.network_model / "1" / "model.onnx"),
        providers=["CPUExecutionProvider"],
    )
    x = preprocess(image, p)
    raw = session.run([p.network_output], {p.network_input: x})[0]
    expected = postprocess(raw, image, p)
    assert served.shape == (480, 640) and served.dtype == np.uint8
    # The served network may run at bf16 (OpenVINO, ort_runner.py) where this one runs
    # float32: a random-weight stand-in's answer moves a little, and a pixel near a
    # threshold may snap the other way.
    diff = np.abs(served.astype(int) - expected.astype(int))
    assert diff.mean() < 1.0 and (diff > 8).mean() < 0.01, (diff.mean(), (diff > 8).mean())


@pytest.mark.parametrize("model", FRONTS)
def test_a_bad_image_is_invalid_arg(
    production_server: TritonProcess,  # noqa: F811
    model: str,
) -> None:
    with pytest.raises(InferenceServerException, match="at least 16 pixels") as err:
        infer(production_server, model, np.zeros((8, 8, 3), np.uint8))
    assert "INVALID_ARG" in str(err.value.status())
