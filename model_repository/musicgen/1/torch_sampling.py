"""torch.multinomial(probs, 1) on the CPU, in numpy: the draws transformers' sampling
makes after `torch.manual_seed(seed)`, so a seed gives the same music here as in
transformers' MusicgenForConditionalGeneration.generate(do_sample=True).

torch's CPU multinomial draws a single sample per row as argmax(probs / q) with
q = empty_like(probs).exponential_(1) (the exponential-race form of Gumbel-max). Its
CPU exponential_ takes one 64-bit value per element from the generator's MT19937, two
32-bit outputs high word first, keeps the low 53 bits as u in [0, 1), and returns
-log1p(-u) in double precision, rounded to the tensor's float32. The generator is
MT19937 seeded with the low 32 bits of the seed (numpy's legacy seeding is the same
init_genrand).
"""

from __future__ import annotations

import numpy as np

_MASK_53 = np.uint64((1 << 53) - 1)


class TorchCpuGenerator:
    """A seeded stream of torch-compatible exponential draws."""

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self._bits = np.random.MT19937()
        self._bits._legacy_seeding(seed & 0xFFFFFFFF)

    def exponential(self, shape: tuple[int, ...]) -> np.ndarray:
        """float32 array of `shape` with what torch's `exponential_(1)` would draw next
        into a contiguous float32 tensor of that shape."""
        size = int(np.prod(shape))
        raw = self._bits.random_raw(2 * size).astype(np.uint64)
        words = (raw[0::2] << np.uint64(32)) | raw[1::2]
        uniform = (words & _MASK_53).astype(np.float64) * (1.0 / (1 << 53))
        return (-np.log1p(-uniform)).astype(np.float32).reshape(shape)


def softmax(scores: np.ndarray) -> np.ndarray:
    """float32 softmax over the last axis as torch computes it (exp of the shifted
    scores, times the reciprocal of their sum); -inf scores get probability 0."""
    scores = np.asarray(scores, dtype=np.float32)
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted * (np.float32(1) / shifted.sum(axis=-1, keepdims=True, dtype=np.float32))


def multinomial_one(probs: np.ndarray, generator: TorchCpuGenerator) -> np.ndarray:
    """One index per row of float32 `probs` [rows, n], as torch.multinomial(probs, 1)
    picks it with the same generator state (ties go to the first index, as argmax)."""
    q = generator.exponential(probs.shape)
    return np.argmax(np.asarray(probs, dtype=np.float32) / q, axis=-1).astype(np.int64)
