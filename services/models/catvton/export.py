"""Export CatVTON (an SD-1.5 inpainting UNet carrying CatVTON's self-attention weights,
and the sd-vae-ft-mse VAE) into the Triton model repository as three ONNX models plus
the files the pipeline model reads.

The folder it reads (docs/catvton.md says where each part comes from):

    DIR/unet/config.json + diffusion_pytorch_model.safetensors (or .bin)
                     the UNet of an SD-1.5 inpainting checkpoint
                     (runwayml/stable-diffusion-inpainting or a mirror of it)
    DIR/scheduler/scheduler_config.json   from the same checkpoint
    DIR/vae/config.json + diffusion_pytorch_model.safetensors
                     stabilityai/sd-vae-ft-mse (what CatVTON decodes with)
    DIR/catvton/<version>/attention/model.safetensors (or pytorch_model.bin)
                     from zhengchong/CatVTON; <version> is mix-48k-1024 (default),
                     vitonhd-16k-512 or dresscode-16k-512

What it writes:

    <repo>/<name>_unet/1/model.onnx         sample [B, 9, 2h, w], timestep f32 [B] ->
                                              out_sample [B, 4, 2h, w]
    <repo>/<name>_vae_encoder/1/model.onnx  image [B, 3, H, W] in [-1, 1] ->
                                              latent [B, 4, H/8, W/8] (posterior mean)
    <repo>/<name>_vae_decoder/1/model.onnx  latent [B, 4, h, w] (unscaled) ->
                                              image [B, 3, 8h, 8w] in about [-1, 1]
    <repo>/<name>/checkpoint/               pipeline.json, scheduler/, export_report.json

Merging the attention weights: CatVTON trains only the self-attention (`attn1`) of
every transformer block. Its file is the state dict of a ModuleList built from every
module whose name contains "attn1", in `named_modules()` order; each block contributes
eight entries (the Attention, to_q, to_k, to_v, to_out, to_out.0, to_out.1, its
processor) and only the Attention's own tensors are stored: `{i}.to_q.weight`,
`{i}.to_k.weight`, `{i}.to_v.weight`, `{i}.to_out.0.weight`, `{i}.to_out.0.bias`. The
export sorts those groups by index and copies the k-th into the k-th `attn1` of the
UNet, refusing a file whose block count, keys or shapes do not match. Cross-attention
(`attn2`) is skipped as CatVTON skips it: its processor returns its input, so each
block adds its normalised hidden states back (`norm2(x) + x`), exactly what the
published weights were trained with; there is no text encoder.

The VAE encoder returns the posterior's mean: CatVTON samples it from torch's global
generator, which its seed does not control, so a deterministic choice is the honest
one (the SD VAE's posterior deviation is tiny). Every component is checked against
torch on inputs of another shape than the traced one; the report carries each max abs
diff.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.common.triton import MODEL_REPOSITORY
from services.models.onnx_export import EXTERNAL_DATA_FILE, trace_to_onnx

COMPONENTS = ("unet", "vae_encoder", "vae_decoder")
ONNX_FILE = "model.onnx"
OPSET = 17
TOLERANCE = 1e-3
ATTENTION_VERSIONS = {
    "mix": "mix-48k-1024",
    "vitonhd": "vitonhd-16k-512",
    "dresscode": "dresscode-16k-512",
}
_ATTENTION_FILES = ("model.safetensors", "pytorch_model.bin")
_ATTENTION_KEY = re.compile(
    r"(\d+)\.(to_q\.weight|to_k\.weight|to_v\.weight|to_out\.0\.weight|to_out\.0\.bias)"
)
_ATTENTION_PARTS = {"to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight", "to_out.0.bias"}
_IO = {
    "unet": (["sample", "timestep"], ["out_sample"]),
    "vae_encoder": (["image"], ["latent"]),
    "vae_decoder": (["latent"], ["image"]),
}
_DYNAMIC = {
    "sample": {0: "batch", 2: "height", 3: "width"},
    "timestep": {0: "batch"},
    "out_sample": {0: "batch", 2: "height", 3: "width"},
    "image": {0: "batch", 2: "height", 3: "width"},
    "latent": {0: "batch", 2: "height", 3: "width"},
}


class ExportError(RuntimeError):
    """The folder cannot be exported (missing parts, wrong architecture, weights that
    do not fit the UNet)."""


@dataclass
class ComponentReport:
    component: str
    model: str
    path: str
    bytes: int
    external_data: bool
    max_abs_diff: float
    reference_scale: float
    tolerance: float
    passed: bool
    seconds: float


@dataclass
class ExportReport:
    name: str
    source: str
    repository: str
    attention_version: str
    attention_blocks: int
    target: str | None
    components: list[ComponentReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.components)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out

    def table(self) -> str:
        lines = [f"{'component':<12} {'model':<22} {'MB':>9} {'max|diff|':>11}  ok"]
        for c in self.components:
            lines.append(
                f"{c.component:<12} {c.model:<22} {c.bytes / 1e6:>9.1f} "
                f"{c.max_abs_diff:>11.3e}  {'yes' if c.passed else 'NO'}"
            )
        return "\n".join(lines)


class SkipCrossAttention:
    """CatVTON's cross-attention: none. The processor hands back what it was given,
    so the block's residual adds the normalised hidden states (see the module
    docstring); the encoder hidden states are never read."""

    def __call__(
        self,
        attn: Any,
        hidden_states: Any,
        encoder_hidden_states: Any = None,
        attention_mask: Any = None,
        temb: Any = None,
        **kwargs: Any,
    ) -> Any:
        return hidden_states


def skip_cross_attention(unet: Any) -> None:
    processors = {
        name: SkipCrossAttention() if name.endswith("attn2.processor") else processor
        for name, processor in unet.attn_processors.items()
    }
    unet.set_attn_processor(processors)


def attention_file(folder: Path, version: str) -> Path:
    if version not in ATTENTION_VERSIONS:
        raise ExportError(f"attention version must be one of {sorted(ATTENTION_VERSIONS)}")
    base = folder / "catvton" / ATTENTION_VERSIONS[version] / "attention"
    for name in _ATTENTION_FILES:
        if (base / name).exists():
            return base / name
    raise ExportError(
        f"{base} holds neither {' nor '.join(_ATTENTION_FILES)}: put the zhengchong/CatVTON "
        f"download in {folder / 'catvton'}"
    )


def read_attention(path: Path) -> list[dict[str, Any]]:
    """CatVTON's attention state, one {part: tensor} per attn1 block, in file order."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    groups: dict[int, dict[str, Any]] = {}
    for key, value in state.items():
        found = _ATTENTION_KEY.fullmatch(key)
        if found:
            groups.setdefault(int(found.group(1)), {})[found.group(2)] = value
    if not groups:
        raise ExportError(f"{path} holds no CatVTON attention weights (keys like 0.to_q.weight)")
    for index, parts in groups.items():
        if set(parts) != _ATTENTION_PARTS:
            raise ExportError(
                f"{path}: block {index} has {sorted(parts)}, expected {sorted(_ATTENTION_PARTS)}"
            )
    return [groups[i] for i in sorted(groups)]


def merge_attention(unet: Any, blocks: list[dict[str, Any]]) -> int:
    """Copy CatVTON's weights into the UNet's self-attention; returns the block count."""
    import torch

    targets = [m for n, m in unet.named_modules() if n.endswith("attn1")]
    if len(targets) != len(blocks):
        raise ExportError(
            f"the attention file has {len(blocks)} blocks; the UNet has {len(targets)} "
            "self-attention layers (is it an SD-1.5 UNet?)"
        )
    for k, (attn, parts) in enumerate(zip(targets, blocks, strict=True)):
        own = attn.state_dict()
        for part, value in parts.items():
            if tuple(own[part].shape) != tuple(value.shape):
                raise ExportError(
                    f"attention block {k} {part}: file {list(value.shape)}, "
                    f"UNet {list(own[part].shape)}"
                )
        attn.load_state_dict({p: v.to(torch.float32) for p, v in parts.items()}, strict=True)
    return len(targets)


@dataclass
class Loaded:
    unet: Any
    vae: Any
    attention_blocks: int
    attention_path: Path


def load_catvton(folder: Path, version: str = "mix") -> Loaded:
    """The UNet with CatVTON's attention merged and cross-attention skipped, and the
    VAE, in float32 on the CPU."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = Path(folder)
    for part in ("unet", "vae", "scheduler"):
        if not (folder / part).is_dir():
            raise ExportError(f"{folder} has no {part}/ (layout: docs/catvton.md)")
    path = attention_file(folder, version)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32)
    config = unet.config
    if config.in_channels != 9 or config.out_channels != 4:
        raise ExportError(
            f"the UNet has {config.in_channels} -> {config.out_channels} channels; CatVTON "
            "needs an SD-1.5 inpainting UNet (9 -> 4)"
        )
    if config.get("addition_embed_type") is not None:
        raise ExportError("the UNet has extra conditioning (an SDXL UNet?); CatVTON is SD-1.5")
    if vae.config.latent_channels != config.out_channels:
        raise ExportError("the VAE's latent channels differ from the UNet's")
    blocks = merge_attention(unet, read_attention(path))
    skip_cross_attention(unet)
    return Loaded(unet.eval(), vae.eval(), blocks, path)


def _wrappers(loaded: Loaded) -> dict[str, Any]:
    import torch

    class Unet(torch.nn.Module):
        def __init__(self, unet: Any) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> Any:
            return self.unet(sample, timestep, encoder_hidden_states=None, return_dict=False)[0]

    class VaeEncoder(torch.nn.Module):
        def __init__(self, vae: Any) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, image: torch.Tensor) -> Any:
            return self.vae.encode(image).latent_dist.mean

    class VaeDecoder(torch.nn.Module):
        def __init__(self, vae: Any) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, latent: torch.Tensor) -> Any:
            return self.vae.decode(latent, return_dict=False)[0]

    return {
        "unet": Unet(loaded.unet).eval(),
        "vae_encoder": VaeEncoder(loaded.vae).eval(),
        "vae_decoder": VaeDecoder(loaded.vae).eval(),
    }


def _sample_inputs(component: str, lat_h: int, lat_w: int, batch: int, seed: int) -> tuple:
    """Random inputs; the UNet's latent height is the person and garment stacked."""
    import torch

    g = torch.Generator().manual_seed(seed)
    if component == "unet":
        return (
            torch.randn(batch, 9, 2 * lat_h, lat_w, generator=g),
            torch.full((batch,), 481.0 + seed, dtype=torch.float32),
        )
    if component == "vae_encoder":
        return (torch.rand(batch, 3, lat_h * 8, lat_w * 8, generator=g) * 2 - 1,)
    return (torch.randn(batch, 4, lat_h, lat_w, generator=g),)


def _export_one(module: Any, args: tuple, component: str, dest: Path) -> bool:
    inputs, outputs = _IO[component]
    return trace_to_onnx(
        module,
        args,
        dest,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes={n: _DYNAMIC[n] for n in inputs + outputs},
        opset=OPSET,
    )


def _validate(module: Any, path: Path, args: tuple, component: str) -> tuple[float, float]:
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = _IO[component][0]
    got = session.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})[0]
    with torch.no_grad():
        ref = module(*args).numpy()
    return float(np.abs(got - ref).max()), float(np.abs(ref).max())


def export_catvton(
    folder: Path,
    out_repo: Path = MODEL_REPOSITORY,
    *,
    version: str = "mix",
    name: str = "catvton",
    target: str | None = "cpu",
) -> ExportReport:
    """Export `folder` (layout in the module docstring) into `out_repo`, validate each
    component against torch, write `<name>/checkpoint/` and render the component
    configs for `target` (None leaves them alone). ExportError: nothing usable was
    written. A component that fails validation is still written; `report.ok` says so."""
    from services.models.catvton.configs import render_catvton_configs

    started = time.monotonic()
    folder, out_repo = Path(folder), Path(out_repo)
    loaded = load_catvton(folder, version)
    report = ExportReport(
        name=name,
        source=str(folder),
        repository=str(out_repo),
        attention_version=version,
        attention_blocks=loaded.attention_blocks,
        target=target,
    )
    modules = _wrappers(loaded)
    for component in COMPONENTS:
        t0 = time.monotonic()
        model_name = f"{name}_{component}"
        dest = out_repo / model_name / "1" / ONNX_FILE
        # Odd latent sizes make diffusers' UNet pass explicit upsample sizes, which the
        # trace then keeps for every size; even ones would bake in exact doubling.
        external = _export_one(
            modules[component], _sample_inputs(component, 9, 7, 1, 1), component, dest
        )
        diff, scale = _validate(
            modules[component], dest, _sample_inputs(component, 8, 6, 2, 2), component
        )
        tolerance = TOLERANCE * max(1.0, scale)
        size = dest.stat().st_size
        if external:
            size += dest.with_name(EXTERNAL_DATA_FILE).stat().st_size
        report.components.append(
            ComponentReport(
                component=component,
                model=model_name,
                path=str(dest),
                bytes=size,
                external_data=external,
                max_abs_diff=diff,
                reference_scale=scale,
                tolerance=tolerance,
                passed=bool(diff <= tolerance),
                seconds=round(time.monotonic() - t0, 2),
            )
        )
    checkpoint = out_repo / name / "checkpoint"
    _write_checkpoint(folder, checkpoint, loaded, name, version)
    if target is not None:
        render_catvton_configs(out_repo, target, names=[name])
    report.seconds = round(time.monotonic() - started, 2)
    (checkpoint / "export_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def _write_checkpoint(folder: Path, dest: Path, loaded: Loaded, name: str, version: str) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(folder / "scheduler", dest / "scheduler")
    vae = loaded.vae.config
    meta = {
        "name": name,
        "source": str(folder.resolve()),
        "attention": str(loaded.attention_path.resolve()),
        "attention_version": version,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "unet_in_channels": int(loaded.unet.config.in_channels),
        "latent_channels": int(vae.latent_channels),
        "vae_scale_factor": 2 ** (len(vae.block_out_channels) - 1),
        "vae_scaling_factor": float(vae.scaling_factor),
        "concat": "height",
        "components": {c: f"{name}_{c}" for c in COMPONENTS},
    }
    (dest / "pipeline.json").write_text(json.dumps(meta, indent=2))
