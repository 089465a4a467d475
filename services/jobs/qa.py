"""Image QA scores: small pure functions over what the pipeline had.

Arrays are uint8: images RGB (H, W, 3), alphas and shadow darkness (H, W) with
255 = subject / black. "Canvas" arrays are at the output's size (the output's
pixels as encoded and decoded again, the subject's alpha where the compositor
placed it, the shadow it cast); "source" arrays are at the input's size (the
matte). Each function's docstring gives its range; the README's "Image QA"
section defines each score in one sentence. `qa_review.py` turns scores into
needs_review and reasons."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Alpha at or above this is the subject's body for edges and frame contact.
SOLID_ALPHA = 128
# A matte pixel is clearly in / clearly out at these alphas; between is soft.
CLEAR_IN = 240
CLEAR_OUT = 15
# Alpha above this counts towards the subject's box (the compositor trims the same way).
BOX_ALPHA = 8
# Edge halo is measured on canvases scaled down to at most this long side (the band
# scales with the canvas, so the score does not change; the time does).
EDGE_WORK_SIDE = 2048
# The edge band's half-width as a share of the image's long side, at least MIN_BAND_PX.
EDGE_BAND = 0.008
MIN_BAND_PX = 3
# An edge pixel is a halo pixel when it is this far (RGB distance, 0..441) from the
# mix of the nearby subject and background colours its alpha says it is: JPEG
# ringing and resampling stay well under it, a grey fringe on a coloured product is
# well over it.
HALO_TOLERANCE = 40.0
# ... and it strays towards the old background: it is nearer the old background's
# colour than this share of its distance to the subject colour (a subject's own
# darker rim is about as far from both; a rim of old backdrop is on top of it).
HALO_OLD_RATIO = 0.5
# A side of the frame is touched when the subject covers this share of it (or
# MIN_CROP_PX pixels, whichever is more): one stray speck is not a cut product.
CROP_SHARE = 0.02
MIN_CROP_PX = 3
# Background purity ignores this many pixels around the subject and the shadow:
# JPEG blocks there mix the two and the edge is edge_halo's business.
PURITY_MARGIN_PX = 16
# A shadow is visible when it darkens some pixel by this much (0..255, ~3 %), and
# touches the canvas edge when it darkens an edge pixel by SHADOW_EDGE (~1 %).
SHADOW_VISIBLE = 8
SHADOW_EDGE = 3

SIDES = ("top", "bottom", "left", "right")


def band_px(shape: tuple[int, ...]) -> int:
    """The edge band's half-width in pixels for an image of `shape` (H, W, ...)."""
    return max(MIN_BAND_PX, round(EDGE_BAND * max(shape[0], shape[1])))


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """float32 (H, W): each pixel's distance to the nearest set pixel of the bool
    `mask` (0 on it). The mask must not be empty."""
    return cv2.distanceTransform(np.logical_not(mask).view(np.uint8), cv2.DIST_L2, 3)


def _near(mask: np.ndarray, radius: float) -> np.ndarray:
    """bool (H, W): within `radius` pixels of a set pixel of the bool `mask` (a
    dilation by a disk, done as a distance transform: big radii cost the same)."""
    if not mask.any():
        return np.zeros(mask.shape, bool)
    return _distance_to(mask) <= radius


def _depth(mask: np.ndarray) -> np.ndarray:
    """float32 (H, W): how far each set pixel of the bool `mask` is from an unset one
    (0 off the mask); the frame's edge is not an unset pixel."""
    padded = cv2.copyMakeBorder(mask.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive, of the non-zero pixels of a uint8 mask; None if empty."""
    x, y, w, h = cv2.boundingRect(mask)
    return None if w == 0 or h == 0 else (x, y, x + w, y + h)


def _across(
    signed: np.ndarray, at: tuple[np.ndarray, np.ndarray], target: float
) -> tuple[np.ndarray, np.ndarray]:
    """For the pixels `at` (row and column index arrays), the pixel reached by walking
    across the outline to where the signed distance `signed` (float32 (H, W),
    positive inside, negative outside) is `target`: along its gradient, which points
    straight at the nearest outline point. Row and column index arrays, clipped."""
    ys, xs = at
    h, w = signed.shape
    down, up = np.minimum(ys + 1, h - 1), np.maximum(ys - 1, 0)
    right, left = np.minimum(xs + 1, w - 1), np.maximum(xs - 1, 0)
    gy = signed[down, xs] - signed[up, xs]
    gx = signed[ys, right] - signed[ys, left]
    norm = np.maximum(np.hypot(gy, gx), 1e-6)
    steps = target - signed[at]
    ty = np.clip(np.rint(ys + gy / norm * steps), 0, h - 1).astype(np.intp)
    tx = np.clip(np.rint(xs + gx / norm * steps), 0, w - 1).astype(np.intp)
    return ty, tx


def edge_halo(
    image: np.ndarray,
    alpha: np.ndarray,
    shadow: np.ndarray | None = None,
    transparent: bool = False,
    old_background: tuple[float, float, float] | None = None,
) -> float | None:
    """Share (0..1) of the subject's edge band whose colour strays more than
    HALO_TOLERANCE from the mix its alpha says it is (alpha x the nearby subject
    colour + (1 - alpha) x the nearby background colour) towards the source photo's
    old background: its colour is nearer `old_background` than HALO_OLD_RATIO of its
    distance to the subject colour. A rim of old background that the matte calls
    subject (alpha 255) strays by its whole difference from the subject; a clean
    anti-aliased edge does not stray, and a subject's own darker rim (shading) is
    about as far from the old background as from the subject. old_background None
    (unknown, e.g. a cut-out sent with its own alpha) counts every stray pixel. None
    when the subject has no edge on the canvas.

    image: the output as shown, RGB (H, W, 3); alpha: where the subject is, (H, W);
    shadow: the darkness the compositor cast (H, W), so a shadow next to the edge is
    expected background, not halo. transparent: the output has no background (a
    cut-out; image holds its straight colour): edge pixels are compared with the
    subject colour alone and fully transparent ones are skipped. The edge band is
    every pixel within band_px of the subject's outline (alpha >= SOLID_ALPHA),
    either side; the nearby subject and background colours are those found just
    over band_px inside and outside the outline, straight across it from the pixel
    (pixels with no such place, as in parts thinner than the band, are skipped).
    Canvases larger than EDGE_WORK_SIDE are measured scaled down to it."""
    scale = EDGE_WORK_SIDE / max(alpha.shape)
    if scale < 1:
        size = (round(alpha.shape[1] * scale), round(alpha.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        if shadow is not None:
            shadow = cv2.resize(shadow, size, interpolation=cv2.INTER_AREA)
    k = band_px(image.shape)
    found = _box((alpha >= SOLID_ALPHA).view(np.uint8))
    if found is None:
        return None
    # Work on the subject's box plus the band: subjects are often small on the canvas.
    pad = 2 * k + 4
    x0, y0 = max(0, found[0] - pad), max(0, found[1] - pad)
    x1, y1 = min(alpha.shape[1], found[2] + pad), min(alpha.shape[0], found[3] + pad)
    a = alpha[y0:y1, x0:x1]
    rgb = image[y0:y1, x0:x1]
    solid = a >= SOLID_ALPHA
    depth = _depth(solid)
    inner = depth > k
    reach = _distance_to(solid)
    grown = reach <= k
    band = grown & ~inner
    if transparent:
        band &= a > 0
    if not inner.any() or not band.any():
        return None
    signed = depth - reach
    at = np.nonzero(band)
    inside = _across(signed, at, k + 1.5)
    outside = _across(signed, at, -(k + 1.5))
    known = inner[inside] & ~grown[outside]
    if not known.any():
        return None
    at = (at[0][known], at[1][known])
    inside = (inside[0][known], inside[1][known])
    outside = (outside[0][known], outside[1][known])
    subject = rgb[inside].astype(np.float32)
    share = a[at].astype(np.float32)[:, None] / 255.0
    pixels = rgb[at].astype(np.float32)
    if transparent:
        # The straight colour shows in proportion to alpha: a faint pixel fringes little.
        seen = pixels
        stray = np.linalg.norm((pixels - subject) * share, axis=1) > HALO_TOLERANCE
    else:
        near = outside
        background = rgb[near].astype(np.float32)
        if shadow is not None:
            # Take the shadow out of the sampled background, put this pixel's back in.
            dark = shadow[y0:y1, x0:x1]
            there = 1.0 - dark[near].astype(np.float32) / 255.0
            here = 1.0 - dark[at].astype(np.float32) / 255.0
            background *= (here / np.maximum(there, 0.05))[:, None]
        expected = share * subject + (1.0 - share) * background
        stray = np.linalg.norm(pixels - expected, axis=1) > HALO_TOLERANCE
        # The subject colour the pixel implies, its background share taken out.
        seen = (pixels - (1.0 - share) * background) / np.maximum(share, 0.05)
    if old_background is not None:
        old = np.asarray(old_background, np.float32)
        closer = np.linalg.norm(seen - old, axis=1) < HALO_OLD_RATIO * np.linalg.norm(
            seen - subject, axis=1
        )
        stray &= closer
    return float(np.mean(stray))


def old_background(rgb: np.ndarray, alpha: np.ndarray) -> tuple[float, float, float] | None:
    """The source photo's background colour next to the subject: the median RGB of
    the clearly-out pixels (alpha <= CLEAR_OUT) within 2 x band_px of the subject's
    outline. None when there are none (the subject fills the frame).
    rgb: the source photo (H, W, 3); alpha: its matte (H, W)."""
    k2 = 2 * band_px(alpha.shape)
    found = _box((alpha >= SOLID_ALPHA).view(np.uint8))
    if found is None:
        return None
    x0, y0 = max(0, found[0] - k2 - 1), max(0, found[1] - k2 - 1)
    x1, y1 = min(alpha.shape[1], found[2] + k2 + 1), min(alpha.shape[0], found[3] + k2 + 1)
    a, rgb = alpha[y0:y1, x0:x1], rgb[y0:y1, x0:x1]
    ring = _near(a >= SOLID_ALPHA, k2) & (a <= CLEAR_OUT)
    if not ring.any():
        return None
    median = np.median(rgb[ring].reshape(-1, 3), axis=0)
    return (float(median[0]), float(median[1]), float(median[2]))


def matte_uncertainty(alpha: np.ndarray) -> float | None:
    """Share (0..1) of the subject's area (alpha > CLEAR_OUT) that is soft (neither
    clearly in nor out) away from the edge: soft pixels not within band_px of both a
    clearly-in and a clearly-out pixel. A clean anti-aliased edge scores ~0; a soft
    hole or a mushy matte scores its share of the subject. None for an empty matte.

    alpha: the matte at the source's size, (H, W)."""
    k = band_px(alpha.shape)
    found = _box((alpha > CLEAR_OUT).view(np.uint8))
    if found is None:
        return None
    x0, y0 = max(0, found[0] - k - 1), max(0, found[1] - k - 1)
    alpha = alpha[y0 : found[3] + k + 1, x0 : found[2] + k + 1]
    area = int(np.count_nonzero(alpha > CLEAR_OUT))
    soft = (alpha > CLEAR_OUT) & (alpha < CLEAR_IN)
    if not soft.any():
        return 0.0
    near_in = _near(alpha >= CLEAR_IN, k)
    near_out = _near(alpha <= CLEAR_OUT, k)
    uncertain = soft & ~(near_in & near_out)
    return float(np.count_nonzero(uncertain) / area)


def cropped_sides(alpha: np.ndarray) -> list[str]:
    """The sides of the frame ("top", "bottom", "left", "right") the subject is cut
    by: where alpha >= SOLID_ALPHA covers at least CROP_SHARE of the side (and
    MIN_CROP_PX pixels). alpha: the matte at the source's size, (H, W)."""
    solid = alpha >= SOLID_ALPHA
    edges = {
        "top": solid[0, :],
        "bottom": solid[-1, :],
        "left": solid[:, 0],
        "right": solid[:, -1],
    }
    return [
        side
        for side in SIDES
        if np.count_nonzero(edges[side]) >= max(MIN_CROP_PX, CROP_SHARE * edges[side].size)
    ]


@dataclass(frozen=True)
class Fill:
    """The subject's box on the canvas."""

    value: float  # the box's larger side share: max(box w / canvas w, box h / canvas h), 0..1
    area: float  # box area / canvas area, 0..1
    center_x: float  # box centre, % of the canvas width (0..100)
    center_y: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in canvas pixels, exclusive


def subject_fill(alpha: np.ndarray) -> Fill | None:
    """The box of alpha > BOX_ALPHA on the canvas as shares of it; None if empty.
    alpha: the subject on the canvas, (H, W)."""
    box = _box((alpha > BOX_ALPHA).astype(np.uint8))
    if box is None:
        return None
    h, w = alpha.shape
    x0, y0, x1, y1 = box
    return Fill(
        value=max((x1 - x0) / w, (y1 - y0) / h),
        area=(x1 - x0) * (y1 - y0) / (w * h),
        center_x=100.0 * (x0 + x1) / (2 * w),
        center_y=100.0 * (y0 + y1) / (2 * h),
        box=box,
    )


def subject_upscale(source_alpha: np.ndarray, canvas_alpha: np.ndarray) -> float | None:
    """How many times the subject was enlarged from its source pixels to the canvas:
    the long side of its box (alpha > BOX_ALPHA) on the canvas over that in the
    source (> 0; 1 = one source pixel per output pixel). None if either is empty."""
    source = _box((source_alpha > BOX_ALPHA).astype(np.uint8))
    canvas = _box((canvas_alpha > BOX_ALPHA).astype(np.uint8))
    if source is None or canvas is None:
        return None
    source_long = max(source[2] - source[0], source[3] - source[1])
    canvas_long = max(canvas[2] - canvas[0], canvas[3] - canvas[1])
    return canvas_long / source_long


def background_purity(
    image: np.ndarray,
    alpha: np.ndarray,
    colour: tuple[int, int, int],
    shadow: np.ndarray | None = None,
) -> float | None:
    """Share (0..1) of background pixels that are exactly `colour` in the decoded
    output (so JPEG rounding counts: a white that decodes to 254 is not white).
    Background: no subject (alpha 0) and no shadow, at least PURITY_MARGIN_PX from
    both. None when no such pixel is left.

    image: the decoded output RGB (H, W, 3); alpha: the subject on the canvas;
    shadow: the darkness the compositor cast (H, W) or None."""
    near = alpha > 0
    if shadow is not None:
        near |= shadow > 0
    region = ~_near(near, PURITY_MARGIN_PX)
    total = int(np.count_nonzero(region))
    if total == 0:
        return None
    exact = cv2.inRange(image, colour, colour) > 0
    return float(np.count_nonzero(exact & region) / total)


@dataclass(frozen=True)
class Shadow:
    visible: bool
    darkness: float  # the darkest point of the shadow, 0..1 (1 = black)
    edge_darkness: float  # the darkest point on the canvas's edge, 0..1
    touches_edge: bool
    sides: tuple[str, ...]  # canvas sides it darkens by SHADOW_EDGE or more


def shadow_check(darkness: np.ndarray) -> Shadow:
    """The cast shadow's visibility and whether the canvas edge cuts it.
    darkness: (H, W) uint8 on the canvas, 0 = untouched, 255 = black."""
    edges = {
        "top": darkness[0, :],
        "bottom": darkness[-1, :],
        "left": darkness[:, 0],
        "right": darkness[:, -1],
    }
    sides = tuple(side for side in SIDES if int(edges[side].max()) >= SHADOW_EDGE)
    peak = int(darkness.max()) if darkness.size else 0
    edge = max(int(e.max()) for e in edges.values()) if darkness.size else 0
    return Shadow(
        visible=peak >= SHADOW_VISIBLE,
        darkness=peak / 255.0,
        edge_darkness=edge / 255.0,
        touches_edge=bool(sides),
        sides=sides,
    )
