"""WAN 2.1 export and the pipeline model's building blocks, without Triton: each ONNX
component against torch at shapes other than the traced one, the numpy UniPC against
diffusers' scheduler, the `tokenizers` prompt encoding against transformers', the
rendered GPU configs, and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from services.models.wan import export as wan_export_module
from services.models.wan.configs import render_wan_configs
from services.models.wan.reference import pipeline_module
from tests.models.wan_fixtures import wan_export  # noqa: F401  (fixture)

wp = pipeline_module()
import unipc  # noqa: E402  (beside wan_pipeline, on the path pipeline_module set)


def test_export_report_and_layout(wan_export: tuple[Path, Path, Any]) -> None:  # noqa: F811
    repo, _, report = wan_export
    assert report.ok
    by_component = {c.component: c for c in report.components}
    assert set(by_component) == {"text_encoder", "transformer", "vae_decoder"}
    for component in ("text_encoder", "transformer"):
        row = by_component[component]
        assert row.runtime == "onnx" and row.max_abs_diff is not None
        assert row.max_abs_diff <= 1e-4, row
    assert by_component["vae_decoder"].runtime == "torch (python backend)"
    assert (repo / "wan_t2v_vae_decoder" / "1" / "vae" / "config.json").exists()
    meta = json.loads((repo / "wan_t2v" / "checkpoint" / "pipeline.json").read_text())
    assert meta["components"] == {
        "text_encoder": "wan_t2v_text_encoder",
        "transformer": "wan_t2v_transformer",
        "vae_decoder": "wan_t2v_vae_decoder",
    }
    assert (meta["vae_scale_factor_spatial"], meta["vae_scale_factor_temporal"]) == (8, 4)


@pytest.mark.parametrize(
    "component, shape",
    [
        # (batch, latent frames, latent height, latent width, text tokens)
        ("transformer", (1, 5, 10, 4, 512)),
        ("transformer", (2, 1, 2, 2, 7)),
        ("text_encoder", (2, 1, 1, 1, 512)),
    ],
)
def test_onnx_components_follow_any_shape(
    wan_export: tuple[Path, Path, Any],  # noqa: F811
    component: str,
    shape: tuple[int, ...],
) -> None:
    """The traced graphs (rotary embedding slices included) hold at frame counts,
    sizes and text lengths never traced."""
    repo, folder, _ = wan_export
    parts = wan_export_module.load_components(folder)
    module = wan_export_module._wrappers(parts)[component]
    batch, frames, lat_h, lat_w, tokens = shape
    args = wan_export_module.sample_inputs(
        component, parts, batch, frames, lat_h, lat_w, tokens, seed=5
    )
    onnx_path = repo / f"wan_t2v_{component}" / "1" / "model.onnx"
    diff, scale = wan_export_module.validate(module, onnx_path, args, component)
    assert scale > 0.1 and diff <= 1e-4 * max(1.0, scale)


@pytest.mark.parametrize(
    "steps, order, shift", [(1, 2, 3.0), (2, 2, 3.0), (7, 2, 5.0), (6, 3, 3.0)]
)
def test_unipc_matches_diffusers(steps: int, order: int, shift: float) -> None:
    from diffusers import UniPCMultistepScheduler

    from services.models.wan.tiny import SCHEDULER_CONFIG

    config = dict(SCHEDULER_CONFIG, solver_order=order, flow_shift=shift)
    ref = UniPCMultistepScheduler.from_config(config)
    ref.set_timesteps(steps)
    ours = unipc.UniPC(unipc.parse_config(config), steps)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    rng = np.random.default_rng(steps)
    x = rng.standard_normal((1, 4, 2, 3, 5)).astype(np.float32)
    x_ref = torch.from_numpy(x.copy())
    for t in ref.timesteps:
        flow = rng.standard_normal(x.shape).astype(np.float32)
        x_ref = ref.step(torch.from_numpy(flow), t, x_ref).prev_sample
        x = ours.step(flow, x)
        assert float(np.abs(x - x_ref.numpy()).max()) <= 1e-5


@pytest.mark.parametrize(
    "change, message",
    [
        ({"prediction_type": "epsilon"}, "prediction_type"),
        ({"use_karras_sigmas": True}, "use_karras_sigmas"),
        ({"_class_name": "FlowMatchEulerDiscreteScheduler"}, "not supported"),
    ],
)
def test_unipc_refuses_what_it_does_not_reproduce(change: dict[str, Any], message: str) -> None:
    from services.models.wan.tiny import SCHEDULER_CONFIG

    with pytest.raises(ValueError, match=message):
        unipc.parse_config({**SCHEDULER_CONFIG, **change})


def test_tokens_match_transformers(wan_export: tuple[Path, Path, Any]) -> None:  # noqa: F811
    from services.models.wan.tiny import load_tokenizer

    _, folder, _ = wan_export
    ours = wp.Tokenizer(folder / "tokenizer" / "tokenizer.json", 512)
    theirs = load_tokenizer(folder / "tokenizer")
    texts = [
        wp.clean_prompt(t)
        for t in (
            "a cat running on the beach",
            "",
            "  A  Dog\tin\n the forest &amp; rain",
            "x" * 900,
        )
    ]
    ids, mask = ours(texts)
    expected = theirs(
        texts, padding="max_length", max_length=512, truncation=True, add_special_tokens=True
    )
    np.testing.assert_array_equal(ids, np.array(expected["input_ids"]))
    np.testing.assert_array_equal(mask, np.array(expected["attention_mask"]))
    assert texts[2] == "A Dog in the forest & rain"


def test_gpu_configs(wan_export: tuple[Path, Path, Any], tmp_path: Path) -> None:  # noqa: F811
    repo, _, _ = wan_export
    copy = tmp_path / "repo"
    for name in ("wan_t2v", "wan_t2v_text_encoder", "wan_t2v_transformer", "wan_t2v_vae_decoder"):
        shutil.copytree(repo / name, copy / name)
    render_wan_configs(copy, "gpu")
    transformer = (copy / "wan_t2v_transformer" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in transformer and 'name: "tensorrt"' in transformer
    assert "sample:2x16x41x160x160" in transformer  # 10 s at 720p, both guidance branches
    assert "encoder_hidden_states:2x512x32" in transformer
    assert not (copy / "wan_t2v_transformer" / "1" / "model.py").exists()
    encoder = (copy / "wan_t2v_text_encoder" / "config.pbtxt").read_text()
    assert "onnxruntime_onnx" in encoder and "tensorrt" not in encoder
    assert "KIND_GPU" in (copy / "wan_t2v_vae_decoder" / "config.pbtxt").read_text()
    render_wan_configs(copy, "cpu")
    assert (copy / "wan_t2v_transformer" / "1" / "model.py").exists()


def test_export_refuses_other_folders(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    with pytest.raises(wan_export_module.ExportError, match="not a diffusers-format WAN folder"):
        wan_export_module.export_wan(tmp_path, tmp_path / "repo")


def test_models_cli_routes_wan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from services.models.cli import main

    assert main(["export", "wan", str(tmp_path / "missing"), "--repo", str(tmp_path)]) == 2
    assert "not a diffusers-format WAN folder" in capsys.readouterr().err
    assert main(["export", "wan", str(tmp_path), "--fp16"]) == 2
    assert "float32 ONNX" in capsys.readouterr().err
