"""Virtual try-on: a garment photo put on the person in a photo, by CatVTON on Triton
(model_repository/catvton; docs/catvton.md).

CatVTON redraws the area a mask marks. Its own masker (DensePose + SCHP human parsing)
ships in no package here, so the mask is made from what Lightbox has: the person's
silhouette from the matting engine (ISNet by default, `TritonEngines.matting`), cut to
the category's band of rows by body proportions measured on the silhouette itself:

- the neck is the narrowest row between the head's widest row and the first row
  three quarters as wide as the upper body's widest; the shoulder line is where the
  outline has widened half way from the neck to that row;
- the unit (about a head height) is the silhouette's height / 8 when the whole body
  is in the photo (the silhouette ends above the bottom edge), else the distance from
  the top of the head to the neck / 1.15; when the head is cut by the top edge (shop
  photos cropped at the nose) it is the shoulders-to-feet distance / 6.6, and the top
  of the head is placed 1.4 units above the shoulders; a person cut at both edges is
  refused;
- the bands, in units below the top of the head: upperbody from the shoulders to
  4.0 (the hips), lowerbody from 3.2 (the waist) to 7.7 (the ankles), dress from the
  shoulders to 6.2 (below the knees); each is clipped to the silhouette;
- the silhouette's pixels in the band, dilated (garments are looser than bodies), and
  never above the shoulder line (the face and hair stay).

Limits (docs/catvton.md): it assumes one upright person facing the camera, with the
whole head or the feet in the photo; arms in the band are redrawn (sleeves over hands); a seated
or bent person, a head cut by the frame, or long hair over the shoulders move the
shoulder line and the bands with it.

The generated pixels are pasted back only inside the mask, with a feathered edge that
is zero on and outside the mask's border, so every pixel outside the mask is the
person photo's own, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.common import models
from services.common.errors import (
    BodySegmentationFailed,
    InvalidImage,
    InvalidParameter,
    LightboxError,
)
from services.jobs.engines import TritonEngines

CATEGORIES = ("upperbody", "lowerbody", "dress")
ENGINE = "catvton"
# A generation on a CPU host at CatVTON's 768 x 1024 takes minutes.
TRYON_TIMEOUT_S = 900.0
# The pipeline model's inputs the API's fields feed; the model names the one it refuses.
_API_FIELDS = {
    "PERSON": "person_image",
    "GARMENT": "garment_image",
    "STEPS": "steps",
    "GUIDANCE_SCALE": "guidance_scale",
    "SEED": "seed",
}

# Body proportions in units (a head height) below the top of the head.
NECK_UNITS = 1.15
SHOULDER_UNITS = 1.4
BODY_UNITS = 8.0
BANDS: dict[str, tuple[float | None, float]] = {
    # (first row, last row); None: the shoulder line.
    "upperbody": (None, 4.0),
    "lowerbody": (3.2, 7.7),
    "dress": (None, 6.2),
}
# The silhouette: alpha >= this is the person.
SILHOUETTE_LEVEL = 128
# A person fills at least this share of the photo's height...
MIN_PERSON_HEIGHT = 0.3
# ...and a second blob this large next to the largest means two people (or none clear).
SECOND_BLOB_SHARE = 0.35
# Dilation and feather radii, in units.
DILATE_UNITS = 0.15
FEATHER_UNITS = 0.06


@dataclass(frozen=True)
class BodyLayout:
    """Rows measured on a silhouette: the top of the head, the shoulder line, the
    bottom of the silhouette, and the unit (px) the bands are measured in."""

    top: int
    shoulders: int
    bottom: int
    unit: float


def person_silhouette(alpha: np.ndarray) -> np.ndarray:
    """The one person in a matte (uint8 HxW, 255 = subject) as bool HxW: its largest
    connected blob. BodySegmentationFailed when there is no person-sized blob or two
    blobs of similar size."""
    binary = (alpha >= SILHOUETTE_LEVEL).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        raise BodySegmentationFailed("no person was found in the photo")
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(areas)[::-1]
    best = int(order[0]) + 1
    if stats[best, cv2.CC_STAT_HEIGHT] < MIN_PERSON_HEIGHT * alpha.shape[0]:
        raise BodySegmentationFailed(
            "no person-sized figure was found in the photo (the largest subject is "
            f"{stats[best, cv2.CC_STAT_HEIGHT]} px tall of {alpha.shape[0]})"
        )
    if len(order) > 1 and areas[order[1]] >= SECOND_BLOB_SHARE * areas[order[0]]:
        raise BodySegmentationFailed("more than one person (or no single clear person) was found")
    return labels == best


def body_layout(silhouette: np.ndarray) -> BodyLayout:
    """Shoulder line and unit of a silhouette (bool HxW)."""
    rows = np.flatnonzero(silhouette.any(axis=1))
    top, bottom = int(rows[0]), int(rows[-1])
    head_cut = top == 0
    feet_cut = bottom == silhouette.shape[0] - 1
    if head_cut and feet_cut:
        raise BodySegmentationFailed(
            "the person is cut by both the top and the bottom of the photo; it must show "
            "the whole head or the feet"
        )
    height = bottom - top + 1
    widths = silhouette[top : bottom + 1].sum(axis=1).astype(np.float32)
    window = max(1, height // 100)
    widths = np.convolve(widths, np.ones(window, np.float32) / window, mode="same")
    upper = widths[: max(2, int(0.6 * height))]
    # The first row as wide as the shoulders nearly are; the head is above it.
    broad = int(np.argmax(upper >= 0.75 * upper.max()))
    head = int(np.argmax(widths[: max(1, broad // 2)]))
    neck = head + int(np.argmin(widths[head : broad + 1]))
    if broad <= neck or widths[neck] > 0.8 * widths[broad]:
        raise BodySegmentationFailed("no head and shoulders were found on the person's outline")
    half = (widths[neck] + widths[broad]) / 2
    shoulders = top + neck + int(np.argmax(widths[neck : broad + 1] >= half))
    if head_cut:
        # E-commerce crops at the nose: measure from the shoulders to the feet, and
        # place the top of the head where it would be.
        unit = (bottom - shoulders) / (BODY_UNITS - SHOULDER_UNITS)
        top = round(shoulders - SHOULDER_UNITS * unit)
    elif not feet_cut:
        # The whole body is in the photo: its height is the surer measure; adults
        # stand about eight heads tall.
        unit = height / BODY_UNITS
    else:
        unit = neck / NECK_UNITS
    if unit < 2:
        raise BodySegmentationFailed("the person is too small in the photo")
    return BodyLayout(top, shoulders, bottom, float(unit))


def body_mask(alpha: np.ndarray, category: str) -> np.ndarray:
    """The area to dress for `category` (one of CATEGORIES) on the person in a matte
    (uint8 HxW, 255 = subject): uint8 HxW, 255 = generate. BodySegmentationFailed when
    there is no single person or the category's band misses the silhouette (a
    lowerbody garment on a head-and-shoulders portrait)."""
    return body_region(alpha, category)[0]


def body_region(alpha: np.ndarray, category: str) -> tuple[np.ndarray, BodyLayout]:
    """`body_mask` and the layout it was measured with."""
    if category not in CATEGORIES:
        raise InvalidParameter("category", f"category must be one of {', '.join(CATEGORIES)}")
    silhouette = person_silhouette(alpha)
    layout = body_layout(silhouette)
    first, last = BANDS[category]
    start = layout.shoulders if first is None else round(layout.top + first * layout.unit)
    stop = min(layout.bottom, round(layout.top + last * layout.unit))
    band = np.zeros_like(silhouette)
    if start <= stop:
        band[start : stop + 1] = silhouette[start : stop + 1]
    if band.sum() < layout.unit * layout.unit:
        raise BodySegmentationFailed(
            f"no {category} area was found on the person (the photo shows rows "
            f"{layout.top}..{layout.bottom}; a {category} garment needs the body down to "
            f"about {round(layout.top + last * layout.unit)})"
        )
    radius = max(2, round(DILATE_UNITS * layout.unit))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mask = cv2.dilate(band.astype(np.uint8), kernel)
    mask[: layout.shoulders - (radius if first is None else 0)] = 0
    mask[min(mask.shape[0], stop + radius + 1) :] = 0
    return np.where(mask > 0, 255, 0).astype(np.uint8), layout


def feather(mask: np.ndarray, unit: float) -> np.ndarray:
    """float32 HxW weights for pasting: 0 on and outside the mask (uint8, 255 = in),
    rising to 1 over `FEATHER_UNITS * unit` px inside it."""
    inside = (mask >= 128).astype(np.uint8)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    width = max(2.0, FEATHER_UNITS * unit)
    return np.clip((distance - 1.0) / width, 0.0, 1.0).astype(np.float32)


def paste(person: np.ndarray, generated: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`generated` over `person` (uint8 HxWx3 each) by `weights` (float HxW in [0, 1]);
    where a weight is 0 the person's pixel is kept as it is."""
    w = weights[..., None]
    blend = person.astype(np.float32) * (1 - w) + generated.astype(np.float32) * w
    out = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    return np.where(w > 0, out, person)


def try_on(
    engines: TritonEngines,
    person: np.ndarray,
    garment: np.ndarray,
    category: str,
    *,
    seed: int | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    timeout_s: float | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """`garment` (uint8 HxWx3 RGB) on the person in `person` (uint8 HxWx3 RGB):
    uint8 RGB at the person photo's size, and the job's engines
    ({"tryon": "catvton", "body-mask": <matting engine>}).

    None for steps/guidance_scale means the model's defaults (50 steps, 2.5), no seed
    a random one. ModelUnavailable when CatVTON is not deployed (checked before any
    work); BodySegmentationFailed when no single person or no area for the category is
    found; Triton errors as TritonEngines maps them."""
    for name, image in (("person_image", person), ("garment_image", garment)):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InvalidImage(f"{name} must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
    if category not in CATEGORIES:
        raise InvalidParameter("category", f"category must be one of {', '.join(CATEGORIES)}")
    engines.require(models.CATVTON)
    alpha, matting_engine = engines.matting(person)
    mask, layout = body_region(alpha, category)
    inputs: dict[str, np.ndarray] = {
        "PERSON": np.ascontiguousarray(person),
        "GARMENT": np.ascontiguousarray(garment),
        "MASK": mask,
    }
    if steps is not None:
        inputs["STEPS"] = np.array([steps], dtype=np.int32)
    if guidance_scale is not None:
        inputs["GUIDANCE_SCALE"] = np.array([guidance_scale], dtype=np.float32)
    if seed is not None:
        inputs["SEED"] = np.array([seed], dtype=np.int64)
    out = engines.call(
        models.CATVTON,
        inputs,
        ("IMAGE",),
        timeout_s=timeout_s or TRYON_TIMEOUT_S,
        fields=_API_FIELDS,
    )
    generated = out["IMAGE"]
    if generated.dtype != np.uint8 or generated.shape != person.shape:
        raise LightboxError(
            f"{models.CATVTON} returned {generated.dtype} {list(generated.shape)}; "
            f"expected uint8 {list(person.shape)}"
        )
    result = paste(person, generated, feather(mask, layout.unit))
    return result, {"tryon": ENGINE, "body-mask": matting_engine}
