"""CatVTON virtual try-on over separately served components (Chong et al., 2024:
"CatVTON: Concatenation Is All You Need for Virtual Try-On with Diffusion Models").

The person photo, with the garment area masked out, and the garment photo are encoded
by the VAE and concatenated spatially in latent space along the height (person on top,
garment below, as CatVTON's pipeline does); an SD-1.5 inpainting UNet (9 input
channels: noisy latent, mask, masked latent) whose self-attention carries CatVTON's
weights and whose cross-attention is skipped (no text encoder) denoises the pair with
DDIM; classifier-free guidance replaces the garment latent by zeros for the
unconditional branch. The person half of the result is decoded.

Around that, what a service needs: the photos are fitted into the working size
(CatVTON's 768 x 1024 portrait by default) keeping their aspect and padded with white
(CatVTON pads garments the same way; the person is padded rather than cropped so the
whole photo comes back), and the decoded image is cut out of the padding and resized
back to the person photo's size.

Pure numpy and OpenCV; the components are reached through a `ComponentCaller`, which is
BLS inside Triton (model.py) and onnxruntime sessions in tests. Images cross the
boundary as uint8 HxWx3 RGB, the mask as uint8 HxW (>= 128: the garment area to
generate). Noise comes from a torch-compatible generator (torch_rng), so a seed gives
the same image as the torch reference (services/models/catvton/reference.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ddim import Ddim, DdimConfig, parse_ddim_config

from services.models.pybackend.torch_rng import TorchCpuGenerator

# Component keys -> (input names, output names) of the exported ONNX models;
# services/models/catvton/export.py writes exactly these signatures.
COMPONENT_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "unet": (("sample", "timestep"), ("out_sample",)),
    "vae_encoder": (("image",), ("latent",)),
    "vae_decoder": (("latent",), ("image",)),
}
COMPONENTS = tuple(COMPONENT_IO)

ComponentCaller = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]

MAX_SEED = 2**63 - 1
# Latent axis the person and garment are joined along (NCHW): the height, CatVTON's
# `concat_dim = -2`. The published attention weights were trained this way.
CONCAT_AXIS = 2
PAD_VALUE = 255


class RequestError(ValueError):
    """The request itself is wrong; reported as INVALID_ARG with the message
    "<INPUT>: <what is wrong>" so a client can name the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class PipelineParams:
    """Limits and defaults of the pipeline model, from its config.pbtxt `parameters`
    (parsed by triton_bls.parse_params; unknown keys fail the load)."""

    # The size the diffusion runs at, in pixels: CatVTON's 768 x 1024 portrait.
    work_width: int = 768
    work_height: int = 1024
    default_steps: int = 50
    max_steps: int = 100
    default_guidance_scale: float = 2.5
    max_guidance_scale: float = 20.0
    # DDIM's eta; CatVTON samples with 1.0 (fresh noise each step).
    eta: float = 1.0
    # Accepted photo sizes (either image), in pixels per side.
    min_input_side: int = 16
    max_input_side: int = 8192

    def check(self, vae_scale_factor: int = 8) -> PipelineParams:
        """Cross-field checks; ValueError (the model does not load) when they fail."""
        for name in ("work_width", "work_height"):
            side = getattr(self, name)
            # The UNet halves the latent three times (SD-1.5): 64 px steps keep every
            # level whole.
            if side < 64 or side % (vae_scale_factor * 8):
                raise ValueError(f"{name}={side} must be a multiple of {vae_scale_factor * 8}")
        if not 1 <= self.default_steps <= self.max_steps:
            raise ValueError(f"default_steps {self.default_steps} is outside 1..{self.max_steps}")
        if not 0 <= self.default_guidance_scale <= self.max_guidance_scale:
            raise ValueError("default_guidance_scale exceeds max_guidance_scale")
        if not 0 <= self.eta <= 1:
            raise ValueError(f"eta={self.eta} is outside 0..1")
        if not 1 <= self.min_input_side <= self.max_input_side:
            raise ValueError("min_input_side must be within 1..max_input_side")
        return self


@dataclass(frozen=True)
class Checkpoint:
    """What the export wrote to `<pipeline model>/checkpoint/`."""

    components: dict[str, str]
    latent_channels: int
    vae_scale_factor: int
    vae_scaling_factor: float
    scheduler: DdimConfig

    @classmethod
    def load(cls, folder: Path) -> Checkpoint:
        meta = json.loads((folder / "pipeline.json").read_text())
        components = dict(meta["components"])
        missing = [c for c in COMPONENTS if c not in components]
        if missing:
            raise ValueError(f"pipeline.json names no model for {missing}")
        raw = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        return cls(
            components=components,
            latent_channels=int(meta["latent_channels"]),
            vae_scale_factor=int(meta["vae_scale_factor"]),
            vae_scaling_factor=float(meta["vae_scaling_factor"]),
            scheduler=parse_ddim_config(raw),
        )


@dataclass(frozen=True)
class TryOnRequest:
    """One request, parsed; None means "not given" (defaults apply)."""

    person: np.ndarray | None
    garment: np.ndarray | None
    mask: np.ndarray | None
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Settled:
    person: np.ndarray
    garment: np.ndarray
    mask: np.ndarray
    steps: int
    guidance_scale: float
    seed: int


def _check_image(name: str, image: np.ndarray | None, params: PipelineParams) -> np.ndarray:
    if image is None:
        raise RequestError(name, "required")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise RequestError(name, f"must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}")
    low, high = params.min_input_side, params.max_input_side
    if not (low <= image.shape[0] <= high and low <= image.shape[1] <= high):
        raise RequestError(
            name, f"{image.shape[1]}x{image.shape[0]} px; each side must be within {low}..{high}"
        )
    return image


def settle(
    request: TryOnRequest, params: PipelineParams, random_seed: Callable[[], int]
) -> Settled:
    """Apply defaults and check every value; RequestError names the input."""
    person = _check_image("PERSON", request.person, params)
    garment = _check_image("GARMENT", request.garment, params)
    mask = request.mask
    if mask is None:
        raise RequestError("MASK", "required")
    if mask.dtype != np.uint8 or mask.shape != person.shape[:2]:
        raise RequestError(
            "MASK",
            f"must be uint8 HxW at the person photo's size {list(person.shape[:2])}, "
            f"got {mask.dtype} {list(mask.shape)}",
        )
    if not (mask >= 128).any():
        raise RequestError("MASK", "marks nothing (no value >= 128): there is no area to dress")
    steps = params.default_steps if request.steps is None else int(request.steps)
    if not 1 <= steps <= params.max_steps:
        raise RequestError("STEPS", f"{steps} is outside 1..{params.max_steps}")
    guidance = (
        params.default_guidance_scale if request.guidance_scale is None else request.guidance_scale
    )
    if not (math.isfinite(guidance) and 0 <= guidance <= params.max_guidance_scale):
        raise RequestError(
            "GUIDANCE_SCALE", f"{guidance} is outside 0..{params.max_guidance_scale}"
        )
    seed = random_seed() if request.seed is None else int(request.seed)
    if not 0 <= seed <= MAX_SEED:
        raise RequestError("SEED", f"{seed} is outside 0..{MAX_SEED}")
    return Settled(person, garment, mask, steps, float(guidance), seed)


@dataclass(frozen=True)
class Box:
    """Where a photo sits inside the working frame after `fit`."""

    x: int
    y: int
    width: int
    height: int


def fit_box(width: int, height: int, frame_w: int, frame_h: int) -> Box:
    """The largest box of the photo's aspect inside the frame, centred."""
    scale = min(frame_w / width, frame_h / height)
    w = min(frame_w, max(1, round(width * scale)))
    h = min(frame_h, max(1, round(height * scale)))
    return Box((frame_w - w) // 2, (frame_h - h) // 2, w, h)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width * height < image.shape[0] * image.shape[1]
    # Area averaging when shrinking (no aliasing), Lanczos when enlarging.
    method = cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4
    return cv2.resize(image, (width, height), interpolation=method)


def fit_image(image: np.ndarray, frame_w: int, frame_h: int) -> tuple[np.ndarray, Box]:
    """uint8 HxWx3 -> uint8 frame_h x frame_w x 3: resized into `fit_box` and padded
    with white; and the box."""
    box = fit_box(image.shape[1], image.shape[0], frame_w, frame_h)
    out = np.full((frame_h, frame_w, 3), PAD_VALUE, dtype=np.uint8)
    out[box.y : box.y + box.height, box.x : box.x + box.width] = _resize(
        image, box.width, box.height
    )
    return out, box


def fit_mask(mask: np.ndarray, frame_w: int, frame_h: int) -> np.ndarray:
    """uint8 HxW -> uint8 frame_h x frame_w in {0, 255}, placed like `fit_image`; the
    padding is never generated."""
    box = fit_box(mask.shape[1], mask.shape[0], frame_w, frame_h)
    out = np.zeros((frame_h, frame_w), dtype=np.uint8)
    scaled = _resize(mask, box.width, box.height)
    out[box.y : box.y + box.height, box.x : box.x + box.width] = np.where(scaled >= 128, 255, 0)
    return out


def unfit(image: np.ndarray, box: Box, width: int, height: int) -> np.ndarray:
    """float32 frame HxWx3 in [0, 1] -> the box's content at width x height."""
    inner = np.ascontiguousarray(image[box.y : box.y + box.height, box.x : box.x + box.width])
    return np.clip(_resize(inner, width, height), 0, 1).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8, rounding like diffusers' numpy_to_pil."""
    return (image * 255).round().astype(np.uint8)


def to_model(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 [1, 3, H, W] in [-1, 1] (CatVTON's prepare_image)."""
    x = image.astype(np.float32).transpose(2, 0, 1)[None]
    return (x / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


@dataclass(frozen=True)
class TryOnResult:
    # The decoded person half at the working size, float32 [0, 1] HxWx3: what the
    # torch reference computes for the same fitted inputs (parity is checked on it).
    work_image: np.ndarray
    # The same, cut out of the padding and resized back to the person photo's size.
    image: np.ndarray


class CatvtonPipeline:
    """Runs settled requests over the three components through `call`."""

    def __init__(
        self, checkpoint: Checkpoint, params: PipelineParams, call: ComponentCaller
    ) -> None:
        self.ckpt = checkpoint
        self.params = params.check(checkpoint.vae_scale_factor)
        self._call = call

    def _run(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cast = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        return {k: np.asarray(v, dtype=np.float32) for k, v in self._call(component, cast).items()}

    def prepare(self, req: Settled) -> tuple[np.ndarray, np.ndarray, np.ndarray, Box]:
        """(person, garment, mask) fitted into the working frame, and the person's box."""
        w, h = self.params.work_width, self.params.work_height
        person, box = fit_image(req.person, w, h)
        garment, _ = fit_image(req.garment, w, h)
        return person, garment, fit_mask(req.mask, w, h), box

    def __call__(self, req: Settled) -> TryOnResult:
        person, garment, mask, box = self.prepare(req)
        work = self.generate(person, garment, mask, req.steps, req.guidance_scale, req.seed)
        height, width = req.person.shape[:2]
        return TryOnResult(work, unfit(work, box, width, height))

    def generate(
        self,
        person: np.ndarray,
        garment: np.ndarray,
        mask: np.ndarray,
        steps: int,
        guidance_scale: float,
        seed: int,
    ) -> np.ndarray:
        """CatVTON on photos already at the working size: float32 HxWx3 in [0, 1]."""
        ck = self.ckpt
        sf = np.float32(ck.vae_scaling_factor)
        image = to_model(person)
        generate = (mask.astype(np.float32) / np.float32(255) >= 0.5).astype(np.float32)
        generate = generate[None, None]
        masked = (image * (generate < 0.5)).astype(np.float32)
        # Both photos in one encoder call: the VAE normalises per sample.
        both = np.concatenate([masked, to_model(garment)], axis=0)
        latents_both = self._run("vae_encoder", {"image": both})["latent"] * sf
        masked_latent, garment_latent = latents_both[:1], latents_both[1:]
        scale = ck.vae_scale_factor
        # torch's nearest interpolation by an exact integer factor picks every
        # `scale`-th pixel from the first.
        mask_latent = generate[:, :, ::scale, ::scale]
        masked_cat = np.concatenate([masked_latent, garment_latent], axis=CONCAT_AXIS)
        mask_cat = np.concatenate([mask_latent, np.zeros_like(mask_latent)], axis=CONCAT_AXIS)

        scheduler = Ddim(ck.scheduler, steps)
        generator = TorchCpuGenerator(seed)
        latents = (generator.randn(masked_cat.shape) * scheduler.init_noise_sigma).astype(
            np.float32
        )
        guidance = guidance_scale > 1
        if guidance:
            # The unconditional branch sees no garment: zeros in its place.
            uncond = np.concatenate(
                [masked_latent, np.zeros_like(garment_latent)], axis=CONCAT_AXIS
            )
            masked_cat = np.concatenate([uncond, masked_cat], axis=0)
            mask_cat = np.concatenate([mask_cat, mask_cat], axis=0)
        batch = 2 if guidance else 1
        for index, t in enumerate(scheduler.timesteps):
            # DDIM's scale_model_input is the identity.
            noisy = np.concatenate([latents] * batch, axis=0)
            sample = np.concatenate([noisy, mask_cat, masked_cat], axis=1)
            timestep = np.full((batch,), t, dtype=np.float32)
            noise_pred = self._run("unet", {"sample": sample, "timestep": timestep})["out_sample"]
            if guidance:
                uncond_pred, cond_pred = noise_pred[:1], noise_pred[1:]
                noise_pred = uncond_pred + np.float32(guidance_scale) * (cond_pred - uncond_pred)
            latents = scheduler.step(noise_pred, index, latents, self.params.eta, generator.randn)

        person_latent = latents[:, :, : latents.shape[CONCAT_AXIS] // 2]
        decoded = self._run("vae_decoder", {"latent": person_latent / sf})["image"]
        out = np.clip(decoded / np.float32(2) + np.float32(0.5), 0, 1)
        return np.ascontiguousarray(out[0].transpose(1, 2, 0), dtype=np.float32)
