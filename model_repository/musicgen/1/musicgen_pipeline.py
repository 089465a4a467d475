"""MusicGen text to music over separately served components: the T5 prompt encoding
(with the cross-attention keys and values computed once), classifier-free guidance
against MusicGen's null condition, the codebook delay pattern, one decoder step per
frame through a key/value cache, greedy or top-k sampling, and the EnCodec decode.

It reproduces transformers' MusicgenForConditionalGeneration.generate for one prompt:
the same tokens (T5's tokenizer.json through `tokenizers`), the same delay pattern
(codebook k lags k frames; start/pad token = the codebook size), guidance applied to
the logits as `uncond + (cond - uncond) * scale` with the null condition being a zero
encoder state under a zero mask, and the same removal of the pattern's pad positions
before decoding, and for sampling the same top-k filter and the same draws that
torch.multinomial makes after torch.manual_seed(seed) (torch_sampling.py). Greedy
decoding gives transformers' codes exactly; so does sampling with the same seed, short
of a near-tie between two codes that float rounding of the logits (onnxruntime vs
torch, about 1e-6) can flip.

`duration_s` becomes round(duration_s * frame_rate) frames of audio (hop samples each);
generating them takes num_codebooks - 1 more steps, since the last codebook lags.

Pure numpy (plus `tokenizers`); the components are reached through a
`ComponentCaller`, which is BLS inside Triton (model.py) and onnxruntime in tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch_sampling import TorchCpuGenerator, multinomial_one, softmax

# Component key -> (input names, output names) of the exported models (export.py).
COMPONENT_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text_encoder": (("input_ids", "attention_mask"), ("cross_key_values",)),
    "decoder": (
        ("input_ids", "encoder_attention_mask", "cross_key_values", "past_key_values"),
        ("logits", "present_key_values"),
    ),
    "audio_decoder": (("audio_codes",), ("audio_values",)),
}

ComponentCaller = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]
MAX_SEED = 2**63 - 1


class RequestError(ValueError):
    """The request is wrong; reported as INVALID_ARG with "<INPUT>: <what is wrong>"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class PipelineParams:
    """Limits and defaults from config.pbtxt `parameters` (see its comments)."""

    max_duration_s: float = 30.0
    max_prompt_chars: int = 2000
    max_prompt_tokens: int = 512
    max_guidance_scale: float = 30.0
    # Negative (the default, when config.pbtxt leaves the key out): the
    # checkpoint's generation_config value.
    default_guidance_scale: float = -1.0
    default_top_k: int = -1

    def validate(self) -> PipelineParams:
        if self.max_duration_s <= 0 or self.max_prompt_chars <= 0 or self.max_prompt_tokens <= 1:
            raise ValueError("max_duration_s, max_prompt_chars, max_prompt_tokens must be positive")
        if self.default_guidance_scale > self.max_guidance_scale:
            raise ValueError("default_guidance_scale exceeds max_guidance_scale")
        return self


@dataclass(frozen=True)
class Checkpoint:
    """pipeline.json and the tokenizer written by the export."""

    num_codebooks: int
    codebook_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    pad_token_id: int
    decoder_start_token_id: int
    sampling_rate: int
    audio_channels: int
    frame_rate: float
    max_positions: int
    do_sample: bool
    guidance_scale: float
    top_k: int
    components: dict[str, str]
    tokenizer: Any

    @classmethod
    def load(cls, folder: Path) -> Checkpoint:
        from tokenizers import Tokenizer

        meta = json.loads((folder / "pipeline.json").read_text())
        components = dict(meta["components"])
        missing = sorted(set(COMPONENT_IO) - set(components))
        if missing:
            raise ValueError(f"{folder / 'pipeline.json'} names no model for {missing}")
        if int(meta["audio_channels"]) != 1:
            raise ValueError("only mono MusicGen checkpoints are served")
        gen = meta["generation"]
        return cls(
            num_codebooks=int(meta["num_codebooks"]),
            codebook_size=int(meta["codebook_size"]),
            num_layers=int(meta["num_layers"]),
            num_heads=int(meta["num_heads"]),
            head_dim=int(meta["head_dim"]),
            pad_token_id=int(meta["pad_token_id"]),
            decoder_start_token_id=int(meta["decoder_start_token_id"]),
            sampling_rate=int(meta["sampling_rate"]),
            audio_channels=int(meta["audio_channels"]),
            frame_rate=float(meta["frame_rate"]),
            max_positions=int(meta["max_position_embeddings"]),
            do_sample=bool(gen["do_sample"]),
            guidance_scale=float(gen["guidance_scale"]),
            top_k=int(gen["top_k"]),
            components=components,
            tokenizer=Tokenizer.from_file(str(folder / "tokenizer.json")),
        )

    def frames(self, duration_s: float) -> int:
        return int(round(duration_s * self.frame_rate))


@dataclass(frozen=True)
class GenerationRequest:
    """One request, parsed; None means "not given"."""

    prompt: str
    duration_s: float | None
    seed: int | None = None
    guidance_scale: float | None = None
    top_k: int | None = None
    do_sample: bool | None = None


@dataclass(frozen=True)
class Settled:
    prompt: str
    frames: int
    seed: int
    guidance_scale: float
    top_k: int
    do_sample: bool


def settle(
    request: GenerationRequest,
    params: PipelineParams,
    ckpt: Checkpoint,
    random_seed: Callable[[], int],
) -> Settled:
    """Defaults applied and every value checked; RequestError names the input."""
    if not request.prompt.strip():
        raise RequestError("PROMPT", "must not be empty")
    if len(request.prompt) > params.max_prompt_chars:
        raise RequestError(
            "PROMPT", f"{len(request.prompt)} characters; at most {params.max_prompt_chars}"
        )
    duration = request.duration_s
    if duration is None:
        raise RequestError("DURATION", "required")
    if not (math.isfinite(duration) and 0 < duration <= params.max_duration_s):
        raise RequestError(
            "DURATION", f"{duration:g} is outside (0, {params.max_duration_s:g}] seconds"
        )
    frames = ckpt.frames(duration)
    if frames < 1:
        raise RequestError(
            "DURATION", f"{duration:g} s is less than one frame ({1 / ckpt.frame_rate:g} s)"
        )
    if frames + ckpt.num_codebooks > ckpt.max_positions:
        raise RequestError("DURATION", f"{duration:g} s is longer than the model's context")
    default_guidance = (
        params.default_guidance_scale if params.default_guidance_scale >= 0 else ckpt.guidance_scale
    )
    guidance = default_guidance if request.guidance_scale is None else request.guidance_scale
    if not (math.isfinite(guidance) and 0 <= guidance <= params.max_guidance_scale):
        raise RequestError(
            "GUIDANCE_SCALE", f"{guidance:g} is outside 0..{params.max_guidance_scale:g}"
        )
    top_k = request.top_k
    if top_k is None:
        top_k = params.default_top_k if params.default_top_k >= 0 else ckpt.top_k
    if top_k < 0:
        raise RequestError("TOP_K", f"{top_k} is negative (0 keeps every code)")
    seed = random_seed() if request.seed is None else request.seed
    if not 0 <= seed <= MAX_SEED:
        raise RequestError("SEED", f"{seed} is outside 0..{MAX_SEED}")
    return Settled(
        prompt=request.prompt,
        frames=frames,
        seed=int(seed),
        guidance_scale=float(guidance),
        top_k=int(top_k),
        do_sample=ckpt.do_sample if request.do_sample is None else bool(request.do_sample),
    )


def delay_pattern(num_codebooks: int, length: int, pad: int) -> np.ndarray:
    """int64 [K, length]: -1 where codebook k takes a generated token, `pad` where the
    delay pattern fixes it (positions 0..k, and the last K-1-k positions): transformers'
    build_delay_pattern_mask for a start-token-only prompt."""
    pattern = np.full((num_codebooks, length), -1, dtype=np.int64)
    for k in range(num_codebooks):
        pattern[k, : k + 1] = pad
        pattern[k, length - num_codebooks + 1 + k :] = pad
    return pattern


def top_k_filter(scores: np.ndarray, top_k: int) -> np.ndarray:
    """float32 `scores` [rows, V] with every logit below the row's k-th largest set to
    -inf (transformers' TopKLogitsWarper; 0, or k >= V, keeps all)."""
    vocab = scores.shape[-1]
    if not 0 < top_k < vocab:
        return scores
    kth = np.partition(scores, vocab - top_k, axis=-1)[:, vocab - top_k][:, None]
    return np.where(scores < kth, np.float32(-np.inf), scores).astype(np.float32)


def sample(scores: np.ndarray, top_k: int, generator: TorchCpuGenerator) -> np.ndarray:
    """One code per row of float32 `scores` [K, V]: top-k, softmax, then the draw
    torch.multinomial makes from the same generator state."""
    return multinomial_one(softmax(top_k_filter(scores, top_k)), generator)


class MusicgenPipeline:
    """Runs settled requests over the three components through `call`."""

    def __init__(self, checkpoint: Checkpoint, call: ComponentCaller) -> None:
        self.ckpt = checkpoint
        self._call = call

    def tokenize(self, prompt: str, max_tokens: int) -> np.ndarray:
        ids = self.ckpt.tokenizer.encode(prompt).ids
        if len(ids) > max_tokens:
            raise RequestError("PROMPT", f"{len(ids)} tokens; at most {max_tokens}")
        return np.array([ids], dtype=np.int64)

    def generate_codes(self, req: Settled, max_tokens: int = 512) -> np.ndarray:
        """int64 [K, frames]: the audio codes, delay pattern removed."""
        ck = self.ckpt
        k = ck.num_codebooks
        ids = self.tokenize(req.prompt, max_tokens)
        mask = np.ones_like(ids)
        cross = self._call("text_encoder", {"input_ids": ids, "attention_mask": mask})[
            "cross_key_values"
        ]
        guidance = req.guidance_scale > 1
        if guidance:
            # MusicGen's null condition: a zero encoder state under a zero mask. Its
            # cross projections have no bias (checked at export), so its keys and
            # values are zeros.
            cross = np.concatenate([cross, np.zeros_like(cross)], axis=2)
            mask = np.concatenate([mask, np.zeros_like(mask)], axis=0)
        rows = 2 if guidance else 1
        length = req.frames + k  # the start position, then frames + K - 1 steps
        pattern = delay_pattern(k, length, ck.decoder_start_token_id)
        seq = np.where(pattern == -1, 0, pattern)
        past = np.zeros((ck.num_layers, 2, rows, ck.num_heads, 0, ck.head_dim), dtype=np.float32)
        generator = TorchCpuGenerator(req.seed)
        scale = np.float32(req.guidance_scale)
        for t in range(length - 1):
            step = np.tile(seq[None, :, t : t + 1], (rows, 1, 1))
            out = self._call(
                "decoder",
                {
                    "input_ids": step,
                    "encoder_attention_mask": mask,
                    "cross_key_values": cross,
                    "past_key_values": past,
                },
            )
            logits = np.asarray(out["logits"], dtype=np.float32)
            past = out["present_key_values"]
            scores = logits[0]
            if guidance:
                scores = logits[1] + (logits[0] - logits[1]) * scale
            if req.do_sample:
                codes = sample(scores, req.top_k, generator)
            else:
                codes = np.argmax(scores, axis=-1)
            seq[:, t + 1] = np.where(pattern[:, t + 1] == -1, codes, pattern[:, t + 1])
        return np.stack([seq[i][pattern[i] == -1] for i in range(k)])

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """float32 [channels, samples] from int64 codes [K, frames]."""
        audio = self._call("audio_decoder", {"audio_codes": codes[None].astype(np.int64)})[
            "audio_values"
        ]
        return np.ascontiguousarray(audio[0], dtype=np.float32)

    def __call__(self, req: Settled, max_tokens: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """(audio float32 [channels, frames * hop], codes int64 [K, frames])."""
        codes = self.generate_codes(req, max_tokens)
        return self.decode(codes), codes
