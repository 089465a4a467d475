"""Tiny random-weight CatVTON checkpoints, laid out like the folder `lightbox models
export catvton DIR` reads (docs/catvton.md):

    DIR/unet/        an SD-1.5 inpainting UNet (9 input channels, cross-attention
                     blocks, SD-1.5's block types) scaled down to two levels
    DIR/scheduler/   the SD-1.5 inpainting repository's scheduler config (a PNDM
                     config, which CatVTON reads as DDIM)
    DIR/vae/         a four-block AutoencoderKL (1/8 latents, like sd-vae-ft-mse)
    DIR/catvton/mix-48k-1024/attention/model.safetensors
                     self-attention weights keyed the way CatVTON's published files
                     are (see export.py), different from the UNet's own

so the export, merge, serving and parity code runs on the same paths as for the real
weights. `write_tiny` exports one into a model repository for stack tests.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from services.common.triton import MODEL_REPOSITORY

# The PNDM scheduler config of runwayml/stable-diffusion-inpainting, as published.
SD15_INPAINT_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}
# CatVTON's attention checkpoints index a ModuleList of every module whose name holds
# "attn1": the Attention itself, to_q, to_k, to_v, to_out, to_out.0, to_out.1 and its
# processor, eight per block; only the Attention's own entries are stored.
CATVTON_STRIDE = 8
TINY_WORK_SIZE = (64, 128)


def tiny_unet(seed: int) -> Any:
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=9,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8,
        cross_attention_dim=32,
        norm_num_groups=8,
    ).eval()


def tiny_vae(seed: int) -> Any:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.18215,
    ).eval()


def catvton_attention_state(unet: Any, seed: int) -> dict[str, Any]:
    """Random self-attention weights for `unet`, keyed like CatVTON's files."""
    import torch

    g = torch.Generator().manual_seed(seed)
    state: dict[str, Any] = {}
    blocks = [m for n, m in unet.named_modules() if n.endswith("attn1")]
    for k, attn in enumerate(blocks):
        base = k * CATVTON_STRIDE
        for key, value in attn.state_dict().items():
            if re.fullmatch(r"to_[qkv]\.weight|to_out\.0\.(weight|bias)", key):
                state[f"{base}.{key}"] = (torch.randn(value.shape, generator=g) * 0.2).contiguous()
    return state


def make_tiny_catvton(out_dir: Path, *, seed: int = 0) -> Path:
    """Write a tiny CatVTON checkpoint folder to `out_dir` and return it."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    unet = tiny_unet(seed)
    unet.save_pretrained(out_dir / "unet")
    tiny_vae(seed + 1).save_pretrained(out_dir / "vae")
    (out_dir / "scheduler").mkdir(exist_ok=True)
    (out_dir / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(SD15_INPAINT_SCHEDULER, indent=2)
    )
    attention = out_dir / "catvton" / "mix-48k-1024" / "attention"
    attention.mkdir(parents=True, exist_ok=True)
    save_file(catvton_attention_state(unet, seed + 2), str(attention / "model.safetensors"))
    return out_dir


def set_work_size(model_dir: Path, width: int, height: int) -> None:
    """Rewrite the pipeline model's working size in its config.pbtxt."""
    config = model_dir / "config.pbtxt"
    text = config.read_text()
    for key, value in (("work_width", width), ("work_height", height)):
        text, n = re.subn(
            rf'(key: "{key}", value: {{ string_value: )"\d+"', rf'\g<1>"{value}"', text
        )
        if n != 1:
            raise ValueError(f"{config} has no {key} parameter")
    config.write_text(text)


def write_tiny(
    repo: Path,
    *,
    work_size: tuple[int, int] = TINY_WORK_SIZE,
    seed: int = 0,
    target: str = "cpu",
    folder: Path | None = None,
) -> Any:
    """Export a tiny random-weight CatVTON into `repo`: the three component models,
    the committed `catvton` pipeline model (copied in when `repo` lacks it) with its
    checkpoint/, working at `work_size` (width, height; small so a CPU serves it in
    seconds). `folder`: a checkpoint made by `make_tiny_catvton` to export (default:
    a fresh one from `seed`). Returns the export report."""
    from services.models.catvton.export import export_catvton

    repo = Path(repo)
    model_dir = repo / "catvton"
    if not (model_dir / "config.pbtxt").exists():
        shutil.copytree(
            MODEL_REPOSITORY / "catvton",
            model_dir,
            ignore=shutil.ignore_patterns("__pycache__", "checkpoint"),
        )
    set_work_size(model_dir, *work_size)
    if folder is not None:
        return export_catvton(folder, repo, target=target)
    with tempfile.TemporaryDirectory(prefix="catvton-tiny-") as tmp:
        folder = make_tiny_catvton(Path(tmp) / "catvton", seed=seed)
        return export_catvton(folder, repo, target=target)
