"""A mask of what a text prompt names, with CLIPSeg.

The photo is resized to 352 x 352 and normalised with CLIP's mean and std; the prompt
is tokenized with CLIP's BPE (services/models/pybackend/clip_tokenizer.py, shared with
the SDXL pipeline) and padded to 77 tokens with an attention mask; CLIPSeg's logits
come back at 352 x 352, go through a sigmoid, are resized to the photo, thresholded and
grown by a margin (so the object's edge and shadow-free rim are inside what gets
erased).

Arrays: image uint8 HxWx3 RGB in; mask uint8 HxW out (255 = the named object).
The ONNX model (contract segment_clipseg_onnx): input_ids int64 [N, L],
pixel_values float32 [N, 3, 352, 352], attention_mask int64 [N, L] -> logits float32
[N, 352, 352].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)

# (input_ids, pixel_values, attention_mask) -> logits
RunFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class SegmentInputError(ValueError):
    """The request cannot be served; the caller's fault."""


class ModelOutputError(RuntimeError):
    """The ONNX model answered with a shape the contract does not allow."""


@dataclass(frozen=True)
class ClipSegParams:
    """Knobs; the model reads them from config.pbtxt `parameters`."""

    # CLIPSeg's input side.
    work_size: int = 352
    # Probability above which a pixel belongs to the object.
    threshold: float = 0.4
    # The mask is grown by this fraction of the photo's long side.
    dilate_frac: float = 0.01
    # Longest prompt, in characters.
    max_prompt_chars: int = 300
    # Where the tokenizer files are, relative to this model's folder.
    tokenizer_dir: str = "../segment_clipseg_onnx/tokenizer"
    min_side: int = 16
    max_pixels: int = 40_000_000


def tokens(tokenizer: object, prompt: str) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64 [1, max_length] each."""
    ids = tokenizer([prompt]).astype(np.int64)  # type: ignore[operator]
    used = min(len(tokenizer.encode(prompt)) + 2, ids.shape[1])  # type: ignore[attr-defined]
    mask = np.zeros_like(ids)
    mask[0, :used] = 1
    return ids, mask


def pixel_values(image: np.ndarray, size: int) -> np.ndarray:
    small = cv2.resize(
        image,
        (size, size),
        interpolation=cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_LINEAR,
    )
    x = (small.astype(np.float32) * np.float32(1 / 255.0) - CLIP_MEAN) / CLIP_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def segment(
    image: np.ndarray, prompt: str, tokenizer: object, run: RunFn, params: ClipSegParams
) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise SegmentInputError(
            f"IMAGE must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
        )
    h, w = image.shape[:2]
    if min(h, w) < params.min_side or h * w > params.max_pixels:
        raise SegmentInputError(f"IMAGE is {w}x{h}; outside the limits")
    prompt = prompt.strip()
    if not prompt or len(prompt) > params.max_prompt_chars:
        raise SegmentInputError(f"PROMPT must have 1..{params.max_prompt_chars} characters")
    ids, attention = tokens(tokenizer, prompt)
    logits = run(ids, pixel_values(image, params.work_size), attention)
    s = params.work_size
    if logits.shape not in ((1, s, s), (s, s)):
        raise ModelOutputError(f"CLIPSeg returned {list(logits.shape)}; expected [1, {s}, {s}]")
    prob = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(s, s).astype(np.float32), -60, 60)))
    prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = (prob > params.threshold).astype(np.uint8)
    radius = int(round(params.dilate_frac * max(h, w)))
    if radius > 0 and mask.any():
        k = 2 * radius + 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return mask * np.uint8(255)
