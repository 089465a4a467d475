"""TritonEngines against real tritonserver processes: engine choice by readiness, no
fallback after an error, and error mapping (server down, bad image, no model)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc

from services.common.errors import (
    InvalidImage,
    InvalidParameter,
    ModelUnavailable,
    ServiceUnavailable,
)
from services.common.triton import TritonProcess, free_port
from services.jobs.engines import TritonEngines
from services.samples.synthetic import make_sample
from tests.model_repository import triton_fixtures

numba_cache = triton_fixtures.numba_cache
triton_server = triton_fixtures.triton_server
test_models = triton_fixtures.test_models
production_repo = triton_fixtures.production_repo

SAMPLE = make_sample("mug", "plain", size=(384, 384))


def iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    a, b = alpha > 127, truth > 127
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def matting_server(
    numba_cache: Path,
    production_repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TritonProcess]:
    """A server with all three matting engines (BiRefNet and ISNet as their tiny
    random-weight stand-ins), ISNet configured to reject images under 1000 px so a
    request can fail on it and not on the classical engine; the test unloads models
    as it goes, so it has a server of its own."""
    repo = tmp_path_factory.mktemp("matting") / "repo"
    names = ["matting_classical", "matting_birefnet", "matting_isnet"]
    for name in names + ["matting_birefnet_onnx", "matting_isnet_onnx"]:
        shutil.copytree(production_repo / name, repo / name)
    config = repo / "matting_isnet" / "config.pbtxt"
    text = config.read_text()
    assert '"min_side", value: { string_value: "16" }' in text
    config.write_text(
        text.replace(
            '"min_side", value: { string_value: "16" }',
            '"min_side", value: { string_value: "1000" }',
        )
    )
    load = ["matting_classical", "matting_birefnet_onnx", "matting_isnet_onnx"] + names[1:]
    with TritonProcess.start(
        repo,
        tmp_path_factory.mktemp("triton-matting"),
        model_control="explicit",
        load_models=load,
        numba_cache_dir=numba_cache,
        ready_models=load,
        timeout=240,
    ) as server:
        yield server


def test_live_and_ready_models(triton_server: TritonProcess) -> None:
    engines = TritonEngines(triton_server.grpc_addr)
    assert engines.is_live()
    assert "matting_classical" in engines.ready_models()


def test_classical_engine_serves_when_birefnet_is_absent(triton_server: TritonProcess) -> None:
    alpha, engine = TritonEngines(triton_server.grpc_addr).matting(SAMPLE.rgb)
    assert engine == "classical"
    assert alpha.shape == (384, 384) and alpha.dtype == np.uint8
    assert iou(alpha, SAMPLE.alpha) >= 0.95


def test_model_rejecting_the_image_is_invalid_image(triton_server: TritonProcess) -> None:
    with pytest.raises(InvalidImage, match="at least 16 pixels"):
        TritonEngines(triton_server.grpc_addr).matting(np.zeros((4, 4, 3), np.uint8))


def test_wrong_array_is_invalid_image_before_any_call() -> None:
    # Nothing listens on this port: the check must happen before a request is made.
    engines = TritonEngines(f"127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(InvalidImage, match="HxWx3"):
        engines.matting(np.zeros((32, 32, 4), np.uint8))
    with pytest.raises(InvalidImage, match="uint8"):
        engines.matting(np.zeros((32, 32, 3), np.float32))


def test_server_down_is_service_unavailable() -> None:
    engines = TritonEngines(f"127.0.0.1:{free_port()}", timeout_s=2)
    assert not engines.is_live()
    with pytest.raises(ServiceUnavailable) as err:
        engines.matting(SAMPLE.rgb)
    assert err.value.code == "service_unavailable"
    with pytest.raises(ServiceUnavailable):
        engines.ready_models()


def test_engine_choice_follows_readiness_and_never_falls_back(
    matting_server: TritonProcess,
) -> None:
    engines = TritonEngines(matting_server.grpc_addr)
    big = make_sample("box", "wood", size=(1024, 1024))
    alpha, engine = engines.matting(big.rgb)
    assert engine == "birefnet" and alpha.shape == (1024, 1024)
    assert engines.matting_fallback_note(engine) is None

    client = triton_grpc.InferenceServerClient(matting_server.grpc_addr)
    try:
        client.unload_model("matting_birefnet")
        _, engine = engines.matting(big.rgb)
        assert engine == "isnet"
        # ISNet (configured here to) reject this one; classical would have taken it.
        # The error is the answer: no quiet second try on the cheaper engine.
        with pytest.raises(InvalidImage, match="matting_isnet.*at least 1000"):
            engines.matting(SAMPLE.rgb)

        # An operator's choice beats the order, and is not a fallback.
        classical = TritonEngines(matting_server.grpc_addr, matting_engine="classical")
        _, engine = classical.matting(SAMPLE.rgb)
        assert engine == "classical" and classical.matting_fallback_note(engine) is None

        # A front whose network is gone is not usable: classical serves, and says why.
        client.unload_model("matting_isnet_onnx")
        alpha, engine = engines.matting(SAMPLE.rgb)
        assert engine == "classical" and iou(alpha, SAMPLE.alpha) >= 0.95
        note = engines.matting_fallback_note(engine)
        assert note is not None and "lightbox models fetch isnet" in note

        # A forced engine that is not ready fails; it is never replaced.
        forced = TritonEngines(matting_server.grpc_addr, matting_engine="isnet")
        with pytest.raises(ModelUnavailable, match="LIGHTBOX_MATTING_ENGINE.*matting_isnet_onnx"):
            forced.matting(SAMPLE.rgb)

        client.unload_model("matting_classical")
        with pytest.raises(ModelUnavailable, match="no matting model is ready"):
            engines.matting(SAMPLE.rgb)
    finally:
        client.close()


def test_an_unknown_matting_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="matting_engine must be one of"):
        TritonEngines("127.0.0.1:1", matting_engine="u2net")


# -- upscale, remove-object, restore-face on the embedded engines ---------------------------


def test_upscale_is_served_by_lanczos_when_realesrgan_is_absent(
    triton_server: TritonProcess,
) -> None:
    out, engine = TritonEngines(triton_server.grpc_addr).upscale(SAMPLE.rgb[:100, :80], 2)
    assert engine == "lanczos"
    assert out.shape == (200, 160, 3) and out.dtype == np.uint8


def test_upscale_refuses_a_scale_before_any_call() -> None:
    engines = TritonEngines(f"127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(InvalidParameter, match="scale must be 2 or 4"):
        engines.upscale(SAMPLE.rgb, 3)


def test_upscale_past_the_model_limit_is_invalid_image(triton_server: TritonProcess) -> None:
    with pytest.raises(InvalidImage, match="limit is 8192"):
        TritonEngines(triton_server.grpc_addr).upscale(np.zeros((16, 2100, 3), np.uint8), 4)


def test_remove_object_with_a_mask_uses_telea_and_no_segmentation(
    triton_server: TritonProcess,
) -> None:
    photo = np.full((96, 128, 3), 180, np.uint8)
    photo[40:60, 50:80] = (10, 200, 10)
    mask = np.zeros((96, 128), np.uint8)
    mask[38:62, 48:82] = 255
    out, used = TritonEngines(triton_server.grpc_addr).remove_object(photo, mask, "the cup")
    assert used == {"inpaint": "telea"}
    assert np.abs(out.astype(int) - 180).max() <= 4


def test_remove_object_by_prompt_needs_clipseg(triton_server: TritonProcess) -> None:
    with pytest.raises(ModelUnavailable, match="segment_clipseg") as err:
        TritonEngines(triton_server.grpc_addr).remove_object(SAMPLE.rgb, None, "the mug")
    assert err.value.extra["model"] == "segment_clipseg"
    assert "lightbox models install segment_clipseg" in err.value.guidance


def test_restore_faces_has_no_embedded_engine(triton_server: TritonProcess) -> None:
    with pytest.raises(ModelUnavailable, match="face_codeformer") as err:
        TritonEngines(triton_server.grpc_addr).restore_faces(SAMPLE.rgb, 0.5)
    assert "face_detector" in str(err.value)


# -- the production engines (tiny stand-ins installed) ---------------------------------------

production_repo = triton_fixtures.production_repo
production_server = triton_fixtures.production_server
test_models = triton_fixtures.test_models


def test_production_engines_serve_when_installed(production_server: TritonProcess) -> None:
    engines = TritonEngines(production_server.grpc_addr)
    alpha, engine = engines.matting(SAMPLE.rgb)
    assert engine == "birefnet" and alpha.shape == SAMPLE.rgb.shape[:2]
    out, engine = engines.upscale(SAMPLE.rgb[:60, :50], 4)
    assert engine == "realesrgan" and out.shape == (240, 200, 3)
    mask = np.zeros(SAMPLE.rgb.shape[:2], np.uint8)
    mask[100:150, 100:150] = 255
    filled, used = engines.remove_object(SAMPLE.rgb, mask, None)
    assert used == {"inpaint": "lama"} and filled.shape == SAMPLE.rgb.shape
    photo = np.full((240, 320, 3), 40, np.uint8)
    photo[80:144, 128:192] = 230
    restored, faces = engines.restore_faces(photo, 0.5)
    assert faces >= 1 and restored.shape == photo.shape


def test_prompt_segmentation_runs_clipseg_then_the_inpainter(
    production_server: TritonProcess,
) -> None:
    engines = TritonEngines(production_server.grpc_addr)
    mask = engines.segment(SAMPLE.rgb, "the mug")
    assert mask.shape == SAMPLE.rgb.shape[:2] and set(np.unique(mask)) <= {0, 255}
    if (mask == 255).any():
        _, used = engines.remove_object(SAMPLE.rgb, None, "the mug")
        assert used == {"segmentation": "clipseg", "inpaint": "lama"}
    else:
        with pytest.raises(InvalidParameter, match="nothing matching 'the mug'"):
            engines.remove_object(SAMPLE.rgb, None, "the mug")


def test_a_front_whose_onnx_model_is_gone_is_not_chosen(production_server: TritonProcess) -> None:
    engines = TritonEngines(production_server.grpc_addr)
    client = triton_grpc.InferenceServerClient(production_server.grpc_addr)
    try:
        client.unload_model("upscale_realesrgan_onnx")
        assert "upscale_realesrgan" in engines.ready_models()
        # Next in line: the provisioned RRDN, for both scales.
        assert engines.upscale(SAMPLE.rgb[:40, :40], 2)[1] == "rrdn"
        assert engines.upscale(SAMPLE.rgb[:40, :40], 4)[1] == "rrdn"
        client.unload_model("upscale_rrdn_onnx")
        assert "upscale_rrdn" in engines.ready_models()
        out, engine = engines.upscale(SAMPLE.rgb[:40, :40], 2)
        assert engine == "lanczos" and out.shape == (80, 80, 3)
        assert "no super-resolution network is installed for 2x" in (
            engines.upscale_fallback_note(engine, 2) or ""
        )
    finally:
        client.load_model("upscale_rrdn_onnx")
        client.load_model("upscale_realesrgan_onnx")
        client.close()
    assert engines.upscale(SAMPLE.rgb[:40, :40], 2)[1] == "realesrgan"
    assert engines.upscale_fallback_note("realesrgan", 2) is None


def test_a_rejected_request_names_the_api_field() -> None:
    """engines.call(fields=...): the pipeline model's INVALID_ARGUMENT names its input
    first; the error names the API field. Other statuses map as for every stage."""
    from tritonclient.utils import InferenceServerException

    from services.common.errors import InvalidParameter, ServiceUnavailable
    from services.jobs.engines import _map_field_error

    fields = {"DURATION": "duration", "SEED": "seed"}
    rejected = InferenceServerException(
        "DURATION: 45 is outside 1..30", status="StatusCode.INVALID_ARGUMENT"
    )
    err = _map_field_error(rejected, "musicgen", fields)
    assert isinstance(err, InvalidParameter) and err.field == "duration"
    assert err.http_status == 422 and "45 is outside" in err.message
    unnamed = InferenceServerException("bad tensor", status="StatusCode.INVALID_ARGUMENT")
    err = _map_field_error(unnamed, "musicgen", fields)
    assert err.code == "invalid_request" and err.http_status == 400
    down = InferenceServerException("gone", status="StatusCode.UNAVAILABLE")
    assert isinstance(_map_field_error(down, "musicgen", fields), ServiceUnavailable)
