"""Tiled super-resolution over any ONNX upscaler of the upscale contracts (float32
NCHW RGB in [0, 1] -> the same at model_scale x the size): Real-ESRGAN x4 and the
provisioned RRDN x4 (services/models/contracts.py). Pure numpy/OpenCV: the Triton
front is upscale_model.py; tests run this in-process.

The image is cut into tiles of `tile` px (cores) that overlap by `overlap` px; each
tile is run with `pad` px of context on every side (cropped off the result, so the
network's zero padding never lands inside a core), and overlapping cores are blended
with linear ramps. Every network input has the same size, so tiles batch.

Memory is bounded by one row of tiles: finished output rows are written out (and
resampled to the requested scale) as soon as no later tile touches them, so a 2048 px
wide input at 4x holds ~100 MB of float accumulators on top of the uint8 result.

Arrays: image uint8 HxWx3 RGB in, uint8 (scale*H)x(scale*W)x3 out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# The ONNX model: float32 [N, 3, h, w] -> float32 [N, 3, m*h, m*w].
RunFn = Callable[[np.ndarray], np.ndarray]
SCALES = (2, 4)


class UpscaleInputError(ValueError):
    """The request cannot be served (bad shape, scale or size); the caller's fault."""


class ModelOutputError(RuntimeError):
    """The ONNX model answered with a shape the contract does not allow."""


@dataclass(frozen=True)
class TileParams:
    """Knobs; the model reads them from config.pbtxt `parameters`."""

    # The ONNX model the front calls over BLS.
    network_model: str = "upscale_realesrgan_onnx"
    # Core tile side in input pixels, and the context run around it (discarded).
    tile: int = 256
    pad: int = 16
    # Cores overlap by this many input pixels and are blended across it.
    overlap: int = 16
    # Tiles per call to the ONNX model (Triton may batch further across requests).
    tile_batch: int = 4
    # The ONNX model's own scale factor (Real-ESRGAN x4plus: 4, RRDN x2: 2); checked on
    # every call.
    model_scale: int = 4
    min_side: int = 1
    max_output_side: int = 8192

    def __post_init__(self) -> None:
        if self.tile < 8 or self.pad < 0 or self.tile_batch < 1 or self.min_side < 1:
            raise ValueError("tile must be >= 8, pad >= 0, tile_batch >= 1, min_side >= 1")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be within 0..tile-1, got {self.overlap}")
        if self.model_scale not in (1, 2, 4, 8):
            raise ValueError(f"model_scale must be 1, 2, 4 or 8, got {self.model_scale}")


def parse_params(raw: dict[str, str]) -> TileParams:
    """TileParams from config.pbtxt strings, as the Triton front parses them
    (triton_bls.parse_params, which needs Triton's stub): unknown keys and bad values
    raise."""
    values: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(TileParams)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"unknown upscale parameters {unknown}; known: {sorted(fields)}")
    for key, text in raw.items():
        if fields[key].type == "str":
            values[key] = text
            continue
        try:
            values[key] = int(text)
        except ValueError as exc:
            raise ValueError(f"upscale parameter {key}={text!r} is not an int") from exc
    return TileParams(**values)


def check_request(image: np.ndarray, scale: int, params: TileParams) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise UpscaleInputError(
            f"IMAGE must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
        )
    if scale not in SCALES:
        raise UpscaleInputError(f"SCALE must be one of {SCALES}, got {scale}")
    h, w = image.shape[:2]
    if min(h, w) < params.min_side:
        raise UpscaleInputError(f"IMAGE must be at least {params.min_side} px a side, got {w}x{h}")
    if max(h, w) * scale > params.max_output_side:
        raise UpscaleInputError(
            f"{w}x{h} at {scale}x would be {w * scale}x{h * scale}; the limit is "
            f"{params.max_output_side} px a side"
        )


def core_size(length: int, tile: int, overlap: int) -> int:
    """The side of equal cores, at most `tile`, that cover 0..length in the fewest
    cores overlapping by `overlap`, spread evenly: 520 px with tile 512 makes two
    cores of 268, not a 512 and a second 512 shifted back over the first (which would
    run the network on nearly twice the pixels)."""
    if length <= tile:
        return length
    n = -(-(length - overlap) // (tile - overlap))
    return -(-(length + (n - 1) * overlap) // n)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of cores of `tile` px covering 0..length with at least `overlap`
    px between neighbours; the last core is moved inwards so every core is whole."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return sorted(set(starts))


def _ramp(n_out: int, m: int, overlap: int, before: bool, after: bool) -> np.ndarray:
    """Blend weights along one axis of a core's output (n_out = m x core px): rising
    over the first `overlap` input px when a core precedes, falling over the last
    when one follows; never 0, so every pixel has weight."""
    u = (np.arange(n_out, dtype=np.float32) + 0.5) / m  # input-px position of each output px
    w = np.ones(n_out, np.float32)
    if overlap > 0:
        if before:
            w = np.minimum(w, u / overlap)
        if after:
            w = np.minimum(w, (n_out / m - u) / overlap)
    return np.maximum(w, 1e-3)


def _window(start: int, core: int, pad: int, length: int) -> tuple[int, int]:
    """(lo, hi) of the network input around a core: core + pad each side, shifted to
    stay inside 0..length with the same size."""
    size = min(length, core + 2 * pad)
    lo = min(max(0, start - pad), length - size)
    return lo, lo + size


def upscale_tiled(image: np.ndarray, scale: int, run: RunFn, params: TileParams) -> np.ndarray:
    """`image` (uint8 HxWx3 RGB) enlarged `scale` times through `run`, tile by tile.
    The model's own scale is params.model_scale; other requested scales resample its
    result (area when smaller, Lanczos when larger)."""
    check_request(image, scale, params)
    h, w = image.shape[:2]
    m = params.model_scale
    th = core_size(h, params.tile, params.overlap)
    tw = core_size(w, params.tile, params.overlap)
    ys, xs = tile_starts(h, th, params.overlap), tile_starts(w, tw, params.overlap)
    out = np.empty((h * scale, w * scale, 3), np.uint8) if scale <= m else None
    full = np.empty((h * m, w * m, 3), np.uint8) if scale > m else None

    def emit(y0: int, rows: np.ndarray) -> None:
        """Finished model-scale rows starting at model-scale row y0."""
        if full is not None:
            full[y0 : y0 + len(rows)] = rows
        elif scale == m:
            out[y0 : y0 + len(rows)] = rows  # type: ignore[index]
        else:
            f = m // scale
            small = cv2.resize(rows, (w * scale, len(rows) // f), interpolation=cv2.INTER_AREA)
            out[y0 // f : y0 // f + len(small)] = small  # type: ignore[index]

    acc = np.zeros((0, w * m, 3), np.float32)
    wsum = np.zeros((0, w * m), np.float32)
    acc_top = 0  # model-scale row of acc[0]
    source = image.astype(np.float32) * np.float32(1.0 / 255.0)
    for k, y0 in enumerate(ys):
        # Grow the accumulators to cover this row of cores.
        bottom = (y0 + th) * m
        if bottom > acc_top + len(acc):
            grow = bottom - (acc_top + len(acc))
            acc = np.concatenate([acc, np.zeros((grow, w * m, 3), np.float32)])
            wsum = np.concatenate([wsum, np.zeros((grow, w * m), np.float32)])
        wy = _ramp(th * m, m, params.overlap, y0 > 0, y0 + th < h)
        ylo, yhi = _window(y0, th, params.pad, h)
        jobs = []
        for x0 in xs:
            xlo, xhi = _window(x0, tw, params.pad, w)
            jobs.append((x0, xlo, source[ylo:yhi, xlo:xhi]))
        for b in range(0, len(jobs), params.tile_batch):
            chunk = jobs[b : b + params.tile_batch]
            batch = np.ascontiguousarray(np.stack([c[2] for c in chunk]).transpose(0, 3, 1, 2))
            result = run(batch)
            want = (len(chunk), 3, (yhi - ylo) * m, (chunk[0][2].shape[1]) * m)
            if result.shape != want:
                raise ModelOutputError(
                    f"the upscaler returned {list(result.shape)} for {list(batch.shape)}; "
                    f"expected {list(want)} (model_scale {m})"
                )
            for (x0, xlo, _), tile_out in zip(chunk, result, strict=True):
                core = tile_out[
                    :,
                    (y0 - ylo) * m : (y0 - ylo + th) * m,
                    (x0 - xlo) * m : (x0 - xlo + tw) * m,
                ].transpose(1, 2, 0)
                wx = _ramp(tw * m, m, params.overlap, x0 > 0, x0 + tw < w)
                weight = wy[:, None] * wx[None, :]
                r0 = y0 * m - acc_top
                acc[r0 : r0 + th * m, x0 * m : (x0 + tw) * m] += core * weight[..., None]
                wsum[r0 : r0 + th * m, x0 * m : (x0 + tw) * m] += weight
        # Rows above the next row of cores are final.
        done = (ys[k + 1] if k + 1 < len(ys) else h) * m
        n = done - acc_top
        rows = acc[:n]
        np.divide(rows, wsum[:n, :, None], out=rows)
        np.clip(rows, 0.0, 1.0, out=rows)
        rows *= 255.0
        rows += 0.5
        emit(acc_top, rows.astype(np.uint8))
        acc, wsum, acc_top = acc[n:].copy(), wsum[n:].copy(), done
    if full is not None:
        return cv2.resize(full, (w * scale, h * scale), interpolation=cv2.INTER_LANCZOS4)
    assert out is not None
    return out
