"""WAN 2.1 text to video over separately served components: UMT5 prompt encoding (the
prompt and, with guidance, the negative prompt or "" in one batch; hidden states past
each text's length zeroed), seeded latents, the UniPC flow-matching loop with
classifier-free guidance, latent de-normalisation and the VAE decode.

It reproduces diffusers' WanPipeline for the same weights, seed and step count: the same
prompt cleaning and tokens (the checkpoint's tokenizer.json through `tokenizers`), the
same latent draws from a torch-compatible generator (torch_rng), the same scheduler
numerics (unipc), the same post-processing. One difference by design: the transformer
sees the conditional and unconditional branches as one batch of two, where diffusers
makes two calls; the results agree to float32 rounding. WanPipeline also runs ftfy over
prompts when that package is installed; it only repairs mis-decoded text (mojibake) and
is not used here.

Pure numpy; the components are reached through a `ComponentCaller`: BLS inside Triton
(model.py), onnxruntime and torch in tests. Latents are [1, C, f, h, w] float32; the
video leaves as float32 [T, H, W, 3] RGB in [0, 1] (diffusers' output_type="np").
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from unipc import UniPC, UniPCConfig, parse_config

from services.models.pybackend.torch_rng import TorchCpuGenerator

COMPONENT_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text_encoder": (("input_ids", "attention_mask"), ("hidden_states",)),
    "transformer": (("sample", "timestep", "encoder_hidden_states"), ("out_sample",)),
    "vae_decoder": (("latent",), ("video",)),
}

ComponentCaller = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]
MAX_SEED = 2**63 - 1


class RequestError(ValueError):
    """The request is wrong: INVALID_ARG with "<INPUT>: <what is wrong>"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class PipelineParams:
    """Limits and defaults from config.pbtxt `parameters` (sizes in pixels; width and
    height must also be multiples of the checkpoint's 8 x patch = 16)."""

    min_side: int = 16
    max_side: int = 1280
    max_pixels: int = 921_600  # 1280 x 720
    max_frames: int = 161  # 10 s at 16 fps
    max_steps: int = 100
    max_guidance_scale: float = 20.0
    max_prompt_chars: int = 2000
    default_steps: int = 50
    default_guidance_scale: float = 5.0


def check_params(params: PipelineParams) -> PipelineParams:
    """ValueError (the model does not load) for limits that contradict each other."""
    for key in (
        "min_side",
        "max_side",
        "max_pixels",
        "max_frames",
        "max_steps",
        "max_prompt_chars",
    ):
        if getattr(params, key) <= 0:
            raise ValueError(f"{key} must be positive, got {getattr(params, key)}")
    if params.min_side > params.max_side:
        raise ValueError(f"min_side {params.min_side} exceeds max_side {params.max_side}")
    if not 1 <= params.default_steps <= params.max_steps:
        raise ValueError(f"default_steps {params.default_steps} not in 1..{params.max_steps}")
    if not 0 <= params.default_guidance_scale <= params.max_guidance_scale:
        raise ValueError("default_guidance_scale must lie in 0..max_guidance_scale")
    return params


class Tokenizer:
    """The checkpoint's UMT5 tokenizer (tokenizer.json) padded and truncated to a fixed
    length the way WanPipeline asks transformers to: `</s>` appended, <pad> after."""

    def __init__(self, path: Path, length: int) -> None:
        from tokenizers import Tokenizer as FastTokenizer

        self.tokenizer = FastTokenizer.from_file(str(path))
        pad_id = self.tokenizer.token_to_id("<pad>")
        if pad_id is None:
            raise ValueError(f"{path} has no <pad> token")
        self.tokenizer.enable_truncation(max_length=length)
        self.tokenizer.enable_padding(length=length, pad_id=pad_id, pad_token="<pad>")
        self.length = length

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64 [len(texts), length]."""
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        return ids, mask


def clean_prompt(text: str) -> str:
    """WanPipeline's prompt_clean without ftfy: HTML entities decoded (twice), runs of
    whitespace collapsed, ends stripped."""
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Checkpoint:
    latent_channels: int
    patch_size: tuple[int, int, int]
    vae_scale_factor_spatial: int
    vae_scale_factor_temporal: int
    latents_mean: tuple[float, ...]
    latents_std: tuple[float, ...]
    max_sequence_length: int
    components: dict[str, str]
    scheduler: UniPCConfig
    tokenizer: Tokenizer

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor_spatial * max(self.patch_size[1], self.patch_size[2])

    @classmethod
    def load(cls, folder: Path) -> Checkpoint:
        meta = json.loads((folder / "pipeline.json").read_text())
        components = dict(meta["components"])
        missing = sorted(set(COMPONENT_IO) - set(components))
        if missing:
            raise ValueError(f"{folder / 'pipeline.json'} names no model for {missing}")
        channels = int(meta["latent_channels"])
        if len(meta["latents_mean"]) != channels or len(meta["latents_std"]) != channels:
            raise ValueError(f"latents_mean/std must have {channels} values")
        length = int(meta["max_sequence_length"])
        return cls(
            latent_channels=channels,
            patch_size=tuple(int(p) for p in meta["patch_size"]),  # type: ignore[arg-type]
            vae_scale_factor_spatial=int(meta["vae_scale_factor_spatial"]),
            vae_scale_factor_temporal=int(meta["vae_scale_factor_temporal"]),
            latents_mean=tuple(float(v) for v in meta["latents_mean"]),
            latents_std=tuple(float(v) for v in meta["latents_std"]),
            max_sequence_length=length,
            components=components,
            scheduler=parse_config(
                json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
            ),
            tokenizer=Tokenizer(folder / "tokenizer" / "tokenizer.json", length),
        )


@dataclass(frozen=True)
class VideoRequest:
    """One request as received; None means "not given"."""

    prompt: str | None
    width: int | None
    height: int | None
    num_frames: int | None
    negative_prompt: str | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Settled:
    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    num_frames: int
    steps: int
    guidance_scale: float
    seed: int


def settle(
    request: VideoRequest, params: PipelineParams, ckpt: Checkpoint, random_seed: Callable[[], int]
) -> Settled:
    """Apply defaults and check every value; RequestError names the input."""
    for name, value in (
        ("PROMPT", request.prompt),
        ("WIDTH", request.width),
        ("HEIGHT", request.height),
        ("NUM_FRAMES", request.num_frames),
    ):
        if value is None:
            raise RequestError(name, "required")
    assert request.prompt is not None and request.width is not None
    assert request.height is not None and request.num_frames is not None
    for name, text in (("PROMPT", request.prompt), ("NEGATIVE_PROMPT", request.negative_prompt)):
        if text is not None and len(text) > params.max_prompt_chars:
            raise RequestError(name, f"{len(text)} characters; at most {params.max_prompt_chars}")
    multiple = ckpt.size_multiple
    for name, side in (("WIDTH", request.width), ("HEIGHT", request.height)):
        if not params.min_side <= side <= params.max_side:
            raise RequestError(name, f"{side} is outside {params.min_side}..{params.max_side}")
        if side % multiple:
            raise RequestError(name, f"{side} is not a multiple of {multiple}")
    if request.width * request.height > params.max_pixels:
        raise RequestError(
            "WIDTH", f"{request.width}x{request.height} exceeds {params.max_pixels} pixels"
        )
    k = ckpt.vae_scale_factor_temporal
    frames = request.num_frames
    if not 1 <= frames <= params.max_frames:
        raise RequestError("NUM_FRAMES", f"{frames} is outside 1..{params.max_frames}")
    if (frames - 1) % k:
        raise RequestError("NUM_FRAMES", f"{frames} is not {k}k+1 (1, {k + 1}, {2 * k + 1}, ...)")
    steps = params.default_steps if request.steps is None else request.steps
    if not 1 <= steps <= params.max_steps:
        raise RequestError("STEPS", f"{steps} is outside 1..{params.max_steps}")
    guidance = (
        params.default_guidance_scale if request.guidance_scale is None else request.guidance_scale
    )
    if not (math.isfinite(guidance) and 0 <= guidance <= params.max_guidance_scale):
        raise RequestError(
            "GUIDANCE_SCALE", f"{guidance} is outside 0..{params.max_guidance_scale}"
        )
    seed = random_seed() if request.seed is None else request.seed
    if not 0 <= seed <= MAX_SEED:
        raise RequestError("SEED", f"{seed} is outside 0..{MAX_SEED}")
    return Settled(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        width=request.width,
        height=request.height,
        num_frames=frames,
        steps=steps,
        guidance_scale=float(guidance),
        seed=seed,
    )


class WanPipeline:
    """Runs settled requests over the three components through `call`."""

    def __init__(self, checkpoint: Checkpoint, call: ComponentCaller) -> None:
        self.ckpt = checkpoint
        self._call = call

    def _run(self, component: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
        outputs = self._call(component, {k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return np.asarray(outputs[COMPONENT_IO[component][1][0]], dtype=np.float32)

    def encode_prompt(self, prompt: str, negative_prompt: str | None, guidance: bool) -> np.ndarray:
        """Text embeddings [B, L, D]: B = 2 with guidance (prompt, then the negative
        prompt or ""), else 1; rows past each text's tokens are zero, as in diffusers."""
        texts = [clean_prompt(prompt)]
        if guidance:
            texts.append(clean_prompt(negative_prompt or ""))
        ids, mask = self.ckpt.tokenizer(texts)
        hidden = self._run("text_encoder", {"input_ids": ids, "attention_mask": mask})
        keep = (np.arange(hidden.shape[1])[None, :] < mask.sum(axis=1)[:, None])[..., None]
        return np.where(keep, hidden, np.float32(0)).astype(np.float32)

    def __call__(self, req: Settled) -> np.ndarray:
        """The video, float32 [T, H, W, 3] RGB in [0, 1]."""
        ck = self.ckpt
        guidance = req.guidance_scale > 1
        embeds = self.encode_prompt(req.prompt, req.negative_prompt, guidance)
        scheduler = UniPC(ck.scheduler, req.steps)
        shape = (
            1,
            ck.latent_channels,
            (req.num_frames - 1) // ck.vae_scale_factor_temporal + 1,
            req.height // ck.vae_scale_factor_spatial,
            req.width // ck.vae_scale_factor_spatial,
        )
        latents = TorchCpuGenerator(req.seed).randn(shape)
        batch = 2 if guidance else 1
        for t in scheduler.timesteps:
            flow = self._run(
                "transformer",
                {
                    "sample": np.concatenate([latents] * batch, axis=0),
                    "timestep": np.full((batch,), t, dtype=np.float32),
                    "encoder_hidden_states": embeds,
                },
            )
            if guidance:
                cond, uncond = flow[:1], flow[1:]
                flow = uncond + np.float32(req.guidance_scale) * (cond - uncond)
            latents = scheduler.step(flow, latents)
        return self.decode(latents)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        ck = self.ckpt
        mean = np.array(ck.latents_mean, dtype=np.float32).reshape(1, -1, 1, 1, 1)
        inv_std = (np.float32(1) / np.array(ck.latents_std, dtype=np.float32)).reshape(
            1, -1, 1, 1, 1
        )
        video = self._run("vae_decoder", {"latent": (latents / inv_std + mean).astype(np.float32)})
        video = np.clip(video[0] * np.float32(0.5) + np.float32(0.5), 0, 1)
        return np.ascontiguousarray(video.transpose(1, 2, 3, 0), dtype=np.float32)


def to_uint8(video: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8, rounding like diffusers' numpy_to_pil."""
    return (video * 255).round().astype(np.uint8)


def request_from(values: dict[str, Any]) -> VideoRequest:
    return VideoRequest(
        prompt=values.get("PROMPT"),
        negative_prompt=values.get("NEGATIVE_PROMPT"),
        width=values.get("WIDTH"),
        height=values.get("HEIGHT"),
        num_frames=values.get("NUM_FRAMES"),
        steps=values.get("STEPS"),
        guidance_scale=values.get("GUIDANCE_SCALE"),
        seed=values.get("SEED"),
    )
