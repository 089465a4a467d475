"""Export a transformers-format MusicGen checkpoint (facebook/musicgen-small's folder,
or a tiny one from tiny.py) into the Triton model repository as three ONNX models plus
the files the pipeline model reads.

    <repo>/<name>_text_encoder/1/model.onnx   input_ids int64 [B, T], attention_mask
                                                int64 [B, T] -> cross_key_values
                                                [L, 2, B, H, T, Dh]
    <repo>/<name>_decoder/1/model.onnx        input_ids int64 [B, K, S],
                                                encoder_attention_mask int64 [B, T],
                                                cross_key_values [L, 2, B, H, T, Dh],
                                                past_key_values [L, 2, B, H, P, Dh] ->
                                                logits [B, K, V] (last position),
                                                present_key_values [L, 2, B, H, P+S, Dh]
    <repo>/<name>_audio_decoder/1/model.onnx  audio_codes int64 [B, K, F] ->
                                                audio_values [B, C, F * hop]
    <repo>/<name>/checkpoint/                 pipeline.json, tokenizer.json and the
                                                tokenizer's config files

The text encoder model is T5's encoder, the projection to the decoder's width, the
attention-mask multiply MusicGen applies, and every decoder layer's cross-attention key
and value projections: those depend only on the prompt, so they are computed once per
request instead of once per generated frame. The decoder is one step of MusicGen's LM
with a self-attention key/value cache in and out, so a generation costs one pass per
frame instead of a pass over the whole sequence per frame. It is a plain re-statement
of transformers' MusicgenDecoder over the checkpoint's own weights (tracing
transformers' Cache objects bakes the cache length into the graph); the export checks
it, step by step through the cache, against transformers' uncached forward.

Every component is checked against torch with onnxruntime on inputs of another shape
than the traced one (batch, prompt length, cache length, frame count), and the report
carries each max abs diff; `report.ok` is False when one is off by more than 1e-3
relative to the output's scale.
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
from services.models.onnx_export import trace_to_onnx

COMPONENTS = ("text_encoder", "decoder", "audio_decoder")
ONNX_FILE = "model.onnx"
OPSET = 17
TOLERANCE = 1e-3
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

IO: dict[str, tuple[list[str], list[str]]] = {
    "text_encoder": (["input_ids", "attention_mask"], ["cross_key_values"]),
    "decoder": (
        ["input_ids", "encoder_attention_mask", "cross_key_values", "past_key_values"],
        ["logits", "present_key_values"],
    ),
    "audio_decoder": (["audio_codes"], ["audio_values"]),
}
_DYNAMIC: dict[str, dict[int, str]] = {
    "input_ids": {0: "batch", 1: "sequence"},
    "attention_mask": {0: "batch", 1: "text_length"},
    "encoder_attention_mask": {0: "batch", 1: "text_length"},
    "cross_key_values": {2: "batch", 4: "text_length"},
    "past_key_values": {2: "batch", 4: "past_length"},
    "present_key_values": {2: "batch", 4: "total_length"},
    "logits": {0: "batch"},
    "audio_codes": {0: "batch", 2: "frames"},
    "audio_values": {0: "batch", 2: "samples"},
}


class ExportError(RuntimeError):
    """The checkpoint cannot be exported (not a MusicGen folder, unsupported variant)."""


class ContractError(RuntimeError):
    """An exported component's signature is not what the pipeline model calls."""


@dataclass
class ComponentReport:
    component: str
    model: str
    path: str
    bytes: int
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
        lines = [f"{'component':<14} {'model':<24} {'MB':>9} {'max|diff|':>11}  ok"]
        for c in self.components:
            lines.append(
                f"{c.component:<14} {c.model:<24} {c.bytes / 1e6:>9.1f} "
                f"{c.max_abs_diff:>11.3e}  {'yes' if c.passed else 'NO'}"
            )
        return "\n".join(lines)


def load_model(folder: Path) -> Any:
    """transformers' MusicgenForConditionalGeneration from `folder`, float32, eval."""
    import torch
    from transformers import MusicgenForConditionalGeneration

    if not (folder / "config.json").is_file():
        raise ExportError(f"{folder} has no config.json: not a transformers MusicGen folder")
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "musicgen":
        raise ExportError(
            f"{folder} holds a {config.get('model_type')!r} model; this exports 'musicgen' "
            "(text to music; musicgen_melody's chroma conditioning is not supported)"
        )
    missing = [f for f in ("tokenizer.json",) if not (folder / f).is_file()]
    if missing:
        raise ExportError(f"{folder} has no {', '.join(missing)} (the T5 tokenizer)")
    model = MusicgenForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    return model.eval().requires_grad_(False)


def _check_architecture(model: Any) -> None:
    dec = model.config.decoder
    if dec.audio_channels != 1:
        raise ExportError("stereo MusicGen checkpoints are not supported (audio_channels != 1)")
    if model.config.audio_encoder.chunk_length_s is not None:
        raise ExportError("EnCodec with chunked decoding (chunk_length_s) is not supported")
    layer = model.decoder.model.decoder.layers[0]
    # The null (unconditional) prompt of guidance is a zero encoder state with a zero
    # mask; without biases its cross keys and values are exactly zero (pipeline.py).
    if layer.encoder_attn.k_proj.bias is not None or layer.encoder_attn.v_proj.bias is not None:
        raise ExportError("cross-attention projections with a bias are not supported")


def _wrappers(model: Any) -> dict[str, Any]:
    import torch

    decoder = model.decoder.model.decoder
    heads = model.decoder.lm_heads
    layers = decoder.layers
    num_codebooks = int(model.decoder.num_codebooks)
    num_heads = int(model.config.decoder.num_attention_heads)
    head_dim = int(model.config.decoder.hidden_size) // num_heads
    proj = getattr(model, "enc_to_dec_proj", None)
    text_encoder = model.text_encoder
    codec = model.audio_encoder
    act = layers[0].activation_fn
    min_value = torch.finfo(torch.float32).min

    def split_heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], num_heads, head_dim).transpose(1, 2)

    def attend(q: Any, k: Any, v: Any, mask: Any, attn: Any) -> Any:
        weights = torch.matmul(q, k.transpose(2, 3)) * attn.scaling + mask
        out = torch.matmul(torch.softmax(weights, dim=-1), v)
        out = out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
        return attn.out_proj(out)

    class TextEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # Registered so the weights export as initializers, not traced constants.
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = text_encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            if proj is not None:
                hidden = proj(hidden)
            hidden = hidden * attention_mask[..., None]
            per_layer = [
                torch.stack(
                    [
                        split_heads(layer.encoder_attn.k_proj(hidden)),
                        split_heads(layer.encoder_attn.v_proj(hidden)),
                    ]
                )
                for layer in layers
            ]
            return torch.stack(per_layer)

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # Registered so the weights export as initializers, not traced constants.
            self.model = model

        def forward(
            self,
            input_ids: Any,
            encoder_attention_mask: Any,
            cross_key_values: Any,
            past_key_values: Any,
        ) -> Any:
            ids = input_ids
            seq = ids.shape[2]
            past = past_key_values.shape[4]
            hidden = decoder.embed_tokens[0](ids[:, 0])
            for k in range(1, num_codebooks):
                hidden = hidden + decoder.embed_tokens[k](ids[:, k])
            positions = torch.arange(seq, dtype=torch.int64) + past
            hidden = hidden + decoder.embed_positions.weights.index_select(0, positions)
            # Query i sees cache positions 0..past+i.
            keys = torch.arange(seq, dtype=torch.int64)[:, None] + past
            total = torch.arange(past + seq, dtype=torch.int64)[None, :]
            causal = (total > keys).to(torch.float32) * min_value
            causal = causal[None, None]
            cross_mask = (1.0 - encoder_attention_mask.to(torch.float32)) * min_value
            cross_mask = cross_mask[:, None, None, :]
            present = []
            for index, layer in enumerate(layers):
                residual = hidden
                h = layer.self_attn_layer_norm(hidden)
                attn = layer.self_attn
                k = torch.cat([past_key_values[index, 0], split_heads(attn.k_proj(h))], dim=2)
                v = torch.cat([past_key_values[index, 1], split_heads(attn.v_proj(h))], dim=2)
                present.append(torch.stack([k, v]))
                hidden = residual + attend(split_heads(attn.q_proj(h)), k, v, causal, attn)
                residual = hidden
                h = layer.encoder_attn_layer_norm(hidden)
                cross = layer.encoder_attn
                hidden = residual + attend(
                    split_heads(cross.q_proj(h)),
                    cross_key_values[index, 0],
                    cross_key_values[index, 1],
                    cross_mask,
                    cross,
                )
                residual = hidden
                h = layer.final_layer_norm(hidden)
                hidden = residual + layer.fc2(act(layer.fc1(h)))
            last = decoder.layer_norm(hidden)[:, -1]
            logits = torch.stack([head(last) for head in heads], dim=1)
            return logits, torch.stack(present)

    class AudioDecoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # Registered so the weights export as initializers, not traced constants.
            self.model = model

        def forward(self, audio_codes: Any) -> Any:
            return codec.decode(audio_codes[None], [None], return_dict=False)[0]

    return {
        "text_encoder": TextEncoder().eval(),
        "decoder": Decoder().eval(),
        "audio_decoder": AudioDecoder().eval(),
    }


def _shapes(model: Any) -> dict[str, int]:
    dec = model.config.decoder
    return {
        "layers": int(dec.num_hidden_layers),
        "heads": int(dec.num_attention_heads),
        "head_dim": int(dec.hidden_size) // int(dec.num_attention_heads),
        "codebooks": int(dec.num_codebooks),
        "vocab": int(dec.vocab_size),
        "text_vocab": int(model.config.text_encoder.vocab_size),
    }


def _random_ids(g: Any, batch: int, length: int, vocab: int) -> Any:
    import torch

    ids = torch.randint(2, vocab, (batch, length), generator=g)
    ids[:, -1] = 1  # T5's </s>
    return ids


def _trace_args(model: Any, component: str) -> tuple[Any, ...]:
    import torch

    s = _shapes(model)
    g = torch.Generator().manual_seed(1)
    if component == "text_encoder":
        ids = _random_ids(g, 1, 7, s["text_vocab"])
        return ids, torch.ones_like(ids)
    if component == "decoder":
        t, p = 7, 3
        return (
            torch.randint(0, s["vocab"] + 1, (1, s["codebooks"], 1), generator=g),
            torch.ones(1, t, dtype=torch.int64),
            torch.randn(s["layers"], 2, 1, s["heads"], t, s["head_dim"], generator=g),
            torch.randn(s["layers"], 2, 1, s["heads"], p, s["head_dim"], generator=g),
        )
    return (torch.randint(0, s["vocab"], (1, s["codebooks"], 5), generator=g),)


def _export_one(module: Any, args: tuple[Any, ...], component: str, dest: Path) -> None:
    inputs, outputs = IO[component]
    axes = {n: _DYNAMIC[n] for n in inputs + outputs}
    if component == "decoder":
        axes["input_ids"] = {0: "batch", 2: "sequence"}  # [B, K, S]
    trace_to_onnx(
        module,
        args,
        dest,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes=axes,
        opset=OPSET,
    )


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _max_diff(got: list[np.ndarray], ref: list[Any]) -> tuple[float, float]:
    diff = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref, strict=True))
    scale = max(float(np.abs(r.numpy()).max()) for r in ref)
    return diff, scale


def _validate(model: Any, component: str, path: Path) -> tuple[float, float]:
    """(max abs diff ONNX vs transformers, max abs reference value) on inputs of other
    shapes than the traced ones. The references are transformers' own modules."""
    import torch

    s = _shapes(model)
    session = _session(path)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        if component == "text_encoder":
            ids = _random_ids(g, 2, 11, s["text_vocab"])
            mask = torch.ones_like(ids)
            mask[1, 8:] = 0  # a padded row
            got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
            hidden = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            if getattr(model, "enc_to_dec_proj", None) is not None:
                hidden = model.enc_to_dec_proj(hidden)
            hidden = hidden * mask[..., None]
            ref = []
            for layer in model.decoder.model.decoder.layers:
                for lin in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj):
                    out = lin(hidden)
                    ref.append(out.view(2, 11, s["heads"], s["head_dim"]).transpose(1, 2))
            want = torch.stack(ref).view(s["layers"], 2, 2, s["heads"], 11, s["head_dim"])
            return _max_diff(got, [want])
        if component == "decoder":
            return _validate_decoder(model, session, s, g)
        codes = torch.randint(0, s["vocab"], (2, s["codebooks"], 9), generator=g)
        got = session.run(None, {"audio_codes": codes.numpy()})
        want = model.audio_encoder.decode(codes[None], [None]).audio_values
        return _max_diff(got, [want])


def _validate_decoder(model: Any, session: Any, s: dict[str, int], g: Any) -> tuple[float, float]:
    """Batch 2 with one padded prompt: a prefix of 5 positions from an empty cache, then
    2 more through the cache, then 1 more; each step's last-position logits against
    transformers' uncached MusicgenForCausalLM forward over the whole prefix."""
    import torch

    batch, text_len = 2, 6
    hidden_size = int(model.config.decoder.hidden_size)
    encoder_hidden = torch.randn(batch, text_len, hidden_size, generator=g)
    enc_mask = torch.ones(batch, text_len, dtype=torch.int64)
    enc_mask[1, 4:] = 0
    encoder_hidden = encoder_hidden * enc_mask[..., None]
    layers = model.decoder.model.decoder.layers
    cross = torch.stack(
        [
            torch.stack(
                [
                    lin(encoder_hidden)
                    .view(batch, text_len, s["heads"], s["head_dim"])
                    .transpose(1, 2)
                    for lin in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj)
                ]
            )
            for layer in layers
        ]
    )
    total = 8
    ids = torch.randint(0, s["vocab"] + 1, (batch, s["codebooks"], total), generator=g)
    past = np.zeros((s["layers"], 2, batch, s["heads"], 0, s["head_dim"]), np.float32)
    worst, scale = 0.0, 0.0
    start = 0
    for stop in (5, 7, 8):
        logits, past = session.run(
            None,
            {
                "input_ids": ids[:, :, start:stop].numpy(),
                "encoder_attention_mask": enc_mask.numpy(),
                "cross_key_values": cross.numpy(),
                "past_key_values": past,
            },
        )
        ref = model.decoder(
            input_ids=ids[:, :, :stop].reshape(batch * s["codebooks"], stop),
            encoder_hidden_states=encoder_hidden,
            encoder_attention_mask=enc_mask,
            use_cache=False,
        ).logits
        want = ref.view(batch, s["codebooks"], stop, -1)[:, :, -1]
        diff, ref_scale = _max_diff([logits], [want])
        worst, scale = max(worst, diff), max(scale, ref_scale)
        if past.shape[4] != stop:
            raise ExportError(f"decoder cache holds {past.shape[4]} positions, not {stop}")
        start = stop
    return worst, scale


def export_musicgen(
    checkpoint_dir: Path,
    out_repo: Path = MODEL_REPOSITORY,
    *,
    name: str = "musicgen",
    target: str | None = "cpu",
) -> ExportReport:
    """Export `checkpoint_dir` into `out_repo` (layout in the module docstring), validate
    each component against transformers, write the checkpoint folder, and render the
    component configs for `target` ("cpu", "gpu"; None leaves them). A component that
    fails validation is still written; the report says so (`report.ok`)."""
    import torch

    from services.models.musicgen.configs import render_musicgen_configs

    started = time.monotonic()
    checkpoint_dir = Path(checkpoint_dir)
    out_repo = Path(out_repo)
    model = load_model(checkpoint_dir)
    _check_architecture(model)
    report = ExportReport(name, str(checkpoint_dir), str(out_repo), target)
    modules = _wrappers(model)
    threads = torch.get_num_threads()
    for component in COMPONENTS:
        t0 = time.monotonic()
        model_name = f"{name}_{component}"
        dest = out_repo / model_name / "1" / ONNX_FILE
        _export_one(modules[component], _trace_args(model, component), component, dest)
        diff, scale = _validate(model, component, dest)
        tolerance = TOLERANCE * max(1.0, scale)
        report.components.append(
            ComponentReport(
                component=component,
                model=model_name,
                path=str(dest),
                bytes=dest.stat().st_size,
                max_abs_diff=diff,
                reference_scale=scale,
                tolerance=tolerance,
                passed=bool(diff <= tolerance),
                seconds=round(time.monotonic() - t0, 2),
            )
        )
    torch.set_num_threads(threads)
    _write_checkpoint(checkpoint_dir, out_repo / name / "checkpoint", model, name)
    check_contract(out_repo, name)
    if target is not None:
        render_musicgen_configs(out_repo, target, names=[name])
    report.seconds = round(time.monotonic() - started, 2)
    (out_repo / name / "checkpoint" / "export_report.json").write_text(
        json.dumps(report.to_dict(), indent=2)
    )
    return report


def _write_checkpoint(source: Path, dest: Path, model: Any, name: str) -> None:
    """The pipeline model's view of the checkpoint: pipeline.json (shapes, special
    tokens, the codec's rate, generation defaults) and the tokenizer files."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for file in TOKENIZER_FILES:
        if (source / file).is_file():
            shutil.copyfile(source / file, dest / file)
    s = _shapes(model)
    codec = model.config.audio_encoder
    hop = int(np.prod(codec.upsampling_ratios))
    generation = model.generation_config
    meta = {
        "name": name,
        "source": str(source.resolve()),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "num_codebooks": s["codebooks"],
        "codebook_size": s["vocab"],
        "num_layers": s["layers"],
        "num_heads": s["heads"],
        "head_dim": s["head_dim"],
        "pad_token_id": int(generation.pad_token_id),
        "decoder_start_token_id": int(generation.decoder_start_token_id),
        "sampling_rate": int(codec.sampling_rate),
        "audio_channels": int(codec.audio_channels),
        "hop_length": hop,
        "frame_rate": int(codec.sampling_rate) / hop,
        "max_position_embeddings": int(model.config.decoder.max_position_embeddings),
        "generation": {
            "do_sample": bool(generation.do_sample),
            "guidance_scale": float(generation.guidance_scale or 1.0),
            "top_k": int(generation.top_k or 0),
        },
        "components": {c: f"{name}_{c}" for c in COMPONENTS},
    }
    (dest / "pipeline.json").write_text(json.dumps(meta, indent=2))


# The pipeline model's contract with each component: input and output names, element
# types and ranks, and which axes must equal the checkpoint's shapes (pipeline.json).
_ONNX_TYPES = {1: "float32", 7: "int64"}
_CONTRACT: dict[str, dict[str, tuple[str, tuple[str | None, ...]]]] = {
    "text_encoder": {
        "input_ids": ("int64", (None, None)),
        "attention_mask": ("int64", (None, None)),
        "cross_key_values": (
            "float32",
            ("num_layers", "2", None, "num_heads", None, "head_dim"),
        ),
    },
    "decoder": {
        "input_ids": ("int64", (None, "num_codebooks", None)),
        "encoder_attention_mask": ("int64", (None, None)),
        "cross_key_values": (
            "float32",
            ("num_layers", "2", None, "num_heads", None, "head_dim"),
        ),
        "past_key_values": (
            "float32",
            ("num_layers", "2", None, "num_heads", None, "head_dim"),
        ),
        "logits": ("float32", (None, "num_codebooks", "codebook_size")),
        "present_key_values": (
            "float32",
            ("num_layers", "2", None, "num_heads", None, "head_dim"),
        ),
    },
    "audio_decoder": {
        "audio_codes": ("int64", (None, "num_codebooks", None)),
        "audio_values": ("float32", (None, "audio_channels", None)),
    },
}


def check_contract(repo: Path, name: str = "musicgen") -> None:
    """ContractError unless every component of the exported pipeline `name` in `repo`
    has exactly the tensors the pipeline model sends and reads, with the element
    types, ranks and fixed sizes that its pipeline.json promises."""
    import onnx

    meta = json.loads((repo / name / "checkpoint" / "pipeline.json").read_text())
    problems: list[str] = []
    for component, tensors in _CONTRACT.items():
        path = repo / meta["components"][component] / "1" / ONNX_FILE
        if not path.is_file():
            problems.append(f"{component}: {path} is missing")
            continue
        graph = onnx.load(str(path), load_external_data=False).graph
        found = {v.name: v.type.tensor_type for v in list(graph.input) + list(graph.output)}
        if set(found) != set(tensors):
            problems.append(f"{component}: tensors {sorted(found)}, expected {sorted(tensors)}")
            continue
        for tensor, (dtype, dims) in tensors.items():
            kind = found[tensor]
            got_type = _ONNX_TYPES.get(kind.elem_type, str(kind.elem_type))
            shape = [d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim]
            if got_type != dtype or len(shape) != len(dims):
                problems.append(
                    f"{component}.{tensor}: {got_type} of rank {len(shape)}, "
                    f"expected {dtype} of rank {len(dims)}"
                )
                continue
            for axis, (want, got) in enumerate(zip(dims, shape, strict=True)):
                if want is None:
                    continue
                size = int(want) if want.isdigit() else int(meta[want])
                if got is not None and got != size:
                    problems.append(
                        f"{component}.{tensor} axis {axis}: {got}, expected {want} = {size}"
                    )
    if problems:
        raise ContractError("; ".join(problems))
