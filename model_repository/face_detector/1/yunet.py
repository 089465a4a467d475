"""Faces in a photo with a YuNet-style detector (OpenCV Zoo's face_detection_yunet).

The photo is scaled to fit `input_size` x `input_size` (aspect kept, padded right and
bottom with black), converted to BGR float [0, 255], and run through the ONNX model.
Its per-stride outputs are decoded as OpenCV's FaceDetectorYN does: for the cell at
row r, column c of stride s, score = sqrt(cls * obj), box centre ((c, r) + bbox[:2]) * s,
size exp(bbox[2:]) * s, landmarks ((c, r) + kps) * s; then score threshold and NMS.

Arrays: image uint8 HxWx3 RGB in; faces float32 [K, 15] out, in photo pixels:
x, y, w, h, 5 landmarks (right eye, left eye, nose tip, right and left mouth corner,
as x, y pairs; "right eye" is the one on the photo's left), score. Best first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

STRIDES = (8, 16, 32)
OUTPUTS = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES]

# BGR float32 [1, 3, S, S] -> {output name: array [1, cells, k]}
RunFn = Callable[[np.ndarray], dict[str, np.ndarray]]


class DetectInputError(ValueError):
    """The request cannot be served; the caller's fault."""


class ModelOutputError(RuntimeError):
    """The ONNX model answered with shapes the contract does not allow."""


@dataclass(frozen=True)
class DetectParams:
    """Knobs; the model reads them from config.pbtxt `parameters`."""

    input_size: int = 640
    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    top_k: int = 50
    min_side: int = 16
    max_pixels: int = 40_000_000


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """(BGR float32 [1, 3, size, size], scale from photo to network pixels)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(
        image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[:nh, :nw] = resized[..., ::-1]
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]), scale


def decode(outputs: dict[str, np.ndarray], size: int, params: DetectParams) -> np.ndarray:
    """float32 [K, 15] in network pixels, after threshold and NMS, best first."""
    rows = []
    for s in STRIDES:
        cols = size // s
        cells = cols * cols
        parts = {k: outputs[f"{k}_{s}"] for k in ("cls", "obj", "bbox", "kps")}
        for k, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
            if parts[k].shape != (1, cells, width):
                raise ModelOutputError(
                    f"{k}_{s} is {list(parts[k].shape)}; expected [1, {cells}, {width}]"
                )
        score = np.sqrt(np.clip(parts["cls"][0, :, 0], 0, 1) * np.clip(parts["obj"][0, :, 0], 0, 1))
        keep = np.nonzero(score >= params.score_threshold)[0]
        if keep.size == 0:
            continue
        r, c = (keep // cols).astype(np.float32), (keep % cols).astype(np.float32)
        bbox = parts["bbox"][0, keep]
        cx, cy = (c + bbox[:, 0]) * s, (r + bbox[:, 1]) * s
        bw, bh = np.exp(bbox[:, 2]) * s, np.exp(bbox[:, 3]) * s
        kps = parts["kps"][0, keep].reshape(-1, 5, 2)
        kx, ky = (kps[..., 0] + c[:, None]) * s, (kps[..., 1] + r[:, None]) * s
        landmarks = np.stack([kx, ky], axis=2).reshape(-1, 10)
        rows.append(
            np.column_stack([cx - bw / 2, cy - bh / 2, bw, bh, landmarks, score[keep]]).astype(
                np.float32
            )
        )
    if not rows:
        return np.zeros((0, 15), np.float32)
    faces = np.concatenate(rows)
    boxes = [[float(v) for v in f[:4]] for f in faces]
    picked = cv2.dnn.NMSBoxes(
        boxes,
        faces[:, 14].tolist(),
        params.score_threshold,
        params.nms_threshold,
        top_k=params.top_k,
    )
    picked = np.array(picked, dtype=np.int64).reshape(-1)
    faces = faces[picked]
    return faces[np.argsort(-faces[:, 14], kind="stable")]


def detect(image: np.ndarray, run: RunFn, params: DetectParams) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DetectInputError(
            f"IMAGE must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
        )
    h, w = image.shape[:2]
    if min(h, w) < params.min_side or h * w > params.max_pixels:
        raise DetectInputError(f"IMAGE is {w}x{h}; outside the limits")
    x, scale = letterbox(image, params.input_size)
    faces = decode(run(x), params.input_size, params)
    faces[:, :14] /= scale
    return faces
