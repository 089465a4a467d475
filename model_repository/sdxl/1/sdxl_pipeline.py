"""The SDXL pipeline over separately served components: prompt encoding with both
CLIP encoders (classifier-free guidance with a negative prompt, or SDXL's zeroed
negative embedding when none is given), seeded latents, the sampler loop, VAE decode;
text-to-image and inpainting (9-channel inpainting UNets, and 4-channel UNets by
re-noising the kept area each step).

It reproduces diffusers' StableDiffusionXLPipeline and StableDiffusionXLInpaintPipeline
for the same weights, seed, scheduler and step count: the same tokens, the same random
draws in the same order from a torch-compatible generator (torch_rng), the same
scheduler numerics (schedulers), the same pre- and post-processing.

Pure numpy; the components are reached through a `ComponentCaller`, which is BLS
inside Triton (model.py) and onnxruntime sessions in tests. Arrays follow diffusers'
NCHW float32 inside; images cross the boundary as uint8 HxWx3 RGB and masks as uint8
HxW where >= 128 means "generate here".
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.models.pybackend.clip_tokenizer import ClipTokenizer
from services.models.pybackend.schedulers import (
    SCHEDULERS,
    SchedulerConfig,
    make_scheduler,
    parse_scheduler_config,
    strength_start,
)
from services.models.pybackend.torch_rng import TorchCpuGenerator

# Component keys -> (input names, output names) of the exported ONNX models; export.py
# writes exactly these signatures.
COMPONENT_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text_encoder": (("input_ids",), ("hidden_states",)),
    "text_encoder_2": (("input_ids",), ("hidden_states", "text_embeds")),
    "unet": (
        ("sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"),
        ("out_sample",),
    ),
    "vae_encoder": (("image",), ("latent_mean", "latent_std")),
    "vae_decoder": (("latent",), ("image",)),
}

ComponentCaller = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]

MODES = ("txt2img", "inpaint")
MAX_SEED = 2**63 - 1


class RequestError(ValueError):
    """The request itself is wrong (a value out of range, a missing input): the caller's
    fault, reported as INVALID_ARG with the message "<INPUT>: <what is wrong>" so a
    client can name the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class PipelineParams:
    """Limits and defaults of one pipeline model, from its config.pbtxt `parameters`.

    Sizes are in pixels; width and height must also be multiples of the VAE's scale
    factor (8 for SDXL)."""

    # txt2img or inpaint: which request inputs the model reads.
    mode: str = "txt2img"
    min_side: int = 64
    max_side: int = 2048
    max_pixels: int = 2_359_296  # 1536 x 1536
    max_steps: int = 100
    max_guidance_scale: float = 30.0
    max_prompt_chars: int = 2000
    # Used when a request leaves the input out.
    default_scheduler: str = "euler"
    default_steps: int = 30
    default_guidance_scale: float = 5.0
    default_strength: float = 1.0


_PARAM_FIELDS = {f.name: f for f in dataclasses.fields(PipelineParams)}


def parse_params(raw: dict[str, str]) -> PipelineParams:
    """PipelineParams from config.pbtxt string parameters; unknown keys, values of the
    wrong type and values out of range raise ValueError (the model does not load)."""
    unknown = sorted(set(raw) - set(_PARAM_FIELDS))
    if unknown:
        raise ValueError(f"unknown pipeline parameters {unknown}; known: {sorted(_PARAM_FIELDS)}")
    values: dict[str, Any] = {}
    for key, text in raw.items():
        kind = _PARAM_FIELDS[key].type
        try:
            if kind == "int":
                values[key] = int(text)
            elif kind == "float":
                values[key] = float(text)
            else:
                values[key] = text.strip()
        except ValueError as exc:
            raise ValueError(f"pipeline parameter {key}={text!r} is not a {kind}") from exc
    params = PipelineParams(**values)
    if params.mode not in MODES:
        raise ValueError(f"mode={params.mode!r}; must be one of {MODES}")
    if params.default_scheduler not in SCHEDULERS:
        raise ValueError(
            f"default_scheduler={params.default_scheduler!r}; must be one of {SCHEDULERS}"
        )
    positive = ("min_side", "max_side", "max_pixels", "max_steps", "max_prompt_chars")
    for key in positive:
        if getattr(params, key) <= 0:
            raise ValueError(f"{key} must be positive, got {getattr(params, key)}")
    if params.min_side > params.max_side:
        raise ValueError(f"min_side {params.min_side} exceeds max_side {params.max_side}")
    if not 1 <= params.default_steps <= params.max_steps:
        raise ValueError(f"default_steps {params.default_steps} not in 1..{params.max_steps}")
    if not 0 <= params.default_guidance_scale <= params.max_guidance_scale:
        raise ValueError("default_guidance_scale must lie in 0..max_guidance_scale")
    if not 0 < params.default_strength <= 1:
        raise ValueError(f"default_strength {params.default_strength} not in (0, 1]")
    return params


@dataclass(frozen=True)
class Checkpoint:
    """What the pipeline needs to know about the exported checkpoint (pipeline.json,
    written by the export, plus the scheduler config and both tokenizers)."""

    unet_in_channels: int
    latent_channels: int
    vae_scale_factor: int
    vae_scaling_factor: float
    vae_shift_factor: float | None
    latents_mean: tuple[float, ...] | None
    latents_std: tuple[float, ...] | None
    force_zeros_for_empty_prompt: bool
    requires_aesthetics_score: bool
    components: dict[str, str]
    # component key -> input name -> numpy dtype name the component takes
    input_dtypes: dict[str, dict[str, str]]
    scheduler: SchedulerConfig
    tokenizer: ClipTokenizer
    tokenizer_2: ClipTokenizer

    @classmethod
    def load(cls, folder: Path) -> Checkpoint:
        meta = json.loads((folder / "pipeline.json").read_text())
        scheduler = parse_scheduler_config(
            json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        )
        components = dict(meta["components"])
        missing = sorted(set(COMPONENT_IO) - set(components))
        if missing:
            raise ValueError(f"{folder / 'pipeline.json'} names no model for {missing}")
        if meta["unet_in_channels"] not in (4, 9):
            raise ValueError(f"UNet has {meta['unet_in_channels']} input channels; need 4 or 9")
        mean, std = meta.get("latents_mean"), meta.get("latents_std")
        return cls(
            unet_in_channels=int(meta["unet_in_channels"]),
            latent_channels=int(meta["latent_channels"]),
            vae_scale_factor=int(meta["vae_scale_factor"]),
            vae_scaling_factor=float(meta["vae_scaling_factor"]),
            vae_shift_factor=meta.get("vae_shift_factor"),
            latents_mean=tuple(mean) if mean is not None else None,
            latents_std=tuple(std) if std is not None else None,
            force_zeros_for_empty_prompt=bool(meta["force_zeros_for_empty_prompt"]),
            requires_aesthetics_score=bool(meta.get("requires_aesthetics_score", False)),
            components=components,
            input_dtypes={k: dict(v) for k, v in meta["input_dtypes"].items()},
            scheduler=scheduler,
            tokenizer=ClipTokenizer.from_dir(folder / "tokenizer"),
            tokenizer_2=ClipTokenizer.from_dir(folder / "tokenizer_2"),
        )


@dataclass(frozen=True)
class GenerationRequest:
    """One request, already parsed; None means "not given" (defaults apply)."""

    prompt: str
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    scheduler: str | None = None
    strength: float | None = None
    image: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class Settled:
    """A request with defaults applied and every value checked."""

    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int
    scheduler: str
    strength: float
    image: np.ndarray | None
    mask: np.ndarray | None


def settle(
    request: GenerationRequest,
    params: PipelineParams,
    vae_scale_factor: int,
    random_seed: Callable[[], int],
) -> Settled:
    """Apply defaults and check limits; raises RequestError naming the input."""
    for name, text in (("PROMPT", request.prompt), ("NEGATIVE_PROMPT", request.negative_prompt)):
        if text is not None and len(text) > params.max_prompt_chars:
            raise RequestError(name, f"{len(text)} characters; at most {params.max_prompt_chars}")
    image, mask = request.image, request.mask
    if params.mode == "inpaint":
        if image is None or mask is None:
            raise RequestError("INIT_IMAGE" if image is None else "MASK", "required for inpainting")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise RequestError(
                "INIT_IMAGE", f"must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
            )
        if mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
            raise RequestError(
                "MASK",
                f"must be uint8 HxW at the image's size {list(image.shape[:2])}, "
                f"got {mask.dtype} {list(mask.shape)}",
            )
        height, width = image.shape[:2]
        for name, given, actual in (
            ("WIDTH", request.width, width),
            ("HEIGHT", request.height, height),
        ):
            if given is not None and given != actual:
                raise RequestError(name, f"{given} disagrees with INIT_IMAGE ({actual})")
    else:
        if image is not None or mask is not None:
            raise RequestError(
                "INIT_IMAGE", "this is a text-to-image model; images go to the inpainting model"
            )
        if request.width is None or request.height is None:
            raise RequestError("WIDTH" if request.width is None else "HEIGHT", "required")
        width, height = request.width, request.height
    field = "INIT_IMAGE" if params.mode == "inpaint" else None
    for name, side in (("WIDTH", width), ("HEIGHT", height)):
        if not params.min_side <= side <= params.max_side:
            raise RequestError(
                field or name, f"{side} is outside {params.min_side}..{params.max_side}"
            )
        if side % vae_scale_factor:
            raise RequestError(field or name, f"{side} is not a multiple of {vae_scale_factor}")
    if width * height > params.max_pixels:
        raise RequestError(field or "WIDTH", f"{width}x{height} exceeds {params.max_pixels} pixels")
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
    scheduler = request.scheduler or params.default_scheduler
    if scheduler not in SCHEDULERS:
        raise RequestError("SCHEDULER", f"{scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    strength = params.default_strength if request.strength is None else request.strength
    if not (math.isfinite(strength) and 0 < strength <= 1):
        raise RequestError("STRENGTH", f"{strength} is outside (0, 1]")
    if params.mode == "inpaint" and steps - strength_start(steps, strength) < 1:
        raise RequestError("STRENGTH", f"{strength} with {steps} steps leaves no step to run")
    seed = random_seed() if request.seed is None else request.seed
    if not 0 <= seed <= MAX_SEED:
        raise RequestError("SEED", f"{seed} is outside 0..{MAX_SEED}")
    return Settled(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        width=width,
        height=height,
        steps=steps,
        guidance_scale=float(guidance),
        seed=seed,
        scheduler=scheduler,
        strength=float(strength),
        image=image,
        mask=mask,
    )


def _nearest_resize(mask: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """torch.nn.functional.interpolate(mode="nearest") on [N, C, H, W]."""
    in_h, in_w = mask.shape[-2:]

    # torch computes the source index in float32: floor(dst * float(in / out)).
    def index(n_out: int, n_in: int) -> np.ndarray:
        scale = np.float32(n_in) / np.float32(n_out)
        src = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
        return np.minimum(src, n_in - 1)

    rows, cols = index(out_h, in_h), index(out_w, in_w)
    return mask[..., rows[:, None], cols[None, :]]


class SdxlPipeline:
    """Runs settled requests over the five components through `call`."""

    def __init__(
        self, checkpoint: Checkpoint, params: PipelineParams, call: ComponentCaller
    ) -> None:
        if params.mode == "txt2img" and checkpoint.unet_in_channels != 4:
            raise ValueError(
                f"text-to-image needs a 4-channel UNet; this checkpoint's has "
                f"{checkpoint.unet_in_channels} (an inpainting UNet: serve it as sdxl_inpaint)"
            )
        self.ckpt = checkpoint
        self.params = params
        self._call = call

    def _run(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        dtypes = self.ckpt.input_dtypes[component]
        cast = {name: np.ascontiguousarray(a, dtype=dtypes[name]) for name, a in inputs.items()}
        outputs = self._call(component, cast)
        return {
            name: np.asarray(a, dtype=np.float32) if a.dtype.kind == "f" else a
            for name, a in outputs.items()
        }

    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """(prompt_embeds [B, 77, D1 + D2], pooled [B, P]); B = 2 (negative first) with
        guidance, else 1. Diffusers zeroes the negative embeddings when no negative
        prompt is given and the checkpoint says force_zeros_for_empty_prompt."""
        zero_negative = negative_prompt is None and self.ckpt.force_zeros_for_empty_prompt
        texts = [prompt]
        if guidance and not zero_negative:
            texts = [negative_prompt or "", prompt]
        ids1 = self.ckpt.tokenizer(texts)
        ids2 = self.ckpt.tokenizer_2(texts)
        h1 = self._run("text_encoder", {"input_ids": ids1})["hidden_states"]
        out2 = self._run("text_encoder_2", {"input_ids": ids2})
        embeds = np.concatenate([h1, out2["hidden_states"]], axis=-1)
        pooled = out2["text_embeds"]
        if guidance and zero_negative:
            embeds = np.concatenate([np.zeros_like(embeds), embeds], axis=0)
            pooled = np.concatenate([np.zeros_like(pooled), pooled], axis=0)
        return embeds, pooled

    def _time_ids(self, height: int, width: int, guidance: bool) -> np.ndarray:
        if self.params.mode == "inpaint" and self.ckpt.requires_aesthetics_score:
            positive = [height, width, 0, 0, 6.0]
            negative = [height, width, 0, 0, 2.5]
        else:
            positive = negative = [height, width, 0, 0, height, width]
        rows = [negative, positive] if guidance else [positive]
        return np.array(rows, dtype=np.float32)

    def _encode_image(self, image: np.ndarray, generator: TorchCpuGenerator) -> np.ndarray:
        """Scaled latents sampled from the VAE posterior (diffusers' retrieve_latents
        with sample_mode="sample": one draw from the request's generator)."""
        out = self._run("vae_encoder", {"image": image})
        mean, std = out["latent_mean"], out["latent_std"]
        latents = mean + std * generator.randn(mean.shape)
        return (np.float32(self.ckpt.vae_scaling_factor) * latents).astype(np.float32)

    def _decode(self, latents: np.ndarray) -> np.ndarray:
        ck = self.ckpt
        if ck.latents_mean is not None and ck.latents_std is not None:
            mean = np.array(ck.latents_mean, dtype=np.float32).reshape(1, -1, 1, 1)
            std = np.array(ck.latents_std, dtype=np.float32).reshape(1, -1, 1, 1)
            latents = latents * std / np.float32(ck.vae_scaling_factor) + mean
        else:
            latents = latents / np.float32(ck.vae_scaling_factor)
        image = self._run("vae_decoder", {"latent": latents.astype(np.float32)})["image"]
        image = np.clip(image / np.float32(2) + np.float32(0.5), 0, 1)
        return np.ascontiguousarray(image[0].transpose(1, 2, 0), dtype=np.float32)

    def __call__(self, req: Settled) -> np.ndarray:
        """The generated image, float32 HxWx3 RGB in [0, 1] (diffusers' output_type="np")."""
        ck = self.ckpt
        guidance = req.guidance_scale > 1
        embeds, pooled = self.encode_prompt(req.prompt, req.negative_prompt, guidance)
        time_ids = self._time_ids(req.height, req.width, guidance)
        scheduler = make_scheduler(req.scheduler, ck.scheduler, req.steps)
        generator = TorchCpuGenerator(req.seed)
        shape = (
            1,
            ck.latent_channels,
            req.height // ck.vae_scale_factor,
            req.width // ck.vae_scale_factor,
        )

        start = 0
        mask_latent = masked_latents = image_latents = noise = None
        if self.params.mode == "inpaint":
            assert req.image is not None and req.mask is not None
            start = strength_start(req.steps, req.strength)
            init = (req.image.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
            init = (init * np.float32(2) - np.float32(1)).astype(np.float32)
            mask = (req.mask.astype(np.float32) / np.float32(255) >= 0.5).astype(np.float32)[
                None, None
            ]
            masked_image = (init * (mask < 0.5)).astype(np.float32)
            full_strength = req.strength == 1.0
            # Draw order is diffusers': image latents (when needed), then the noise,
            # then the masked-image latents.
            if ck.unet_in_channels == 4 or not full_strength:
                image_latents = self._encode_image(init, generator)
            noise = generator.randn(shape)
            if full_strength:
                latents = (noise * scheduler.init_noise_sigma).astype(np.float32)
            else:
                assert image_latents is not None
                latents = scheduler.add_noise(image_latents, noise, start)
            masked_latents = self._encode_image(masked_image, generator)
            mask_latent = _nearest_resize(mask, shape[2], shape[3])
        else:
            latents = (generator.randn(shape) * scheduler.init_noise_sigma).astype(np.float32)

        batch = 2 if guidance else 1
        timesteps = scheduler.timesteps
        for index in range(start, len(timesteps)):
            model_in = np.concatenate([latents] * batch, axis=0)
            model_in = scheduler.scale_model_input(model_in, index)
            if ck.unet_in_channels == 9:
                assert mask_latent is not None and masked_latents is not None
                model_in = np.concatenate(
                    [
                        model_in,
                        np.concatenate([mask_latent] * batch, axis=0),
                        np.concatenate([masked_latents] * batch, axis=0),
                    ],
                    axis=1,
                )
            t = np.full((batch,), timesteps[index], dtype=np.float32)
            noise_pred = self._run(
                "unet",
                {
                    "sample": model_in,
                    "timestep": t,
                    "encoder_hidden_states": embeds,
                    "text_embeds": pooled,
                    "time_ids": time_ids,
                },
            )["out_sample"]
            if guidance:
                uncond, text = noise_pred[:1], noise_pred[1:]
                noise_pred = uncond + np.float32(req.guidance_scale) * (text - uncond)
            latents = scheduler.step(noise_pred, index, latents, generator.randn)
            if self.params.mode == "inpaint" and ck.unet_in_channels == 4:
                # A 4-channel UNet knows nothing of the mask: put the kept area back,
                # noised to the next step's level, after every step.
                assert image_latents is not None and noise is not None and mask_latent is not None
                kept = image_latents
                if index < len(timesteps) - 1:
                    kept = scheduler.add_noise(image_latents, noise, index + 1)
                latents = ((1 - mask_latent) * kept + mask_latent * latents).astype(np.float32)
        return self._decode(latents)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] HxWx3 -> uint8, rounding like diffusers' numpy_to_pil."""
    return (image * 255).round().astype(np.uint8)
