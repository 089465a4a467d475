"""Face restoration with CodeFormer: each detected face is aligned to the FFHQ
512 x 512 template by its five landmarks, restored, and pasted back through the inverse
transform with a feathered mask, so only the faces change.

Arrays: image uint8 HxWx3 RGB; faces float32 [K, 15] from face_detector (x, y, w, h,
5 landmarks, score); result uint8 HxWx3. The ONNX model (contract
face_codeformer_onnx): input float32 [N, 3, 512, 512] RGB in [-1, 1], weight float64
[N] (fidelity) -> output float32 [N, 3, 512, 512] in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

# Eye centres, nose tip and mouth corners of the FFHQ-aligned 512 x 512 face (the
# template CodeFormer and GFPGAN were trained on), in the photo's left-to-right order.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    np.float32,
)

# (faces float32 [N, 3, S, S], weight float64 [N]) -> float32 [N, 3, S, S]
RunFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class RestoreInputError(ValueError):
    """The request cannot be served; the caller's fault."""


class ModelOutputError(RuntimeError):
    """The ONNX model answered with a shape the contract does not allow."""


@dataclass(frozen=True)
class RestoreParams:
    """Knobs; the model reads them from config.pbtxt `parameters`."""

    face_size: int = 512
    # Faces whose box is smaller than this are left alone (nothing to restore).
    min_face_px: int = 16
    max_faces: int = 20
    # Faces per call to the ONNX model.
    batch: int = 4
    # The pasted face fades out over this fraction of the aligned crop's side.
    feather_frac: float = 0.06
    # Where the ONNX model's config is, relative to this model's folder (read once to
    # learn whether it batches, which decides the shape of its `weight` input).
    onnx_config: str = "../face_codeformer_onnx/config.pbtxt"
    min_side: int = 16
    max_pixels: int = 40_000_000


def alignment(landmarks: np.ndarray, size: int) -> np.ndarray | None:
    """2x3 similarity transform from photo pixels to the aligned crop, or None."""
    template = FFHQ_TEMPLATE_512 * (size / 512.0)
    matrix, _ = cv2.estimateAffinePartial2D(
        landmarks.reshape(5, 2).astype(np.float32), template, method=cv2.LMEDS
    )
    return matrix


def _paste(out: np.ndarray, face: np.ndarray, matrix: np.ndarray, params: RestoreParams) -> None:
    """Blend the aligned crop `face` (uint8 SxSx3) into `out` through the inverse of
    `matrix`, touching only the region the crop covers."""
    s = params.face_size
    h, w = out.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [s, 0, 1], [0, s, 1], [s, s, 1]], np.float32) @ inverse.T
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    shifted = inverse.copy()
    shifted[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(
        face, shifted, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    feather = max(1, int(round(params.feather_frac * s)))
    mask = np.zeros((s, s), np.float32)
    mask[feather:-feather, feather:-feather] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), feather / 2.0)
    weight = cv2.warpAffine(mask, shifted, size, flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    roi = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(
        np.rint(roi * (1 - weight) + warped.astype(np.float32) * weight), 0, 255
    )


def restore(
    image: np.ndarray, faces: np.ndarray, fidelity: float, run: RunFn, params: RestoreParams
) -> tuple[np.ndarray, int]:
    """(image with its faces restored, number of faces restored)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise RestoreInputError(
            f"IMAGE must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
        )
    h, w = image.shape[:2]
    if min(h, w) < params.min_side or h * w > params.max_pixels:
        raise RestoreInputError(f"IMAGE is {w}x{h}; outside the limits")
    if not 0.0 <= fidelity <= 1.0:
        raise RestoreInputError(f"FIDELITY must be within 0..1, got {fidelity}")
    s = params.face_size
    crops, matrices = [], []
    for face in faces[: params.max_faces]:
        if min(face[2], face[3]) < params.min_face_px:
            continue
        matrix = alignment(face[4:14], s)
        if matrix is None:
            continue
        crop = cv2.warpAffine(
            image, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        crops.append(crop.astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 127.5) - 1.0)
        matrices.append(matrix)
    out = image.copy()
    for start in range(0, len(crops), params.batch):
        batch = np.ascontiguousarray(np.stack(crops[start : start + params.batch]))
        weight = np.full((len(batch),), fidelity, np.float64)
        result = run(batch, weight)
        if result.shape != batch.shape:
            raise ModelOutputError(
                f"CodeFormer returned {list(result.shape)}; expected {list(batch.shape)}"
            )
        for k, restored in enumerate(result):
            face = np.clip((restored.transpose(1, 2, 0) + 1.0) * 127.5, 0, 255)
            _paste(out, np.rint(face).astype(np.uint8), matrices[start + k], params)
    return out, len(crops)
