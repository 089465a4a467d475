"""Export a diffusers-format SDXL checkpoint (base, Turbo/Lightning-style, or
inpainting) into the Triton model repository as five ONNX models plus the files the
pipeline model reads.

    <repo>/<name>_text_encoder/1/model.onnx     input_ids int32 [B, 77] ->
                                                  hidden_states [B, 77, D1] (penultimate layer)
    <repo>/<name>_text_encoder_2/1/model.onnx   input_ids int32 [B, 77] ->
                                                  hidden_states [B, 77, D2], text_embeds [B, P]
    <repo>/<name>_unet/1/model.onnx             sample [B, 4|9, h, w], timestep f32 [B],
                                                  encoder_hidden_states [B, 77, D1 + D2],
                                                  text_embeds [B, P], time_ids [B, 6] ->
                                                  out_sample [B, 4, h, w]
    <repo>/<name>_vae_encoder/1/model.onnx      image [B, 3, H, W] in [-1, 1] ->
                                                  latent_mean, latent_std [B, 4, H/8, W/8]
    <repo>/<name>_vae_decoder/1/model.onnx      latent [B, 4, h, w] (unscaled) ->
                                                  image [B, 3, 8h, 8w] in about [-1, 1]
    <repo>/<name>/checkpoint/                   pipeline.json, scheduler/, tokenizer/,
                                                  tokenizer_2/

`name` is "sdxl" for a 4-channel UNet and "sdxl_inpaint" for a 9-channel one unless
given. Batch, height and width are dynamic; the 77-token sequence is fixed. A model
over 2 GB keeps its weights in `model.onnx.data` beside it (ONNX's protobuf limit).

With fp16=True the text encoders' and the UNet's weights and arithmetic become
float16 (onnxruntime's float16 converter; inputs and outputs stay float32 so the
pipeline model and the configs do not change; integer timesteps stay exact in
float16); the VAE stays float32 when the checkpoint says force_upcast (SDXL's VAE
overflows in float16).
Every component is checked against torch on fresh random inputs of another shape
than the traced one, and the report carries each max abs diff.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.common.triton import MODEL_REPOSITORY
from services.models.onnx_export import EXTERNAL_DATA_FILE, trace_to_onnx

COMPONENTS = ("text_encoder", "text_encoder_2", "unet", "vae_encoder", "vae_decoder")
ONNX_FILE = "model.onnx"
# Protobuf cannot serialise a message of 2 GiB or more; stay clear of it.
EXTERNAL_DATA_THRESHOLD = 2_000_000_000
OPSET = 17
# Validation: max abs diff against torch, relative to the output's own scale.
TOLERANCE_FP32 = 1e-3
TOLERANCE_FP16 = 5e-2

_ONNX_TO_NUMPY = {1: "float32", 10: "float16", 6: "int32", 7: "int64"}


class ExportError(RuntimeError):
    """The checkpoint cannot be exported (unsupported architecture, missing parts)."""


@dataclass
class ComponentReport:
    component: str
    model: str
    path: str
    bytes: int
    external_data: bool
    dtype: str
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
    fp16: bool
    unet_in_channels: int
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
        lines = [f"{'component':<16} {'model':<28} {'dtype':<8} {'MB':>9} {'max|diff|':>11}  ok"]
        for c in self.components:
            lines.append(
                f"{c.component:<16} {c.model:<28} {c.dtype:<8} {c.bytes / 1e6:>9.1f} "
                f"{c.max_abs_diff:>11.3e}  {'yes' if c.passed else 'NO'}"
            )
        return "\n".join(lines)


def _wrappers(pipe: dict[str, Any]) -> dict[str, Any]:
    """torch modules with the exported signatures (plain tensors in and out)."""
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self, encoder: Any, pooled: bool) -> None:
            super().__init__()
            self.encoder = encoder
            self.pooled = pooled

        def forward(self, input_ids: torch.Tensor) -> Any:
            out = self.encoder(input_ids.long(), output_hidden_states=True)
            # SDXL conditions on the penultimate layer of both encoders.
            hidden = out.hidden_states[-2]
            if self.pooled:
                return hidden, out.text_embeds
            return hidden

    class Unet(torch.nn.Module):
        def __init__(self, unet: Any) -> None:
            super().__init__()
            self.unet = unet

        def forward(
            self,
            sample: torch.Tensor,
            timestep: torch.Tensor,
            encoder_hidden_states: torch.Tensor,
            text_embeds: torch.Tensor,
            time_ids: torch.Tensor,
        ) -> torch.Tensor:
            return self.unet(
                sample,
                timestep,
                encoder_hidden_states=encoder_hidden_states,
                added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids},
                return_dict=False,
            )[0]

    class VaeEncoder(torch.nn.Module):
        def __init__(self, vae: Any) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, image: torch.Tensor) -> Any:
            dist = self.vae.encode(image).latent_dist
            return dist.mean, dist.std

    class VaeDecoder(torch.nn.Module):
        def __init__(self, vae: Any) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, latent: torch.Tensor) -> torch.Tensor:
            return self.vae.decode(latent, return_dict=False)[0]

    return {
        "text_encoder": TextEncoder(pipe["text_encoder"], pooled=False).eval(),
        "text_encoder_2": TextEncoder(pipe["text_encoder_2"], pooled=True).eval(),
        "unet": Unet(pipe["unet"]).eval(),
        "vae_encoder": VaeEncoder(pipe["vae"]).eval(),
        "vae_decoder": VaeDecoder(pipe["vae"]).eval(),
    }


def _load(diffusers_dir: Path) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    for part in (
        "text_encoder",
        "text_encoder_2",
        "unet",
        "vae",
        "scheduler",
        "tokenizer",
        "tokenizer_2",
    ):
        if not (diffusers_dir / part).is_dir():
            raise ExportError(f"{diffusers_dir} has no {part}/: not a diffusers-format SDXL folder")
    f32 = torch.float32
    return {
        "text_encoder": CLIPTextModel.from_pretrained(diffusers_dir / "text_encoder", dtype=f32),
        "text_encoder_2": CLIPTextModelWithProjection.from_pretrained(
            diffusers_dir / "text_encoder_2", dtype=f32
        ),
        "unet": UNet2DConditionModel.from_pretrained(diffusers_dir / "unet", torch_dtype=f32),
        "vae": AutoencoderKL.from_pretrained(diffusers_dir / "vae", torch_dtype=f32),
    }


def _check_architecture(pipe: dict[str, Any]) -> None:
    unet = pipe["unet"].config
    if unet.get("addition_embed_type") != "text_time":
        raise ExportError("the UNet is not an SDXL UNet (addition_embed_type != 'text_time')")
    if unet.get("time_cond_proj_dim") is not None:
        raise ExportError("UNets with a guidance embedding (LCM distillations) are not supported")
    if unet.in_channels not in (4, 9):
        raise ExportError(f"the UNet has {unet.in_channels} input channels; expected 4 or 9")
    d1 = pipe["text_encoder"].config.hidden_size
    d2 = pipe["text_encoder_2"].config.hidden_size
    if unet.cross_attention_dim != d1 + d2:
        raise ExportError(
            f"UNet cross_attention_dim {unet.cross_attention_dim} != "
            f"text encoder widths {d1} + {d2}"
        )


def _sample_inputs(
    component: str, pipe: dict[str, Any], batch: int, lat_h: int, lat_w: int, seed: int
) -> tuple[Any, ...]:
    """Random inputs for one component; text ids are random tokens with the end
    token (the largest id) placed so pooling has a position to pick."""
    import torch

    g = torch.Generator().manual_seed(seed)
    unet = pipe["unet"].config
    vae_scale = 2 ** (len(pipe["vae"].config.block_out_channels) - 1)
    if component in ("text_encoder", "text_encoder_2"):
        cfg = pipe[component].config
        ids = torch.randint(
            1, cfg.vocab_size - 1, (batch, cfg.max_position_embeddings), generator=g
        )
        ids[:, 0] = cfg.vocab_size - 2
        ids[:, 7 + seed % 5] = cfg.vocab_size - 1
        return (ids.to(torch.int32),)
    if component == "unet":
        d = pipe["text_encoder"].config.hidden_size + pipe["text_encoder_2"].config.hidden_size
        p = pipe["text_encoder_2"].config.projection_dim
        seq = pipe["text_encoder"].config.max_position_embeddings
        h, w = lat_h * vae_scale, lat_w * vae_scale
        return (
            torch.randn(batch, unet.in_channels, lat_h, lat_w, generator=g),
            torch.full((batch,), 500.0 + seed, dtype=torch.float32),
            torch.randn(batch, seq, d, generator=g),
            torch.randn(batch, p, generator=g),
            torch.tensor([[h, w, 0, 0, h, w]] * batch, dtype=torch.float32),
        )
    if component == "vae_encoder":
        return (torch.rand(batch, 3, lat_h * vae_scale, lat_w * vae_scale, generator=g) * 2 - 1,)
    latent_channels = pipe["vae"].config.latent_channels
    return (torch.randn(batch, latent_channels, lat_h, lat_w, generator=g),)


_IO = {
    "text_encoder": (["input_ids"], ["hidden_states"]),
    "text_encoder_2": (["input_ids"], ["hidden_states", "text_embeds"]),
    "unet": (
        ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"],
        ["out_sample"],
    ),
    "vae_encoder": (["image"], ["latent_mean", "latent_std"]),
    "vae_decoder": (["latent"], ["image"]),
}
_DYNAMIC = {
    "input_ids": {0: "batch"},
    "hidden_states": {0: "batch"},
    "text_embeds": {0: "batch"},
    "sample": {0: "batch", 2: "height", 3: "width"},
    "timestep": {0: "batch"},
    "encoder_hidden_states": {0: "batch"},
    "time_ids": {0: "batch"},
    "out_sample": {0: "batch", 2: "height", 3: "width"},
    "image": {0: "batch", 2: "height", 3: "width"},
    "latent_mean": {0: "batch", 2: "height", 3: "width"},
    "latent_std": {0: "batch", 2: "height", 3: "width"},
    "latent": {0: "batch", 2: "height", 3: "width"},
}


def _split_consumed_outputs(model: Any) -> None:
    """Give every graph output that other nodes also read its own Identity node.

    The float16 converter casts a kept-float32 graph output in place, which would
    hand the float32 tensor to its internal readers too (the text encoders' penultimate
    layer output feeds the last layer)."""
    import onnx

    graph = model.graph
    consumed = {name for node in graph.node for name in node.input}
    for output in graph.output:
        if output.name not in consumed:
            continue
        inner = f"{output.name}__inner"
        for node in graph.node:
            node.output[:] = [inner if o == output.name else o for o in node.output]
            node.input[:] = [inner if i == output.name else i for i in node.input]
        graph.node.append(onnx.helper.make_node("Identity", [inner], [output.name]))


def _to_fp16(model: Any) -> Any:
    from onnxruntime.transformers import float16

    _split_consumed_outputs(model)
    return float16.convert_float_to_float16(
        model,
        keep_io_types=True,
        # Shape inference cannot run on a proto over 2 GB (the SDXL UNet).
        disable_shape_infer=model.ByteSize() >= EXTERNAL_DATA_THRESHOLD,
    )


def _export_one(module: Any, args: tuple[Any, ...], component: str, dest: Path, fp16: bool) -> bool:
    """torch -> ONNX at `dest` (float16 inside when `fp16`); returns whether the
    weights went to external data."""
    inputs, outputs = _IO[component]
    return trace_to_onnx(
        module,
        args,
        dest,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes={n: _DYNAMIC[n] for n in inputs + outputs},
        opset=OPSET,
        transform=_to_fp16 if fp16 else None,
        external_threshold=EXTERNAL_DATA_THRESHOLD,
    )


def _validate(
    module: Any, onnx_path: Path, args: tuple[Any, ...], component: str
) -> tuple[float, float]:
    """(max abs diff ONNX vs torch float32, max abs reference value) over all outputs."""
    import onnxruntime as ort
    import torch

    inputs, _ = _IO[component]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: value.numpy() for name, value in zip(inputs, args, strict=True)})
    with torch.no_grad():
        ref = module(*args)
    refs = ref if isinstance(ref, tuple) else (ref,)
    diff = max(
        float(np.abs(g.astype(np.float32) - r.numpy()).max())
        for g, r in zip(got, refs, strict=True)
    )
    scale = max(float(np.abs(r.numpy()).max()) for r in refs)
    return diff, scale


def _onnx_input_dtypes(path: Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {i.name: _ONNX_TO_NUMPY[i.type.tensor_type.elem_type] for i in model.graph.input}


def default_name(unet_in_channels: int) -> str:
    return "sdxl_inpaint" if unet_in_channels == 9 else "sdxl"


def export_sdxl(
    diffusers_dir: Path,
    out_repo: Path = MODEL_REPOSITORY,
    fp16: bool = False,
    *,
    name: str | None = None,
    target: str | None = "cpu",
) -> ExportReport:
    """Export `diffusers_dir` into `out_repo` (see the module docstring for the
    layout), validate each component against torch, and render the component configs
    for `target` ("cpu" or "gpu"; None leaves configs alone). Returns the report; an
    ExportError means nothing usable was written. A component that fails validation
    is still written; the report says so (`report.ok`)."""

    from services.models.sdxl.configs import render_sdxl_configs

    started = time.monotonic()
    diffusers_dir = Path(diffusers_dir)
    out_repo = Path(out_repo)
    pipe = _load(diffusers_dir)
    _check_architecture(pipe)
    unet_channels = int(pipe["unet"].config.in_channels)
    name = name or default_name(unet_channels)
    report = ExportReport(
        name=name,
        source=str(diffusers_dir),
        repository=str(out_repo),
        fp16=fp16,
        unet_in_channels=unet_channels,
        target=target,
    )
    force_upcast = bool(pipe["vae"].config.get("force_upcast", True))
    half = {
        "text_encoder": fp16,
        "text_encoder_2": fp16,
        "unet": fp16,
        "vae_encoder": fp16 and not force_upcast,
        "vae_decoder": fp16 and not force_upcast,
    }
    modules = _wrappers(pipe)
    input_dtypes: dict[str, dict[str, str]] = {}
    for component in COMPONENTS:
        t0 = time.monotonic()
        module = modules[component]
        # Odd latent sizes make diffusers' UNet pass explicit upsample sizes, which the
        # trace then keeps for every size; even ones would bake in exact doubling.
        trace_args = _sample_inputs(component, pipe, 1, 9, 7, seed=1)
        model_name = f"{name}_{component}"
        dest = out_repo / model_name / "1" / ONNX_FILE
        external = _export_one(module, trace_args, component, dest, half[component])
        check_args = _sample_inputs(component, pipe, 2, 8, 12, seed=2)
        diff, scale = _validate(module, dest, check_args, component)
        tolerance = (TOLERANCE_FP16 if half[component] else TOLERANCE_FP32) * max(1.0, scale)
        size = dest.stat().st_size
        if external:
            size += dest.with_name(EXTERNAL_DATA_FILE).stat().st_size
        input_dtypes[component] = _onnx_input_dtypes(dest)
        report.components.append(
            ComponentReport(
                component=component,
                model=model_name,
                path=str(dest),
                bytes=size,
                external_data=external,
                dtype="float16" if half[component] else "float32",
                max_abs_diff=diff,
                reference_scale=scale,
                tolerance=tolerance,
                passed=bool(diff <= tolerance),
                seconds=round(time.monotonic() - t0, 2),
            )
        )
    _write_checkpoint(diffusers_dir, out_repo / name / "checkpoint", pipe, name, fp16, input_dtypes)
    if target is not None:
        render_sdxl_configs(out_repo, target, names=[name])
    report.seconds = round(time.monotonic() - started, 2)
    (out_repo / name / "checkpoint" / "export_report.json").write_text(
        json.dumps(report.to_dict(), indent=2)
    )
    return report


def _write_checkpoint(
    diffusers_dir: Path,
    dest: Path,
    pipe: dict[str, Any],
    name: str,
    fp16: bool,
    input_dtypes: dict[str, dict[str, str]],
) -> None:
    """The pipeline model's view of the checkpoint: pipeline.json plus the scheduler
    config and both tokenizers, copied as they are."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for part in ("scheduler", "tokenizer", "tokenizer_2"):
        shutil.copytree(diffusers_dir / part, dest / part)
    index_path = diffusers_dir / "model_index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    vae = pipe["vae"].config
    meta = {
        "name": name,
        "source": str(diffusers_dir.resolve()),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fp16": fp16,
        "unet_in_channels": int(pipe["unet"].config.in_channels),
        "latent_channels": int(vae.latent_channels),
        "vae_scale_factor": 2 ** (len(vae.block_out_channels) - 1),
        "vae_scaling_factor": float(vae.scaling_factor),
        "vae_shift_factor": vae.get("shift_factor"),
        "latents_mean": vae.get("latents_mean"),
        "latents_std": vae.get("latents_std"),
        "force_zeros_for_empty_prompt": bool(index.get("force_zeros_for_empty_prompt", True)),
        "requires_aesthetics_score": bool(index.get("requires_aesthetics_score", False)),
        "components": {c: f"{name}_{c}" for c in COMPONENTS},
        "input_dtypes": input_dtypes,
    }
    (dest / "pipeline.json").write_text(json.dumps(meta, indent=2))
