"""Detail transfer: re-apply the high frequencies of the original photo to the
placed subject with a chosen blend mode.

The subject is split into a base (its low-pass) and the source's detail (source
minus its low-pass). Both low-passes are alpha-normalised blurs, so the new
background never leaks into the subject's edge. "add" adds the signed detail
(the subject comes back as it was when nothing else changed it); every other mode
blends the detail as a neutral-grey high-pass layer (0.5 = no detail) onto the
base, the usual frequency-separation technique."""

from __future__ import annotations

import cv2
import numpy as np

from services.compositor.blend import blend, check_mode


def _lowpass(premultiplied: np.ndarray, blurred_alpha: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(premultiplied, (0, 0), sigma) / blurred_alpha


def transfer_detail(subject: np.ndarray, source: np.ndarray, mode: str, sigma: float) -> np.ndarray:
    """subject: premultiplied RGBA uint8 (H, W, 4), as placed; source: RGB uint8
    (H, W, 3), the original photo laid out the same way. Returns a new
    premultiplied RGBA uint8 with the same alpha."""
    check_mode(mode)
    alpha = subject[:, :, 3].astype(np.float32) * np.float32(1 / 255)
    a3 = alpha[:, :, None]
    blurred_alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)[:, :, None] + np.float32(1e-4)
    colour = subject[:, :, :3].astype(np.float32) * np.float32(1 / 255)
    src = source.astype(np.float32) * np.float32(1 / 255)

    base = _lowpass(colour, blurred_alpha, sigma)
    detail = src - _lowpass(src * a3, blurred_alpha, sigma)
    if mode == "add":
        result = base + detail
    else:
        result = blend(np.clip(base, 0.0, 1.0), np.clip(detail + 0.5, 0.0, 1.0), mode)
    np.clip(result, 0.0, 1.0, out=result)
    out = subject.copy()
    out[:, :, :3] = np.rint(result * a3 * 255.0).astype(np.uint8)
    return out
