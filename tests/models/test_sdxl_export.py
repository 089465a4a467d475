"""services.models.sdxl export, config rendering and build-trt on the tiny checkpoints:
what lands in the model repository, how close each ONNX component is to torch, the
fp16 and external-data variants, cpu and gpu configs, and the GPU-only plan build
refusing to run here."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from services.models.sdxl import export as export_module
from services.models.sdxl.__main__ import main as sdxl_cli
from services.models.sdxl.configs import RUNNER, exported_pipelines, render_sdxl_configs
from services.models.sdxl.export import COMPONENTS, ExportError, export_sdxl
from services.models.sdxl.reference import (
    DiffusersReference,
    ParityCase,
    ort_pipeline,
    parity_job,
)
from services.models.sdxl.trt import gpu_problem
from tests.models.sdxl_fixtures import sdxl_checkpoints, sdxl_repo  # noqa: F401

_REFERENCE: dict[str, DiffusersReference] = {}


def _diffusers(checkpoints: dict[str, Path]) -> DiffusersReference:
    if "base" not in _REFERENCE:
        _REFERENCE["base"] = DiffusersReference(checkpoints["base"], inpaint=False)
    return _REFERENCE["base"]


def _config(path: Path) -> Any:
    """config.pbtxt parsed by Triton's own ModelConfig schema (unknown fields fail)."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_export_validates_every_component(sdxl_repo: tuple[Path, dict[str, Any]]) -> None:  # noqa: F811
    _, reports = sdxl_repo
    for name, report in reports.items():
        assert report.ok and report.name == name and not report.fp16
        assert [c.component for c in report.components] == list(COMPONENTS)
        for c in report.components:
            assert c.dtype == "float32" and not c.external_data
            # Float32 ONNX vs torch at a shape other than the traced one.
            assert c.max_abs_diff < 1e-4, (name, c.component, c.max_abs_diff)
            assert c.reference_scale > 0.1 and c.passed
    assert reports["sdxl"].unet_in_channels == 4
    assert reports["sdxl_inpaint"].unet_in_channels == 9


def test_export_layout(sdxl_repo: tuple[Path, dict[str, Any]]) -> None:  # noqa: F811
    repo, _ = sdxl_repo
    assert exported_pipelines(repo) == ["sdxl", "sdxl_broken", "sdxl_inpaint", "sdxl_inpaint4ch"]
    checkpoint = repo / "sdxl_inpaint" / "checkpoint"
    meta = json.loads((checkpoint / "pipeline.json").read_text())
    assert meta["unet_in_channels"] == 9 and meta["vae_scale_factor"] == 8
    assert meta["vae_scaling_factor"] == pytest.approx(0.13025)
    assert meta["components"] == {c: f"sdxl_inpaint_{c}" for c in COMPONENTS}
    assert meta["input_dtypes"]["text_encoder"] == {"input_ids": "int32"}
    assert meta["input_dtypes"]["unet"]["timestep"] == "float32"
    for part in (
        "tokenizer/vocab.json",
        "tokenizer_2/merges.txt",
        "scheduler/scheduler_config.json",
    ):
        assert (checkpoint / part).is_file()
    assert json.loads((checkpoint / "export_report.json").read_text())["ok"] is True
    for component in COMPONENTS:
        model = repo / f"sdxl_inpaint_{component}"
        assert (model / "1" / "model.onnx").is_file()
        # cpu target: the python runner beside the ONNX file, full shapes.
        assert filecmp.cmp(model / "1" / "model.py", RUNNER, shallow=False)
        config = _config(model / "config.pbtxt")
        assert config.name == model.name and config.backend == "python"
        assert config.max_batch_size == 0
    unet = _config(repo / "sdxl_inpaint_unet" / "config.pbtxt")
    sample = next(i for i in unet.input if i.name == "sample")
    assert list(sample.dims) == [-1, 9, -1, -1]
    assert model_config_pb2.DataType.Name(sample.data_type) == "TYPE_FP32"
    text_2 = _config(repo / "sdxl_inpaint_text_encoder_2" / "config.pbtxt")
    assert [o.name for o in text_2.output] == ["hidden_states", "text_embeds"]
    assert list(text_2.input[0].dims) == [-1, 77]


def test_fp16_export(tmp_path: Path, sdxl_checkpoints: dict[str, Path]) -> None:  # noqa: F811
    report = export_sdxl(sdxl_checkpoints["base"], tmp_path, fp16=True)
    assert report.ok and report.fp16
    dtypes = {c.component: c.dtype for c in report.components}
    # SDXL's VAE overflows in float16 (force_upcast): it stays float32.
    assert dtypes == {
        "text_encoder": "float16",
        "text_encoder_2": "float16",
        "unet": "float16",
        "vae_encoder": "float32",
        "vae_decoder": "float32",
    }
    unet = onnx.load(str(tmp_path / "sdxl_unet" / "1" / "model.onnx"))
    weights = [t.data_type for t in unet.graph.initializer if t.data_type in (1, 10)]
    assert weights.count(10) > 0.9 * len(weights)
    # Inputs stay float32, so the pipeline model and configs do not change.
    assert {i.type.tensor_type.elem_type for i in unet.graph.input} == {1}
    run, _ = ort_pipeline(tmp_path, "sdxl", "txt2img")
    job = parity_job(ParityCase("euler", "txt2img", 8, 5.0))
    diff = float(np.abs(run(job) - _diffusers(sdxl_checkpoints)(job)).max())
    assert diff < 1e-2, diff


def test_external_data_export(
    tmp_path: Path,
    sdxl_checkpoints: dict[str, Path],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Weights over the protobuf limit go to model.onnx.data beside model.onnx (forced
    here by lowering the threshold) and the result still serves the same image."""
    monkeypatch.setattr(export_module, "EXTERNAL_DATA_THRESHOLD", 1)
    assert sdxl_cli(["export", str(sdxl_checkpoints["base"]), "--repo", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "sdxl" / "checkpoint" / "export_report.json").read_text())
    assert all(c["external_data"] for c in report["components"])
    unet_dir = tmp_path / "sdxl_unet" / "1"
    assert (unet_dir / "model.onnx.data").stat().st_size > 10 * (
        unet_dir / "model.onnx"
    ).stat().st_size
    run, _ = ort_pipeline(tmp_path, "sdxl", "txt2img")
    job = parity_job(ParityCase("dpmpp_2m_karras", "txt2img", 8, 5.0))
    assert float(np.abs(run(job) - _diffusers(sdxl_checkpoints)(job)).max()) < 1e-3


def _copy_pipeline(repo: Path, name: str, dest: Path) -> Path:
    meta = json.loads((repo / name / "checkpoint" / "pipeline.json").read_text())
    shutil.copytree(repo / name / "checkpoint", dest / name / "checkpoint")
    for model in meta["components"].values():
        shutil.copytree(repo / model, dest / model)
    return dest


def test_render_gpu_and_back(tmp_path: Path, sdxl_repo: tuple[Path, dict[str, Any]]) -> None:  # noqa: F811
    repo = _copy_pipeline(sdxl_repo[0], "sdxl", tmp_path)
    written = render_sdxl_configs(repo, "gpu")
    assert len(written) == len(COMPONENTS)
    unet_dir = repo / "sdxl_unet"
    unet = _config(unet_dir / "config.pbtxt")
    assert unet.platform == "onnxruntime_onnx" and unet.max_batch_size == 8
    assert not (unet_dir / "1" / "model.py").exists()
    # Batch is implicit with max_batch_size > 0.
    assert list(next(i for i in unet.input if i.name == "sample").dims) == [4, -1, -1]
    assert unet.HasField("dynamic_batching")
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(unet.instance_group[0].kind) == "KIND_GPU"
    accelerator = unet.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accelerator.name == "tensorrt"
    trt = dict(accelerator.parameters)
    assert trt["precision_mode"] == "FP16"
    # Latent sides are the pixel profile / 8: 256, 1024 and 1536 px.
    assert trt["trt_profile_min_shapes"].startswith("sample:1x4x32x32,timestep:1,")
    assert "sample:2x4x128x128" in trt["trt_profile_opt_shapes"]
    assert "sample:8x4x192x192" in trt["trt_profile_max_shapes"]
    assert "time_ids:8x6" in trt["trt_profile_max_shapes"]
    decoder = _config(repo / "sdxl_vae_decoder" / "config.pbtxt")
    assert decoder.max_batch_size == 2
    decoder_trt = dict(
        decoder.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters
    )
    assert decoder_trt["trt_profile_max_shapes"] == "latent:2x4x192x192"
    encoder_trt = dict(
        _config(repo / "sdxl_vae_encoder" / "config.pbtxt")
        .optimization.execution_accelerators.gpu_execution_accelerator[0]
        .parameters
    )
    assert encoder_trt["trt_profile_opt_shapes"] == "image:1x3x1024x1024"

    # A built plan switches that component to the TensorRT backend.
    (unet_dir / "1" / "model.plan").write_bytes(b"plan")
    render_sdxl_configs(repo, "gpu", names=["sdxl"])
    unet = _config(unet_dir / "config.pbtxt")
    assert unet.platform == "tensorrt_plan" and not unet.HasField("optimization")

    render_sdxl_configs(repo, "cpu")
    unet = _config(unet_dir / "config.pbtxt")
    assert unet.backend == "python" and unet.max_batch_size == 0
    assert filecmp.cmp(unet_dir / "1" / "model.py", RUNNER, shallow=False)


def test_render_refuses_unknown_target(sdxl_repo: tuple[Path, dict[str, Any]]) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="target"):
        render_sdxl_configs(sdxl_repo[0], "tpu")


def test_export_refuses_what_is_not_sdxl(tmp_path: Path, sdxl_checkpoints: dict[str, Path]) -> None:  # noqa: F811
    with pytest.raises(ExportError, match="not a diffusers-format SDXL folder"):
        export_sdxl(tmp_path, tmp_path / "repo")
    folder = tmp_path / "sd15ish"
    shutil.copytree(sdxl_checkpoints["base"], folder)
    config_path = folder / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["addition_embed_type"] = None
    config_path.write_text(json.dumps(config))
    with pytest.raises(ExportError, match="not an SDXL UNet"):
        export_sdxl(folder, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_build_trt_needs_a_gpu(
    tmp_path: Path,
    sdxl_repo: tuple[Path, dict[str, Any]],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    if gpu_problem() is None:
        pytest.skip("this host can build TensorRT plans")
    repo = _copy_pipeline(sdxl_repo[0], "sdxl", tmp_path)
    assert sdxl_cli(["build-trt", "--repo", str(repo)]) == 2
    assert "build-trt needs a GPU host with TensorRT" in capsys.readouterr().err
    assert not list(repo.glob("*/1/model.plan"))
