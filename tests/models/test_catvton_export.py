"""CatVTON's export and the served pipeline's building blocks, without Triton: the
ONNX components against torch, the attention merge, the numpy DDIM against diffusers'
DDIMScheduler, the pipeline code over onnxruntime against the torch reference, the
gpu configs and the `lightbox models export catvton` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from services.models.catvton.export import ExportError, load_catvton, read_attention
from services.models.catvton.reference import CatvtonReference, ort_pipeline, pipeline_module
from tests.models.catvton_fixtures import (  # noqa: F401  (fixtures)
    WORK_SIZE,
    catvton_folder,
    catvton_repo,
    tryon_case,
)

cp = pipeline_module()
import ddim  # noqa: E402  (imported by pipeline_module's path)


def test_components_match_torch(catvton_repo: tuple[Path, Any]) -> None:  # noqa: F811
    repo, report = catvton_repo
    assert report.ok and report.attention_blocks == 4
    assert [c.model for c in report.components] == [
        "catvton_unet",
        "catvton_vae_encoder",
        "catvton_vae_decoder",
    ]
    for component in report.components:
        # Checked on batch 2 at another latent size than the traced one.
        assert component.max_abs_diff < 1e-4, component
        assert (repo / component.model / "config.pbtxt").exists()
        assert (repo / component.model / "1" / "model.py").exists()  # cpu runner
    meta = json.loads((repo / "catvton" / "checkpoint" / "pipeline.json").read_text())
    assert meta["components"]["unet"] == "catvton_unet" and meta["concat"] == "height"


def test_attention_weights_are_merged(catvton_folder: Path) -> None:  # noqa: F811
    from diffusers import UNet2DConditionModel

    loaded = load_catvton(catvton_folder)
    path = catvton_folder / "catvton" / "mix-48k-1024" / "attention" / "model.safetensors"
    blocks = read_attention(path)
    attn1 = [m for n, m in loaded.unet.named_modules() if n.endswith("attn1")]
    for module, parts in zip(attn1, blocks, strict=True):
        torch.testing.assert_close(module.to_q.weight, parts["to_q.weight"], rtol=0, atol=0)
        torch.testing.assert_close(module.to_out[0].bias, parts["to_out.0.bias"], rtol=0, atol=0)
    plain = UNet2DConditionModel.from_pretrained(catvton_folder / "unet")
    assert not torch.equal(
        plain.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight,
        attn1[0].to_q.weight,
    )


def test_attention_file_must_fit_the_unet(catvton_folder: Path, tmp_path: Path) -> None:  # noqa: F811
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "ck"
    shutil.copytree(catvton_folder, folder)
    path = folder / "catvton" / "mix-48k-1024" / "attention" / "model.safetensors"
    state = load_file(str(path))
    save_file({k: v for k, v in state.items() if not k.startswith("24.")}, str(path))
    with pytest.raises(ExportError, match="3 blocks; the UNet has 4"):
        load_catvton(folder)
    with pytest.raises(ExportError, match="neither"):
        load_catvton(folder, "vitonhd")


CONFIGS = {
    "sd15_inpaint": {},
    "trailing": {"timestep_spacing": "trailing"},
    "linspace_clip": {"timestep_spacing": "linspace", "clip_sample": True},
    "v_prediction": {"prediction_type": "v_prediction", "set_alpha_to_one": True},
}


@pytest.mark.parametrize("variant", sorted(CONFIGS))
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_matches_diffusers(variant: str, eta: float) -> None:
    from diffusers import DDIMScheduler

    from services.models.catvton.tiny import SD15_INPAINT_SCHEDULER

    raw = {**SD15_INPAINT_SCHEDULER, **CONFIGS[variant]}
    reference = DDIMScheduler.from_config(raw)
    steps = 7
    reference.set_timesteps(steps)
    ours = ddim.Ddim(ddim.parse_ddim_config(raw), steps)
    np.testing.assert_array_equal(ours.timesteps, reference.timesteps.numpy())
    generator = torch.Generator().manual_seed(5)
    rng = cp.TorchCpuGenerator(5)
    sample = np.random.default_rng(0).standard_normal((1, 4, 8, 6)).astype(np.float32)
    expected = torch.from_numpy(sample)
    for index, t in enumerate(reference.timesteps):
        output = np.random.default_rng(index + 1).standard_normal(sample.shape).astype(np.float32)
        expected = reference.step(
            torch.from_numpy(output), t, expected, eta=eta, generator=generator
        ).prev_sample
        sample = ours.step(output, index, sample, eta, rng.randn)
        np.testing.assert_allclose(sample, expected.numpy(), rtol=0, atol=2e-5)


def test_ddim_refuses_unsupported_configs() -> None:
    with pytest.raises(ddim.DdimConfigError, match="thresholding"):
        ddim.parse_ddim_config({"thresholding": True})
    with pytest.raises(ddim.DdimConfigError, match="squaredcos_cap_v2"):
        ddim.parse_ddim_config({"beta_schedule": "squaredcos_cap_v2"})


def test_fitting_keeps_the_aspect_and_comes_back() -> None:
    image = np.random.default_rng(1).integers(0, 256, (100, 70, 3), dtype=np.uint8)
    fitted, box = cp.fit_image(image, 64, 128)
    assert fitted.shape == (128, 64, 3) and (box.width, box.height) == (64, 91)
    assert (fitted[: box.y] == 255).all() and (fitted[box.y + box.height :] == 255).all()
    mask = np.zeros((100, 70), np.uint8)
    mask[40:60, 20:50] = 200
    fitted_mask = cp.fit_mask(mask, 64, 128)
    assert set(np.unique(fitted_mask)) == {0, 255} and fitted_mask[: box.y].max() == 0
    back = cp.unfit(fitted.astype(np.float32) / 255, box, 70, 100)
    assert back.shape == (100, 70, 3)


def test_pipeline_code_matches_reference_in_process(
    catvton_repo: tuple[Path, Any],  # noqa: F811
    catvton_folder: Path,  # noqa: F811
) -> None:
    repo, _ = catvton_repo
    pipe = ort_pipeline(repo)
    person, garment, mask = tryon_case()
    settled = cp.Settled(person, garment, mask, 2, 2.5, 77)
    got = pipe(settled)
    fitted = pipe.prepare(settled)[:3]
    expected = CatvtonReference(catvton_folder)(*fitted, steps=2, guidance_scale=2.5, seed=77)
    assert got.work_image.shape == (WORK_SIZE[1], WORK_SIZE[0], 3)
    assert float(np.abs(got.work_image - expected).max()) < 1e-4
    assert got.image.shape == person.shape


def test_gpu_configs(catvton_repo: tuple[Path, Any], tmp_path: Path) -> None:  # noqa: F811
    from services.models.catvton.configs import render_catvton_configs

    repo, _ = catvton_repo
    copy = tmp_path / "repo"
    for name in ("catvton", "catvton_unet", "catvton_vae_encoder", "catvton_vae_decoder"):
        shutil.copytree(repo / name, copy / name)
    written = render_catvton_configs(copy, "gpu")
    assert len(written) == 3
    unet = (copy / "catvton_unet" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in unet and "max_batch_size: 4" in unet
    # 64 x 128 working size: latents 8 wide, person and garment 2 x 16 tall.
    assert "sample:1x9x32x8,timestep:1" in unet and "sample:4x9x32x8,timestep:4" in unet
    encoder = (copy / "catvton_vae_encoder" / "config.pbtxt").read_text()
    assert "image:2x3x128x64" in encoder
    assert not (copy / "catvton_unet" / "1" / "model.py").exists()


def test_cli_export(catvton_folder: Path, tmp_path: Path, capsys: Any) -> None:  # noqa: F811
    from services.models.cli import main

    assert main(["export", "catvton", str(catvton_folder), "--repo", str(tmp_path)]) == 0
    assert "4 attention blocks merged" in capsys.readouterr().out
    assert (tmp_path / "catvton_unet" / "1" / "model.onnx").exists()
    assert (tmp_path / "catvton" / "checkpoint" / "pipeline.json").exists()
    assert main(["export", "catvton", str(tmp_path / "nothing"), "--repo", str(tmp_path)]) == 2
