"""Export a diffusers-format WAN 2.1 text-to-video checkpoint (Wan-AI/Wan2.1-T2V-1.3B-
Diffusers, or the 14B one) into the Triton model repository.

    <repo>/wan_t2v_text_encoder/1/model.onnx   input_ids int64 [B, L], attention_mask
                                                 int64 [B, L] -> hidden_states [B, L, D]
    <repo>/wan_t2v_transformer/1/model.onnx    sample [B, 16, f, h, w], timestep f32 [B],
                                                 encoder_hidden_states [B, L, D] ->
                                                 out_sample [B, 16, f, h, w] (the flow)
    <repo>/wan_t2v_vae_decoder/1/model.py      python backend over torch (diffusers'
                                    + vae/      AutoencoderKLWan): latent [1, 16, f, h, w]
                                                 -> video [1, 3, 4f - 3, 8h, 8w] in [-1, 1]
    <repo>/wan_t2v/checkpoint/                 pipeline.json, scheduler/, tokenizer/

Batch, frames, height, width and the text length are dynamic in both ONNX graphs; the
3D rotary embedding is traced with its slices tied to the input's shape, and each graph
is checked against torch at another batch, frame count and size than the traced one.

The VAE decoder is not ONNX: diffusers decodes one latent frame at a time in a Python
loop that threads a cache of the last two frames through every causal 3D convolution
(and starts the temporal upsamplers differently on the first frame). A trace unrolls
that loop for the traced frame count, so one graph would serve one video length only,
and the TorchScript exporter cannot export its nearest-exact upsampling at all
(opsets 17 to 20, measured). A per-frame graph with explicit caches would move over
2 GB of cache tensors through each BLS call at 480p. So the decoder is diffusers' own
torch code under the python backend, on the GPU where the instance is a GPU one.
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

NAME = "wan_t2v"
ONNX_COMPONENTS = ("text_encoder", "transformer")
COMPONENTS = (*ONNX_COMPONENTS, "vae_decoder")
ONNX_FILE = "model.onnx"
OPSET = 17
TOLERANCE = 1e-3  # max abs diff ONNX vs torch, relative to the output's own scale
# WanPipeline's default prompt length (tokens, `</s>` included).
MAX_SEQUENCE_LENGTH = 512
VAE_RUNNER = Path(__file__).with_name("vae_decoder_model.py")

_IO = {
    "text_encoder": (["input_ids", "attention_mask"], ["hidden_states"]),
    "transformer": (["sample", "timestep", "encoder_hidden_states"], ["out_sample"]),
}
_DYNAMIC = {
    "input_ids": {0: "batch", 1: "tokens"},
    "attention_mask": {0: "batch", 1: "tokens"},
    "hidden_states": {0: "batch", 1: "tokens"},
    "sample": {0: "batch", 2: "frames", 3: "height", 4: "width"},
    "timestep": {0: "batch"},
    "encoder_hidden_states": {0: "batch", 1: "tokens"},
    "out_sample": {0: "batch", 2: "frames", 3: "height", 4: "width"},
}


class ExportError(RuntimeError):
    """The checkpoint cannot be exported (not a WAN T2V folder, missing parts)."""


@dataclass
class ComponentReport:
    component: str
    model: str
    path: str
    bytes: int
    runtime: str  # "onnx" or "torch (python backend)"
    max_abs_diff: float | None
    reference_scale: float | None
    tolerance: float | None
    passed: bool
    seconds: float


@dataclass
class ExportReport:
    name: str
    source: str
    repository: str
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
        lines = [f"{'component':<13} {'model':<22} {'runtime':<22} {'MB':>9} {'max|diff|':>11}  ok"]
        for c in self.components:
            diff = "-" if c.max_abs_diff is None else f"{c.max_abs_diff:.3e}"
            lines.append(
                f"{c.component:<13} {c.model:<22} {c.runtime:<22} {c.bytes / 1e6:>9.1f} "
                f"{diff:>11}  {'yes' if c.passed else 'NO'}"
            )
        return "\n".join(lines)


def load_components(diffusers_dir: Path) -> dict[str, Any]:
    """The torch text encoder and transformer of a diffusers WAN folder, float32."""
    import torch
    from diffusers import WanTransformer3DModel
    from transformers import UMT5EncoderModel

    from services.models.wan.tiny import load_model

    for part in ("text_encoder", "transformer", "vae", "scheduler", "tokenizer"):
        if not (diffusers_dir / part).is_dir():
            raise ExportError(f"{diffusers_dir} has no {part}/: not a diffusers-format WAN folder")
    if not (diffusers_dir / "tokenizer" / "tokenizer.json").exists():
        raise ExportError(
            f"{diffusers_dir / 'tokenizer'} has no tokenizer.json (the fast tokenizer file the "
            "pipeline model reads); save one with transformers' AutoTokenizer.save_pretrained"
        )
    index = diffusers_dir / "model_index.json"
    if index.exists():
        cls = json.loads(index.read_text()).get("_class_name")
        if cls not in (None, "WanPipeline"):
            raise ExportError(f"{diffusers_dir} holds a {cls}, not a text-to-video WanPipeline")
    transformer = load_model(WanTransformer3DModel, diffusers_dir / "transformer")
    cfg = transformer.config
    if cfg.get("image_dim") is not None or cfg.get("added_kv_proj_dim") is not None:
        raise ExportError("image-conditioned WAN transformers (I2V) are not text-to-video")
    return {
        "text_encoder": UMT5EncoderModel.from_pretrained(
            diffusers_dir / "text_encoder", dtype=torch.float32
        ).eval(),
        "transformer": transformer,
    }


class TraceableAttnProcessor:
    """diffusers' WanAttnProcessor (text-to-video path) with the rotary embedding
    written as stack-and-flatten instead of strided in-place writes
    (`out[..., 0::2] = ...`): the tracer records those writes with the traced shape
    fixed, so the graph fails at any other frame count or size. Same arithmetic, same
    interleaving; the check against the untouched torch model proves it."""

    def __call__(
        self,
        attn: Any,
        hidden_states: Any,
        encoder_hidden_states: Any = None,
        attention_mask: Any = None,
        rotary_emb: Any = None,
    ) -> Any:
        import torch
        import torch.nn.functional as F

        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1))
        key = attn.norm_k(attn.to_k(context)).unflatten(2, (attn.heads, -1))
        value = attn.to_v(context).unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            freqs_cos, freqs_sin = rotary_emb

            def rotate(x: torch.Tensor) -> torch.Tensor:
                x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
                cos = freqs_cos[..., 0::2]
                sin = freqs_sin[..., 1::2]
                out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
                return out.flatten(-2).type_as(x)

            query, key = rotate(query), rotate(key)
        out = F.scaled_dot_product_attention(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            attn_mask=attention_mask,
            dropout_p=0.0,
            is_causal=False,
        ).transpose(1, 2)
        out = out.flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


def _wrappers(parts: dict[str, Any]) -> dict[str, Any]:
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.encoder(input_ids, attention_mask).last_hidden_state

    class Transformer(torch.nn.Module):
        def __init__(self, transformer: Any) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
        ) -> torch.Tensor:
            return self.transformer(
                hidden_states=sample,
                timestep=timestep,
                encoder_hidden_states=encoder_hidden_states,
                return_dict=False,
            )[0]

    return {
        "text_encoder": TextEncoder(parts["text_encoder"]).eval(),
        "transformer": Transformer(parts["transformer"]).eval(),
    }


def sample_inputs(
    component: str,
    parts: dict[str, Any],
    batch: int,
    frames: int,
    lat_h: int,
    lat_w: int,
    tokens: int,
    seed: int,
) -> tuple[Any, ...]:
    """Random inputs for one component; text masks end early in some rows, like padded
    prompts."""
    import torch

    g = torch.Generator().manual_seed(seed)
    if component == "text_encoder":
        cfg = parts["text_encoder"].config
        ids = torch.randint(3, cfg.vocab_size, (batch, tokens), generator=g)
        mask = torch.ones(batch, tokens, dtype=torch.int64)
        for row in range(batch):
            length = max(2, tokens - 3 * row - seed % 3)
            ids[row, length - 1] = 1
            ids[row, length:] = 0
            mask[row, length:] = 0
        return ids, mask
    cfg = parts["transformer"].config
    text_dim = parts["text_encoder"].config.d_model
    return (
        torch.randn(batch, cfg.in_channels, frames, lat_h, lat_w, generator=g),
        torch.tensor([999.0 - 137 * i - seed for i in range(batch)], dtype=torch.float32),
        torch.randn(batch, tokens, text_dim, generator=g),
    )


def _register_rms_norm() -> None:
    """An ONNX decomposition of aten::rms_norm (the transformer's q/k norms are
    torch.nn.RMSNorm), which the TorchScript exporter has no symbolic for below opset
    23: x / sqrt(mean(x^2 over the normalised axes) + eps) * weight, in float32."""
    import torch
    from torch.onnx import symbolic_helper

    def rms_norm(g: Any, x: Any, normalized_shape: Any, weight: Any, eps: Any) -> Any:
        dims = symbolic_helper._get_const(normalized_shape, "is", "normalized_shape")
        epsilon = symbolic_helper._maybe_get_const(eps, "f")
        if epsilon is None or symbolic_helper._is_none(eps):
            epsilon = float(torch.finfo(torch.float32).eps)
        axes = list(range(-len(dims), 0))
        two = g.op("Constant", value_t=torch.tensor(2.0, dtype=torch.float32))
        mean = g.op("ReduceMean", g.op("Pow", x, two), axes_i=axes, keepdims_i=1)
        eps_t = g.op("Constant", value_t=torch.tensor(float(epsilon), dtype=torch.float32))
        out = g.op("Div", x, g.op("Sqrt", g.op("Add", mean, eps_t)))
        if weight is not None and not symbolic_helper._is_none(weight):
            out = g.op("Mul", out, weight)
        return out

    torch.onnx.register_custom_op_symbolic("aten::rms_norm", rms_norm, OPSET)


def _export_one(module: Any, args: tuple[Any, ...], component: str, dest: Path) -> bool:
    """torch -> ONNX at `dest`; returns whether the weights went to external data."""

    inputs, outputs = _IO[component]
    _register_rms_norm()
    return trace_to_onnx(
        module,
        args,
        dest,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes={n: _DYNAMIC[n] for n in inputs + outputs},
        opset=OPSET,
    )


def validate(
    module: Any, onnx_path: Path, args: tuple[Any, ...], component: str
) -> tuple[float, float]:
    """(max abs diff ONNX vs torch, max abs reference value)."""
    import onnxruntime as ort
    import torch

    inputs, _ = _IO[component]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: v.numpy() for n, v in zip(inputs, args, strict=True)})[0]
    with torch.no_grad():
        ref = module(*args).numpy()
    return float(np.abs(got - ref).max()), float(np.abs(ref).max())


def export_wan(
    diffusers_dir: Path,
    out_repo: Path = MODEL_REPOSITORY,
    *,
    name: str = NAME,
    target: str | None = "cpu",
) -> ExportReport:
    """Export `diffusers_dir` into `out_repo` (layout in the module docstring), check
    each ONNX graph against torch at another shape, copy the VAE for the torch decoder,
    write the pipeline's checkpoint folder and render the component configs for
    `target` ("cpu" or "gpu"; None leaves configs alone). A component that fails its
    check is still written; the report says so (`report.ok`)."""
    from services.models.wan.configs import render_wan_configs

    started = time.monotonic()
    diffusers_dir = Path(diffusers_dir)
    out_repo = Path(out_repo)
    parts = load_components(diffusers_dir)
    modules = _wrappers(parts)
    report = ExportReport(name, str(diffusers_dir), str(out_repo), target)
    # Traced at one shape (odd sizes, so no size is baked in as "twice another"), checked
    # at another batch, frame count, size and text length.
    trace = {"batch": 1, "frames": 2, "lat_h": 6, "lat_w": 10, "tokens": 16, "seed": 1}
    check = {"batch": 2, "frames": 3, "lat_h": 4, "lat_w": 8, "tokens": 24, "seed": 2}
    for component in ONNX_COMPONENTS:
        t0 = time.monotonic()
        model_name = f"{name}_{component}"
        dest = out_repo / model_name / "1" / ONNX_FILE
        module = modules[component]
        trace_args = sample_inputs(component, parts, **trace)
        if component == "transformer":
            original = parts["transformer"].attn_processors
            parts["transformer"].set_attn_processor(TraceableAttnProcessor())
            try:
                external = _export_one(module, trace_args, component, dest)
            finally:
                parts["transformer"].set_attn_processor(original)
        else:
            external = _export_one(module, trace_args, component, dest)
        diff, scale = validate(module, dest, sample_inputs(component, parts, **check), component)
        tolerance = TOLERANCE * max(1.0, scale)
        size = dest.stat().st_size
        if external:
            size += dest.with_name(EXTERNAL_DATA_FILE).stat().st_size
        report.components.append(
            ComponentReport(
                component,
                model_name,
                str(dest),
                size,
                "onnx",
                diff,
                scale,
                tolerance,
                bool(diff <= tolerance),
                round(time.monotonic() - t0, 2),
            )
        )
    t0 = time.monotonic()
    decoder = out_repo / f"{name}_vae_decoder" / "1"
    if decoder.exists():
        shutil.rmtree(decoder)
    decoder.mkdir(parents=True)
    shutil.copytree(diffusers_dir / "vae", decoder / "vae")
    shutil.copyfile(VAE_RUNNER, decoder / "model.py")
    vae_bytes = sum(f.stat().st_size for f in (decoder / "vae").rglob("*") if f.is_file())
    report.components.append(
        ComponentReport(
            "vae_decoder",
            f"{name}_vae_decoder",
            str(decoder / "vae"),
            vae_bytes,
            "torch (python backend)",
            None,
            None,
            None,
            True,
            round(time.monotonic() - t0, 2),
        )
    )
    write_checkpoint(diffusers_dir, out_repo / name / "checkpoint", parts, name)
    if target is not None:
        render_wan_configs(out_repo, target, names=[name])
    report.seconds = round(time.monotonic() - started, 2)
    (out_repo / name / "checkpoint" / "export_report.json").write_text(
        json.dumps(report.to_dict(), indent=2)
    )
    return report


def write_checkpoint(diffusers_dir: Path, dest: Path, parts: dict[str, Any], name: str) -> None:
    """The pipeline model's view of the checkpoint: pipeline.json, the scheduler config
    and the tokenizer, copied as they are."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for part in ("scheduler", "tokenizer"):
        shutil.copytree(diffusers_dir / part, dest / part)
    vae = json.loads((diffusers_dir / "vae" / "config.json").read_text())
    transformer = parts["transformer"].config
    temporal = vae.get("temperal_downsample", [False, True, True])
    meta = {
        "name": name,
        "source": str(diffusers_dir.resolve()),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "latent_channels": int(transformer.in_channels),
        "patch_size": list(transformer.patch_size),
        "vae_scale_factor_spatial": 2 ** len(temporal),
        "vae_scale_factor_temporal": 2 ** sum(bool(t) for t in temporal),
        "latents_mean": vae["latents_mean"],
        "latents_std": vae["latents_std"],
        "max_sequence_length": MAX_SEQUENCE_LENGTH,
        "text_dim": int(parts["text_encoder"].config.d_model),
        "components": {c: f"{name}_{c}" for c in COMPONENTS},
    }
    if int(vae.get("z_dim", 16)) != meta["latent_channels"]:
        raise ExportError(
            f"the VAE's z_dim {vae.get('z_dim')} != the transformer's {meta['latent_channels']} "
            "input channels"
        )
    (dest / "pipeline.json").write_text(json.dumps(meta, indent=2))
