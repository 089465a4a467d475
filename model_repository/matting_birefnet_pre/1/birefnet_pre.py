"""BiRefNet's input from a photo: resized to work_size x work_size (area when
shrinking, bilinear when enlarging), scaled to [0, 1], normalised with ImageNet's mean
and std, NCHW float32.

Arrays: image uint8 HxWx3 RGB in; float32 [1, 3, work_size, work_size] out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class MattingInputError(ValueError):
    """The request cannot be served; the caller's fault."""


@dataclass(frozen=True)
class PreParams:
    """Knobs; the model reads them from config.pbtxt `parameters`."""

    # BiRefNet's input side (the contract's 1024).
    work_size: int = 1024
    min_side: int = 16
    max_pixels: int = 40_000_000


def check_image(image: np.ndarray, params: PreParams) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MattingInputError(
            f"IMAGE must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
        )
    h, w = image.shape[:2]
    if min(h, w) < params.min_side:
        raise MattingInputError(
            f"IMAGE must be at least {params.min_side} pixels a side, got {w}x{h}"
        )
    if h * w > params.max_pixels:
        raise MattingInputError(f"IMAGE is {w}x{h}; at most {params.max_pixels} pixels")


def preprocess(image: np.ndarray, params: PreParams) -> np.ndarray:
    check_image(image, params)
    s = params.work_size
    h, w = image.shape[:2]
    shrink = h * w > s * s
    small = cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    x = (small.astype(np.float32) * np.float32(1 / 255.0) - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
