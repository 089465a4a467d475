"""diffusers' UniPCMultistepScheduler in numpy, in the setting WAN 2.1 checkpoints ship:
flow-matching sigmas shifted by `flow_shift`, flow-velocity model output converted to
x0 (predict_x0), the B(h) predictor-corrector of order `solver_order` with
lower-order warm-up and final steps, and a final sigma of zero.

The arithmetic follows diffusers' float32 tensor code step for step (sigmas as float32
scalars, the corrector's small linear system solved per step), so a run matches
WanPipeline's for the same model outputs to float32 rounding. Settings outside that
path (epsilon/v prediction, Karras/exponential/beta sigmas, dynamic shifting,
thresholding, a `solver_p`) are refused at load rather than approximated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class UniPCConfig:
    num_train_timesteps: int = 1000
    solver_order: int = 2
    solver_type: str = "bh2"
    lower_order_final: bool = True
    flow_shift: float = 1.0
    final_sigmas_type: str = "zero"
    disable_corrector: tuple[int, ...] = ()


# Keys whose value must be exactly this for the numpy port to be the same sampler.
_REQUIRED: dict[str, Any] = {
    "prediction_type": "flow_prediction",
    "use_flow_sigmas": True,
    "predict_x0": True,
    "thresholding": False,
    "use_karras_sigmas": False,
    "use_exponential_sigmas": False,
    "use_beta_sigmas": False,
    "use_dynamic_shifting": False,
    "solver_p": None,
    "shift_terminal": None,
}


def parse_config(raw: dict[str, Any]) -> UniPCConfig:
    """UniPCConfig from the checkpoint's scheduler_config.json; ValueError for anything
    this port does not reproduce."""
    name = raw.get("_class_name", "UniPCMultistepScheduler")
    if name != "UniPCMultistepScheduler":
        raise ValueError(
            f"scheduler {name} is not supported; WAN 2.1 ships UniPCMultistepScheduler"
        )
    for key, expected in _REQUIRED.items():
        value = raw.get(key, expected)
        if value != expected and not (expected is None and not value):
            raise ValueError(f"scheduler {key}={value!r} is not supported (need {expected!r})")
    if raw.get("solver_type", "bh2") not in ("bh1", "bh2"):
        raise ValueError(f"solver_type {raw['solver_type']!r}: need bh1 or bh2")
    if raw.get("final_sigmas_type", "zero") not in ("zero", "sigma_min"):
        raise ValueError(f"final_sigmas_type {raw['final_sigmas_type']!r}: need zero or sigma_min")
    return UniPCConfig(
        num_train_timesteps=int(raw.get("num_train_timesteps", 1000)),
        solver_order=int(raw.get("solver_order", 2)),
        solver_type=str(raw.get("solver_type", "bh2")),
        lower_order_final=bool(raw.get("lower_order_final", True)),
        flow_shift=float(raw.get("flow_shift", 1.0)),
        final_sigmas_type=str(raw.get("final_sigmas_type", "zero")),
        disable_corrector=tuple(int(i) for i in raw.get("disable_corrector", []) or []),
    )


def _f32(x: float) -> np.float32:
    return np.float32(x)


class UniPC:
    """One sampling run: `timesteps` (int64, what the transformer is given) and
    `step(model_output, sample)` called once per timestep in order."""

    def __init__(self, config: UniPCConfig, steps: int) -> None:
        self.config = config
        n = config.num_train_timesteps
        sigmas = np.linspace(1, 1 / n, steps + 1)[:-1]
        shift = config.flow_shift
        sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        if math.fabs(sigmas[0] - 1) < 1e-6:
            sigmas[0] -= 1e-6  # as diffusers: log(alpha) would be -inf at sigma 1
        timesteps = sigmas * n
        last = sigmas[-1] if config.final_sigmas_type == "sigma_min" else 0.0
        self.sigmas = np.concatenate([sigmas, [last]]).astype(np.float32)
        self.timesteps = timesteps.astype(np.int64)
        self.model_outputs: list[np.ndarray | None] = [None] * config.solver_order
        self.lower_order_nums = 0
        self.last_sample: np.ndarray | None = None
        self.this_order = 0
        self.step_index = 0

    def _lambda(self, index: int) -> np.float32:
        sigma = self.sigmas[index]
        alpha = _f32(1) - sigma
        # The final sigma is 0: lambda is +inf there and the update reduces to x0, as in
        # torch (which takes log(0) silently).
        with np.errstate(divide="ignore"):
            return np.log(alpha) - np.log(sigma)

    def _coefficients(self, h: np.float32, rks: Sequence[np.float32], order: int) -> tuple:
        """(hh, h_phi_1, B_h, R, b) of the UniP/UniC update."""
        hh = -h
        h_phi_1 = np.expm1(hh)
        h_phi_k = h_phi_1 / hh - _f32(1)
        factorial = 1
        b_h = hh if self.config.solver_type == "bh1" else np.expm1(hh)
        r_rows, b = [], []
        rk = np.array(list(rks) + [_f32(1)], dtype=np.float32)
        for i in range(1, order + 1):
            r_rows.append(rk ** (i - 1))
            b.append(h_phi_k * _f32(factorial) / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - _f32(1 / factorial)
        return hh, h_phi_1, b_h, np.stack(r_rows), np.array(b, dtype=np.float32)

    def _predict(self, sample: np.ndarray, order: int) -> np.ndarray:
        """UniP: the sample at the next sigma."""
        i = self.step_index
        m0 = self.model_outputs[-1]
        assert m0 is not None
        sigma_t, sigma_s0 = self.sigmas[i + 1], self.sigmas[i]
        alpha_t = _f32(1) - sigma_t
        h = self._lambda(i + 1) - self._lambda(i)
        rks, d1s = [], []
        for k in range(1, order):
            mk = self.model_outputs[-(k + 1)]
            assert mk is not None
            rk = (self._lambda(i - k) - self._lambda(i)) / h
            rks.append(rk)
            d1s.append((mk - m0) / rk)
        _, h_phi_1, b_h, r, b = self._coefficients(h, rks, order)
        x_t = sigma_t / sigma_s0 * sample - alpha_t * h_phi_1 * m0
        if d1s:
            if order == 2:
                rhos = np.array([0.5], dtype=np.float32)
            else:
                rhos = np.linalg.solve(r[:-1, :-1].astype(np.float64), b[:-1]).astype(np.float32)
            pred_res = sum(rho * d for rho, d in zip(rhos, d1s, strict=True))
            x_t = x_t - alpha_t * b_h * pred_res
        return x_t.astype(np.float32)

    def _correct(
        self, model_t: np.ndarray, last: np.ndarray, this: np.ndarray, order: int
    ) -> np.ndarray:
        """UniC: the current sample corrected with the model output at it."""
        i = self.step_index
        m0 = self.model_outputs[-1]
        assert m0 is not None
        sigma_t, sigma_s0 = self.sigmas[i], self.sigmas[i - 1]
        alpha_t = _f32(1) - sigma_t
        h = self._lambda(i) - self._lambda(i - 1)
        rks, d1s = [], []
        for k in range(1, order):
            mk = self.model_outputs[-(k + 1)]
            assert mk is not None
            rk = (self._lambda(i - (k + 1)) - self._lambda(i - 1)) / h
            rks.append(rk)
            d1s.append((mk - m0) / rk)
        _, h_phi_1, b_h, r, b = self._coefficients(h, rks, order)
        if order == 1:
            rhos = np.array([0.5], dtype=np.float32)
        else:
            rhos = np.linalg.solve(r.astype(np.float64), b.astype(np.float64)).astype(np.float32)
        x_t = sigma_t / sigma_s0 * last - alpha_t * h_phi_1 * m0
        corr = sum(rho * d for rho, d in zip(rhos[:-1], d1s, strict=True)) if d1s else 0
        x_t = x_t - alpha_t * b_h * (corr + rhos[-1] * (model_t - m0))
        return x_t.astype(np.float32)

    def step(self, model_output: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """The sample for the next timestep, from the flow the transformer predicted at
        this one (float32 arrays of the latent's shape)."""
        cfg = self.config
        i = self.step_index
        # Flow prediction to x0: x0 = x - sigma * v.
        converted = (sample - self.sigmas[i] * model_output).astype(np.float32)
        if i > 0 and (i - 1) not in cfg.disable_corrector and self.last_sample is not None:
            sample = self._correct(converted, self.last_sample, sample, self.this_order)
        self.model_outputs = [*self.model_outputs[1:], converted]
        order = cfg.solver_order
        if cfg.lower_order_final:
            order = min(order, len(self.timesteps) - i)
        self.this_order = min(order, self.lower_order_nums + 1)
        self.last_sample = sample
        prev = self._predict(sample, self.this_order)
        self.lower_order_nums = min(self.lower_order_nums + 1, cfg.solver_order)
        self.step_index += 1
        return prev
