"""Which models can load: the embedded stack loads exactly these, so absent weights
never break it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.triton import MODEL_REPOSITORY
from services.models.install import install
from services.models.repository import describe, loadable_models
from tests.model_repository.triton_fixtures import (  # noqa: F401
    TEST_MODELS,
    copy_repository,
    test_models,
)

EMBEDDED = ["inpaint_telea", "matting_classical", "upscale_lanczos"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repository(tmp_path / "repo")


def test_without_weights_only_the_embedded_engines_load(repo: Path) -> None:
    assert sorted(loadable_models(repo)) == EMBEDDED
    kinds = {name: d.kind for name, d in describe(repo).items()}
    assert kinds["matting_birefnet"] == "front" and kinds["matting_isnet"] == "front"
    assert kinds["matting_classical"] == "other"
    assert kinds["sdxl"] == kinds["musicgen"] == kinds["catvton"] == kinds["wan_t2v"] == "pipeline"


def test_the_committed_repository_loads_at_least_the_embedded_engines() -> None:
    assert set(EMBEDDED) <= set(loadable_models(MODEL_REPOSITORY))


def test_a_front_loads_once_everything_it_calls_is_installed(
    repo: Path,
    test_models: dict[str, Path],  # noqa: F811
) -> None:
    install("upscale_realesrgan", test_models["upscale_realesrgan_onnx"], repo)
    order = loadable_models(repo)
    assert order.index("upscale_realesrgan_onnx") < order.index("upscale_realesrgan")

    install("face_codeformer", test_models["face_codeformer_onnx"], repo)
    assert "face_codeformer" not in loadable_models(repo)  # no detector yet
    install("face_detector", test_models["face_detector_onnx"], repo)
    order = loadable_models(repo)
    assert order.index("face_detector") < order.index("face_codeformer")

    install("matting_birefnet", test_models["matting_birefnet_onnx"], repo)
    loads = set(loadable_models(repo))
    assert {"matting_birefnet", "matting_birefnet_onnx"} <= loads


def test_a_model_folder_without_its_model_file_does_not_load(repo: Path) -> None:
    broken = repo / "half_done"
    (broken / "1").mkdir(parents=True)
    (broken / "config.pbtxt").write_text('name: "half_done"\nbackend: "python"\n')
    assert "half_done" not in loadable_models(repo)
    assert describe(repo)["half_done"].installed is False
    # A runner copied in without the ONNX file it serves is just as incomplete.
    (broken / "1" / "model.py").write_text('PATH = "model.onnx"\n')
    assert "half_done" not in loadable_models(repo)
    (broken / "1" / "model.py").write_text("class TritonPythonModel: ...\n")
    assert "half_done" in loadable_models(repo)
