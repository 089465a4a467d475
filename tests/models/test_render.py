"""config.pbtxt for the cpu and gpu targets, from the installed file's signature."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.models import cli
from services.models.contracts import CONTRACTS
from services.models.install import install
from services.models.render import render_all, render_config
from services.models.trt import gpu_problem, trtexec_command
from tests.model_repository.triton_fixtures import TEST_MODELS, test_models  # noqa: F401
from tests.models.onnx_helpers import identity_model


@pytest.fixture
def repo(tmp_path: Path, test_models: dict[str, Path]) -> Path:  # noqa: F811
    path = tmp_path / "repo"
    path.mkdir()
    for name, file in test_models.items():
        tok = TEST_MODELS / "tokenizer" if name == "segment_clipseg_onnx" else None
        install(name, file, path, tokenizer=tok)
    return path


def test_cpu_target_is_the_python_runner_with_dynamic_batching(repo: Path) -> None:
    text = (repo / "upscale_realesrgan_onnx" / "config.pbtxt").read_text()
    assert 'backend: "python"' in text and "platform" not in text
    assert "max_batch_size: 4" in text
    assert '{ name: "input", data_type: TYPE_FP32, dims: [ 3, -1, -1 ] }' in text
    assert "preferred_batch_size: [ 2, 4 ]" in text and "max_queue_delay_microseconds" in text
    assert "kind: KIND_CPU" in text
    runner = Path("services/models/ort_runner.py").read_text()
    assert (repo / "upscale_realesrgan_onnx" / "1" / "model.py").read_text() == runner
    # A per-sample scalar is declared as [1]; the runner passes it as [N].
    weight = (repo / "face_codeformer_onnx" / "config.pbtxt").read_text()
    assert '{ name: "weight", data_type: TYPE_FP64, dims: [ 1 ] }' in weight


def test_gpu_target_is_onnxruntime_with_tensorrt_fp16_and_a_profile(repo: Path) -> None:
    paths = render_all(repo, "gpu")
    assert {p.parent.name for p in paths} == set(CONTRACTS)
    text = (repo / "upscale_realesrgan_onnx" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in text and "backend" not in text
    assert "max_batch_size: 8" in text and "kind: KIND_GPU" in text
    assert 'name: "tensorrt"' in text
    assert 'key: "precision_mode" value: "FP16"' in text
    assert 'key: "trt_profile_min_shapes" value: "input:1x3x16x16"' in text
    assert 'key: "trt_profile_opt_shapes" value: "input:4x3x256x256"' in text
    assert 'key: "trt_profile_max_shapes" value: "input:8x3x320x320"' in text
    assert not (repo / "upscale_realesrgan_onnx" / "1" / "model.py").exists()
    weight = (repo / "face_codeformer_onnx" / "config.pbtxt").read_text()
    assert "dims: [ 1 ], reshape: { shape: [ ] }" in weight
    birefnet = (repo / "matting_birefnet_onnx" / "config.pbtxt").read_text()
    assert "input_image:4x3x1024x1024" in birefnet and "max_batch_size: 4" in birefnet
    # Back to cpu: the runner returns.
    render_all(repo, "cpu")
    assert (repo / "upscale_realesrgan_onnx" / "1" / "model.py").exists()


def test_a_built_plan_switches_the_gpu_config_to_tensorrt_plan(repo: Path) -> None:
    folder = repo / "inpaint_lama_onnx"
    (folder / "1" / "model.plan").write_bytes(b"plan")
    text = render_config(folder, CONTRACTS["inpaint_lama_onnx"], "gpu")
    assert 'platform: "tensorrt_plan"' in text
    assert "trt_profile" not in text and "dynamic_batching" in text


def test_a_file_that_fixes_its_batch_at_one_is_not_batched(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    fixed = identity_model(
        tmp_path / "lama.onnx",
        [("image", "float32", [1, 3, 512, 512]), ("mask", "float32", [1, 1, 512, 512])],
        [("output", "float32", [1, 3, 512, 512])],
    )
    install("inpaint_lama", fixed, repo)
    text = (repo / "inpaint_lama_onnx" / "config.pbtxt").read_text()
    assert "max_batch_size: 0" in text and "dynamic_batching" not in text
    assert re.search(r'name: "image", data_type: TYPE_FP32, dims: \[ 1, 3, 512, 512 \]', text)


def test_build_trt_says_no_gpu_here_and_exits_non_zero(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if gpu_problem() is None:
        pytest.skip("this host can build TensorRT plans")
    assert cli.main(["build-trt", "upscale_realesrgan", "--repo", str(repo)]) == 2
    assert "cannot build a TensorRT plan here" in capsys.readouterr().err
    assert not (repo / "upscale_realesrgan_onnx" / "1" / "model.plan").exists()
    command = trtexec_command("upscale_realesrgan", repo)
    assert "--fp16" in command and "--minShapes=input:1x3x16x16" in command
