"""DDIM sampling in numpy with the numerics of diffusers' DDIMScheduler built
`from_pretrained` on a checkpoint's scheduler_config.json, as CatVTON builds it.

The noise schedule (betas, cumulative alphas) comes from SDXL's samplers module
(services/models/pybackend/schedulers.py), which reproduces torch's float32 tables bit
for bit; the step is diffusers' formula in float32. With eta > 0 each step adds fresh
noise drawn from the request's generator, in diffusers' order (one draw per step, the
shape of the latents), so a seed gives the same image as in torch.

CatVTON reads the SD-1.5 inpainting repository's scheduler config, which is a
PNDMScheduler's; keys DDIM does not know are ignored and keys it knows but the config
leaves out take DDIM's defaults (clip_sample=True, set_alpha_to_one=True), exactly as
`DDIMScheduler.from_pretrained` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from services.models.pybackend.schedulers import SchedulerConfig, alphas_cumprod


class DdimConfigError(ValueError):
    """The scheduler config asks for something this sampler does not do."""


@dataclass(frozen=True)
class DdimConfig:
    """The DDIMScheduler config keys the sampler reads, with DDIM's defaults."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    set_alpha_to_one: bool = True
    steps_offset: int = 0
    prediction_type: str = "epsilon"
    timestep_spacing: str = "leading"


# Non-default values of these change the numerics in ways not implemented here; a
# checkpoint using them is refused at load instead of sampled differently.
_UNSUPPORTED = {"trained_betas": None, "thresholding": False, "rescale_betas_zero_snr": False}
_ALLOWED = {
    "beta_schedule": ("linear", "scaled_linear"),
    "prediction_type": ("epsilon", "v_prediction", "sample"),
    "timestep_spacing": ("leading", "trailing", "linspace"),
}


def parse_ddim_config(raw: dict[str, Any]) -> DdimConfig:
    """DdimConfig from a scheduler_config.json dict (any scheduler class's)."""
    for key, default in _UNSUPPORTED.items():
        value = raw.get(key, default)
        if value is not None and value != default:
            raise DdimConfigError(f"scheduler config {key}={value!r} is not supported")
    known = {f.name for f in fields(DdimConfig)}
    config = DdimConfig(**{k: v for k, v in raw.items() if k in known and v is not None})
    for key, allowed in _ALLOWED.items():
        if getattr(config, key) not in allowed:
            raise DdimConfigError(
                f"scheduler config {key}={getattr(config, key)!r} is not supported "
                f"(supported: {', '.join(allowed)})"
            )
    return config


class Ddim:
    """DDIMScheduler set to `steps` inference steps; `step` takes the step index."""

    def __init__(self, config: DdimConfig, steps: int) -> None:
        n = config.num_train_timesteps
        if not 1 <= steps <= n:
            raise ValueError(f"steps must be within 1..{n}, got {steps}")
        self.config = config
        self.steps = steps
        self.alphas_cumprod = alphas_cumprod(
            SchedulerConfig(
                num_train_timesteps=n,
                beta_start=config.beta_start,
                beta_end=config.beta_end,
                beta_schedule=config.beta_schedule,
            )
        )
        self.final_alpha_cumprod = (
            np.float32(1.0) if config.set_alpha_to_one else self.alphas_cumprod[0]
        )
        if config.timestep_spacing == "linspace":
            ts = np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
        elif config.timestep_spacing == "leading":
            ratio = n // steps
            ts = (np.arange(0, steps) * ratio).round()[::-1].astype(np.int64)
            ts = ts + config.steps_offset
        else:
            ts = np.round(np.arange(n, 0, -n / steps)).astype(np.int64) - 1
        self.timesteps = ts.copy()
        self.init_noise_sigma = np.float32(1.0)

    def _alpha_prev(self, prev_t: int) -> np.float32:
        return self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod

    def step(
        self,
        model_output: np.ndarray,
        index: int,
        sample: np.ndarray,
        eta: float,
        noise: Callable[[tuple[int, ...]], np.ndarray],
    ) -> np.ndarray:
        """x_t -> x_{t-1} for the `index`-th timestep; `noise(shape)` is called once
        when eta > 0."""
        c = self.config
        t = int(self.timesteps[index])
        prev_t = t - c.num_train_timesteps // self.steps
        a_t = self.alphas_cumprod[t]
        a_prev = self._alpha_prev(prev_t)
        b_t = np.float32(1) - a_t
        if c.prediction_type == "epsilon":
            x0 = (sample - np.sqrt(b_t) * model_output) / np.sqrt(a_t)
            eps = model_output
        elif c.prediction_type == "sample":
            x0 = model_output
            eps = (sample - np.sqrt(a_t) * x0) / np.sqrt(b_t)
        else:
            x0 = np.sqrt(a_t) * sample - np.sqrt(b_t) * model_output
            eps = np.sqrt(a_t) * model_output + np.sqrt(b_t) * sample
        if c.clip_sample:
            x0 = np.clip(x0, -c.clip_sample_range, c.clip_sample_range)
        b_prev = np.float32(1) - a_prev
        variance = (b_prev / b_t) * (np.float32(1) - a_t / a_prev)
        std = np.float32(eta) * np.sqrt(variance)
        direction = np.sqrt(np.float32(1) - a_prev - std * std) * eps
        prev = np.sqrt(a_prev) * x0 + direction
        if eta > 0:
            prev = prev + std * noise(model_output.shape)
        return np.asarray(prev, dtype=np.float32)
