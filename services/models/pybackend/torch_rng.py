"""torch's CPU random normals in numpy: `TorchCpuGenerator(seed).randn(shape)` gives
what `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))` gives
(to float32 rounding), call after call, so a seed means the same image here as in
diffusers without torch inside Triton. Shared by the sdxl and wan_t2v pipeline models.

torch's CPU generator is a standard MT19937 seeded with init_genrand(seed & 0xffffffff),
which is also numpy's legacy seeding. For a contiguous float32 tensor of 16 or more
elements, `normal_` draws one 24-bit uniform per element, then Box-Muller transforms
blocks of 16 (u1 = 1 - data[j], u2 = data[j + 8] -> data[j], data[j + 8]); when the size
is not a multiple of 16 the last 16 elements are redrawn and transformed again.
"""

from __future__ import annotations

import math

import numpy as np


class TorchCpuGenerator:
    """A seeded stream of torch-compatible float32 normals."""

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self._bits = np.random.MT19937()
        # torch keeps the full 64-bit seed but initialises MT19937 with its low 32 bits.
        self._bits._legacy_seeding(seed & 0xFFFFFFFF)

    def _uniform(self, n: int) -> np.ndarray:
        raw = self._bits.random_raw(n).astype(np.uint32)
        return (raw & np.uint32((1 << 24) - 1)).astype(np.float64) * (1.0 / (1 << 24))

    @staticmethod
    def _box_muller_16(block: np.ndarray) -> np.ndarray:
        """Transform uniforms [k, 16] in place of torch's normal_fill_16."""
        u1 = 1.0 - block[:, :8]
        u2 = block[:, 8:]
        radius = np.sqrt(-2.0 * np.log(u1))
        theta = 2.0 * math.pi * u2
        return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)], axis=1)

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        """float32 array of `shape` with the values torch.randn would draw next."""
        size = int(np.prod(shape))
        if size < 16:
            # torch switches to a scalar double-precision sampler below 16 elements;
            # the pipeline never draws fewer (the smallest latent is 4x2x2).
            raise ValueError(f"torch-compatible normals need at least 16 elements, got {shape}")
        # Round each uniform to float32 first, as torch stores them in the output tensor.
        data = self._uniform(size).astype(np.float32).astype(np.float64)
        full = size - size % 16
        out = np.empty(size, dtype=np.float64)
        out[:full] = self._box_muller_16(data[:full].reshape(-1, 16)).reshape(-1)
        if size % 16:
            tail = self._uniform(16).astype(np.float32).astype(np.float64)
            out[size - 16 :] = self._box_muller_16(tail.reshape(1, 16)).reshape(-1)
        return out.astype(np.float32).reshape(shape)
