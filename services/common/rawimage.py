"""Conversions between numpy arrays and the `RawImage` proto message.

Arrays are uint8 HWC (RGB or RGBA), or HW for a single channel."""

from __future__ import annotations

import numpy as np
from lightbox.v1 import compositor_pb2

from services.common.errors import InvalidParameter


def to_proto(array: np.ndarray) -> compositor_pb2.RawImage:
    if array.dtype != np.uint8:
        raise TypeError(f"RawImage needs uint8, got {array.dtype}")
    if array.ndim == 2:
        h, w = array.shape
        c = 1
    elif array.ndim == 3 and array.shape[2] in (1, 3, 4):
        h, w, c = array.shape
    else:
        raise ValueError(f"RawImage needs HW or HWC with 1/3/4 channels, got {array.shape}")
    return compositor_pb2.RawImage(
        width=w, height=h, channels=c, data=np.ascontiguousarray(array).tobytes()
    )


def from_proto(msg: compositor_pb2.RawImage, field: str = "image") -> np.ndarray:
    """The pixels of `msg` as HWC (HW for one channel); a read-only view, no copy."""
    w, h, c = msg.width, msg.height, msg.channels
    if w <= 0 or h <= 0 or c not in (1, 3, 4):
        raise InvalidParameter(field, f"{field}: bad raw image header {w}x{h}x{c}")
    if len(msg.data) != w * h * c:
        raise InvalidParameter(
            field, f"{field}: {len(msg.data)} bytes of pixels for a {w}x{h}x{c} image"
        )
    arr = np.frombuffer(msg.data, dtype=np.uint8)
    return arr.reshape(h, w) if c == 1 else arr.reshape(h, w, c)
