"""The samplers of the SDXL pipeline model in numpy, with the numerics of diffusers'
EulerDiscreteScheduler, EulerAncestralDiscreteScheduler and
DPMSolverMultistepScheduler(use_karras_sigmas=True) built `from_config` on a
checkpoint's scheduler_config.json.

Every table (betas, cumulative alphas, sigmas, timesteps) is computed in the dtype and
order diffusers computes it in (torch float32 linspace, a cumulative product with a
double accumulator, float64 numpy interpolation), so betas, alphas and timesteps match
exactly and sigmas to one float32 ulp (torch's vectorised sqrt is not always correctly
rounded, numpy's is); the per-step updates are the same formulas in float32.

Unlike diffusers, the step index is passed in explicitly: the pipeline always knows it
(it sets the begin index itself), and it keeps the scheduler free of hidden counters.

Names a request can ask for (`SCHEDULERS`):
  euler             EulerDiscreteScheduler with the checkpoint's config
  euler_a           EulerAncestralDiscreteScheduler with the checkpoint's config
  dpmpp_2m_karras   DPMSolverMultistepScheduler, dpmsolver++ order 2, Karras sigmas
  euler_trailing    Euler with timestep_spacing="trailing": the few-step setting
                    SDXL-Lightning prescribes
  euler_a_trailing  Euler ancestral with timestep_spacing="trailing": SDXL-Turbo's
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

import numpy as np

SCHEDULERS = ("euler", "euler_a", "dpmpp_2m_karras", "euler_trailing", "euler_a_trailing")


class SchedulerConfigError(ValueError):
    """The checkpoint's scheduler config asks for something these samplers do not do."""


@dataclass(frozen=True)
class SchedulerConfig:
    """The scheduler_config.json keys the samplers read, with diffusers' defaults."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"
    timestep_spacing: str = "linspace"
    steps_offset: int = 0
    interpolation_type: str = "linear"
    use_karras_sigmas: bool = False
    sigma_min: float | None = None
    sigma_max: float | None = None
    final_sigmas_type: str = "zero"


# Keys whose non-default values change the numerics in ways not implemented here; a
# checkpoint using them is refused at load instead of sampled differently.
_UNSUPPORTED = {
    "trained_betas": None,
    "rescale_betas_zero_snr": False,
    "use_exponential_sigmas": False,
    "use_beta_sigmas": False,
    "timestep_type": "discrete",
    "thresholding": False,
}


def parse_scheduler_config(raw: dict[str, Any]) -> SchedulerConfig:
    """SchedulerConfig from a scheduler_config.json dict. Keys belonging to other
    scheduler classes are ignored (as diffusers' from_config does); supported keys
    with values outside what is implemented raise SchedulerConfigError."""
    for key, default in _UNSUPPORTED.items():
        value = raw.get(key, default)
        if value is not None and value != default:
            raise SchedulerConfigError(f"scheduler config {key}={value!r} is not supported")
    known = {f.name for f in fields(SchedulerConfig)}
    values = {k: v for k, v in raw.items() if k in known and v is not None}
    config = SchedulerConfig(**values)
    checks = {
        "beta_schedule": ("linear", "scaled_linear"),
        "prediction_type": ("epsilon", "v_prediction"),
        "timestep_spacing": ("linspace", "leading", "trailing"),
        "interpolation_type": ("linear",),
        "final_sigmas_type": ("zero", "sigma_min"),
    }
    for key, allowed in checks.items():
        if getattr(config, key) not in allowed:
            raise SchedulerConfigError(
                f"scheduler config {key}={getattr(config, key)!r} is not supported "
                f"(supported: {', '.join(allowed)})"
            )
    return config


def _torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace(start, end, steps, dtype=float32) bit for bit: a float32 step,
    then fused multiply-adds from the start for the first half and from the end for
    the second."""
    s32, e32 = np.float32(start), np.float32(end)
    step = np.float32((e32 - s32) / np.float32(steps - 1)) if steps > 1 else np.float32(0)
    idx = np.arange(steps, dtype=np.float64)
    values = np.where(
        idx < steps // 2,
        np.float64(s32) + np.float64(step) * idx,
        np.float64(e32) - np.float64(step) * (steps - idx - 1),
    )
    return values.astype(np.float32)


def alphas_cumprod(config: SchedulerConfig) -> np.ndarray:
    """float32 cumulative product of 1 - beta, accumulated in double like torch.cumprod."""
    n = config.num_train_timesteps
    if config.beta_schedule == "linear":
        betas = _torch_linspace_f32(config.beta_start, config.beta_end, n)
    else:
        root = _torch_linspace_f32(config.beta_start**0.5, config.beta_end**0.5, n)
        betas = (root * root).astype(np.float32)
    alphas = (np.float32(1.0) - betas).astype(np.float32)
    return np.cumprod(alphas.astype(np.float64)).astype(np.float32)


def _train_sigmas(ac: np.ndarray) -> np.ndarray:
    return np.sqrt((np.float32(1) - ac) / ac).astype(np.float32)


def _spaced_timesteps(config: SchedulerConfig, steps: int) -> np.ndarray:
    """Euler-family timesteps (float32, descending) for `steps` inference steps."""
    n = config.num_train_timesteps
    if config.timestep_spacing == "linspace":
        return np.linspace(0, n - 1, steps, dtype=np.float32)[::-1].copy()
    if config.timestep_spacing == "leading":
        ratio = n // steps
        ts = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.float32)
        return ts + np.float32(config.steps_offset)
    ratio = n / steps
    return np.arange(n, 0, -ratio).round().copy().astype(np.float32) - np.float32(1)


def _sigma_to_t(sigma: np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low_idx = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low = log_sigmas[low_idx]
    high = log_sigmas[high_idx]
    w = np.clip((low - log_sigma) / (low - high), 0, 1)
    t = (1 - w) * low_idx + w * high_idx
    return t.reshape(sigma.shape)


def _karras(sigma_min: float, sigma_max: float, steps: int) -> np.ndarray:
    rho = 7.0
    ramp = np.linspace(0, 1, steps)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


class Scheduler(Protocol):
    timesteps: np.ndarray
    sigmas: np.ndarray
    init_noise_sigma: np.float32

    def scale_model_input(self, sample: np.ndarray, index: int) -> np.ndarray: ...

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: Any
    ) -> np.ndarray: ...

    def add_noise(self, original: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray: ...

    @property
    def needs_noise(self) -> bool: ...


class EulerDiscrete:
    """EulerDiscreteScheduler with s_churn = 0 (diffusers' pipeline default)."""

    needs_noise = False

    def __init__(self, config: SchedulerConfig, steps: int) -> None:
        self.config = config
        ac = alphas_cumprod(config)
        train_sigmas = _train_sigmas(ac)
        log_sigmas = np.log(train_sigmas)
        timesteps = _spaced_timesteps(config, steps)
        sigmas = np.interp(timesteps, np.arange(0, len(train_sigmas)), train_sigmas)
        if config.use_karras_sigmas:
            lo = config.sigma_min if config.sigma_min is not None else float(sigmas[-1])
            hi = config.sigma_max if config.sigma_max is not None else float(sigmas[0])
            sigmas = _karras(lo, hi, steps)
            timesteps = np.array([_sigma_to_t(s, log_sigmas) for s in sigmas])
        if config.final_sigmas_type == "sigma_min":
            last = float(((1 - ac[0]) / ac[0]) ** 0.5)
        else:
            last = 0.0
        self.sigmas = np.concatenate([sigmas, [last]]).astype(np.float32)
        self.timesteps = timesteps.astype(np.float32)
        max_sigma = self.sigmas.max()
        if config.timestep_spacing in ("linspace", "trailing"):
            self.init_noise_sigma = np.float32(max_sigma)
        else:
            self.init_noise_sigma = np.float32((max_sigma**2 + np.float32(1)) ** np.float32(0.5))

    def scale_model_input(self, sample: np.ndarray, index: int) -> np.ndarray:
        sigma = self.sigmas[index]
        return (sample / ((sigma**2 + np.float32(1)) ** np.float32(0.5))).astype(np.float32)

    def _pred_original(self, model_output: np.ndarray, sample: np.ndarray, sigma: Any) -> Any:
        if self.config.prediction_type == "epsilon":
            return sample - sigma * model_output
        return model_output * (-sigma / (sigma**2 + np.float32(1)) ** np.float32(0.5)) + (
            sample / (sigma**2 + np.float32(1))
        )

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: Any = None
    ) -> np.ndarray:
        sigma = self.sigmas[index]
        sigma_hat = sigma * np.float32(1)
        pred = self._pred_original(model_output, sample, sigma_hat)
        derivative = (sample - pred) / sigma_hat
        dt = self.sigmas[index + 1] - sigma_hat
        return (sample + derivative * dt).astype(np.float32)

    def add_noise(self, original: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        return (original + noise * self.sigmas[index]).astype(np.float32)


class EulerAncestral(EulerDiscrete):
    """EulerAncestralDiscreteScheduler: an Euler step to sigma_down, then fresh noise
    scaled by sigma_up (drawn from the request's generator, like diffusers)."""

    needs_noise = True

    def __init__(self, config: SchedulerConfig, steps: int) -> None:
        # Euler ancestral has no Karras or sigma_min options in diffusers.
        super().__init__(replace(config, use_karras_sigmas=False, final_sigmas_type="zero"), steps)

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: Any = None
    ) -> np.ndarray:
        if noise is None:
            raise ValueError("euler_a needs a noise source")
        sigma = self.sigmas[index]
        pred = self._pred_original(model_output, sample, sigma)
        sigma_from = self.sigmas[index]
        sigma_to = self.sigmas[index + 1]
        sigma_up = (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** np.float32(0.5)
        sigma_down = (sigma_to**2 - sigma_up**2) ** np.float32(0.5)
        derivative = (sample - pred) / sigma
        dt = sigma_down - sigma
        prev = sample + derivative * dt
        return (prev + noise(model_output.shape) * sigma_up).astype(np.float32)


class DpmSolverMultistepKarras:
    """DPMSolverMultistepScheduler(use_karras_sigmas=True) with its defaults:
    dpmsolver++, solver_order 2, midpoint, lower_order_final, no thresholding."""

    needs_noise = False
    order = 2

    def __init__(self, config: SchedulerConfig, steps: int) -> None:
        self.config = config
        ac = alphas_cumprod(config)
        train_sigmas = _train_sigmas(ac)
        log_sigmas = np.log(train_sigmas)
        flipped = np.flip(train_sigmas).copy()
        sigmas = _karras(float(flipped[-1]), float(flipped[0]), steps)
        timesteps = np.array([_sigma_to_t(s, log_sigmas) for s in sigmas]).round()
        if config.final_sigmas_type == "sigma_min":
            last = float(((1 - ac[0]) / ac[0]) ** 0.5)
        else:
            last = 0.0
        self.sigmas = np.concatenate([sigmas, [last]]).astype(np.float32)
        self.timesteps = timesteps.astype(np.int64)
        self.init_noise_sigma = np.float32(1.0)
        self._outputs: list[np.ndarray] = []
        self._lower_order_nums = 0

    def scale_model_input(self, sample: np.ndarray, index: int) -> np.ndarray:
        return sample

    @staticmethod
    def _alpha_sigma(sigma: np.float32) -> tuple[np.float32, np.float32]:
        alpha_t = np.float32(1) / ((sigma**2 + np.float32(1)) ** np.float32(0.5))
        return alpha_t, sigma * alpha_t

    def _lambda(self, index: int) -> tuple[np.float32, np.float32, np.float32]:
        alpha, sigma = self._alpha_sigma(self.sigmas[index])
        with np.errstate(divide="ignore"):
            # The final sigma is 0: lambda = +inf and exp(-h) = 0, as in torch.
            return alpha, sigma, np.log(alpha) - np.log(sigma)

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: Any = None
    ) -> np.ndarray:
        n = len(self.timesteps)
        short = n < 15
        lower_order_final = index == n - 1 and (short or self.config.final_sigmas_type == "zero")
        alpha_s0, sigma_s0, lambda_s0 = self._lambda(index)
        if self.config.prediction_type == "epsilon":
            x0 = (sample - sigma_s0 * model_output) / alpha_s0
        else:
            x0 = alpha_s0 * sample - sigma_s0 * model_output
        x0 = x0.astype(np.float32)
        self._outputs = (self._outputs + [x0])[-self.order :]
        alpha_t, sigma_t, lambda_t = self._lambda(index + 1)
        with np.errstate(over="ignore", invalid="ignore"):
            h = lambda_t - lambda_s0
            exp_neg_h = np.exp(-h)
        if self._lower_order_nums < 1 or lower_order_final:
            prev = (sigma_t / sigma_s0) * sample - (alpha_t * (exp_neg_h - np.float32(1))) * x0
        else:
            # With solver_order 2, diffusers' lower_order_second case is this branch too.
            _, _, lambda_s1 = self._lambda(index - 1)
            m0, m1 = self._outputs[-1], self._outputs[-2]
            h_0 = lambda_s0 - lambda_s1
            r0 = h_0 / h
            d0, d1 = m0, (np.float32(1) / r0) * (m0 - m1)
            coeff = alpha_t * (exp_neg_h - np.float32(1))
            prev = (sigma_t / sigma_s0) * sample - coeff * d0 - np.float32(0.5) * coeff * d1
        if self._lower_order_nums < self.order:
            self._lower_order_nums += 1
        return np.asarray(prev, dtype=np.float32)

    def add_noise(self, original: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        alpha_t, sigma_t = self._alpha_sigma(self.sigmas[index])
        return (alpha_t * original + sigma_t * noise).astype(np.float32)


def make_scheduler(name: str, config: SchedulerConfig, steps: int) -> Scheduler:
    """A fresh sampler `name` (one of SCHEDULERS) set to `steps` inference steps."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if name == "euler":
        return EulerDiscrete(config, steps)
    if name == "euler_a":
        return EulerAncestral(config, steps)
    if name == "dpmpp_2m_karras":
        return DpmSolverMultistepKarras(config, steps)
    if name == "euler_trailing":
        return EulerDiscrete(replace(config, timestep_spacing="trailing"), steps)
    if name == "euler_a_trailing":
        return EulerAncestral(replace(config, timestep_spacing="trailing"), steps)
    raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")


def strength_start(steps: int, strength: float) -> int:
    """The first schedule index an image-to-image/inpainting run starts at for
    `strength` (diffusers' get_timesteps): int(steps * strength) steps are run."""
    init_timestep = min(int(steps * strength), steps)
    return max(steps - init_timestep, 0)


__all__ = [
    "SCHEDULERS",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerConfigError",
    "make_scheduler",
    "parse_scheduler_config",
    "strength_start",
]
