"""Classical product matting, no weights: a backdrop colour model from the image
border seeds GrabCut at reduced resolution; the resulting hard mask becomes a narrow
trimap at full resolution whose unknown band is solved with closed-form matting
(Levin et al. 2008, via pymatting).

Made for products on plain or simply textured backdrops (paper sweeps, table tops),
which is what the embedded engine is for; hair and busy scenes need the BiRefNet
engine. Pure numpy/OpenCV/pymatting, importable without Triton so it can be unit
tested directly.

Arrays: image uint8 HxWx3 RGB; alpha uint8 HxW (255 = subject).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


class MattingInputError(ValueError):
    """The request's image cannot be matted (wrong shape, too small, too large)."""


@dataclass(frozen=True)
class MattingParams:
    """Knobs of the algorithm; the model reads them from config.pbtxt `parameters`."""

    # GrabCut runs on a copy whose long side is this many pixels: its cost grows with
    # the pixel count and the segmentation does not improve above ~512.
    work_long_side: int = 512
    # Width of the image border taken as backdrop, as a fraction of the short side.
    # The product must not touch this strip (product shots leave margins).
    border_frac: float = 0.02
    # Backdrop colour clusters fitted to the border (k-means in Lab).
    border_clusters: int = 6
    # A pixel farther than this (Lab units, lightness down-weighted) from every border
    # cluster starts GrabCut as probable product; nearer ones as probable backdrop.
    seed_distance: float = 12.0
    # Lightness weight in the seed distance: shadows change lightness, not colour.
    lightness_weight: float = 0.35
    # 3 and 5 iterations give identical masks on the samples; each costs ~50 ms.
    grabcut_iterations: int = 3
    # Crisp-edge recovery (see `recover_enclosed`): an edge is a gradient above
    # edge_factor x the border's 99th percentile gradient, and at least edge_min.
    edge_factor: float = 3.0
    edge_min: float = 12.0
    # A backdrop-coloured region fenced off by crisp edges becomes product when at least
    # this fraction of its outline runs along open backdrop (a real hole, like a mug
    # handle's, is surrounded by product instead).
    enclosed_outside_frac: float = 0.2
    # ... and when it is thick enough (inscribed radius, fraction of the work image's
    # long side): thinner fenced pockets are contact shadows hugging the base.
    enclosed_min_radius: float = 0.025
    # Connected product regions smaller than this fraction of the largest are dropped
    # (specks of grain or dust), and backdrop holes smaller than it are filled.
    min_region_frac: float = 0.002
    # Half-width of the unknown band around the mask edge, in full-resolution pixels,
    # on top of the upsampling error of the work resolution.
    band_px: int = 3
    # Closed-form matting regulariser and conjugate-gradient limits.
    cf_epsilon: float = 1e-6
    cf_maxiter: int = 2000
    # Side of the square tiles the band is solved in (see `refine`); bounds memory at
    # ~50 MB per tile whatever the image size.
    refine_tile: int = 256
    # Input limits: below min_side there is nothing to matte, above max_pixels a single
    # request would take minutes on the CPU engine.
    min_side: int = 16
    max_pixels: int = 40_000_000


# Band pixels this close to a tile's edge are solved in the neighbouring tile's
# margin as well; 3x3 Laplacian windows couple pixels only a few steps apart.
_TILE_MARGIN = 12

_FIELDS = {f.name: f for f in dataclasses.fields(MattingParams)}


def parse_params(raw: dict[str, str]) -> MattingParams:
    """Build MattingParams from string key/values (config.pbtxt `parameters`),
    rejecting unknown keys and values of the wrong type or range."""
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown matting parameters {unknown}; known: {sorted(_FIELDS)}")
    values: dict[str, Any] = {}
    for key, text in raw.items():
        kind = _FIELDS[key].type
        try:
            value: Any = int(text) if kind == "int" else float(text)
        except ValueError as exc:
            raise ValueError(f"matting parameter {key}={text!r} is not a {kind}") from exc
        if value <= 0 or (kind == "float" and not math.isfinite(value)):
            raise ValueError(f"matting parameter {key}={text!r} must be positive")
        values[key] = value
    params = MattingParams(**values)
    if params.border_frac >= 0.25:
        raise ValueError(f"border_frac={params.border_frac} must be below 0.25")
    return params


def check_image(image: np.ndarray, params: MattingParams) -> None:
    """Raise MattingInputError unless `image` is a uint8 HxWx3 array within limits."""
    if image.dtype != np.uint8:
        raise MattingInputError(f"IMAGE must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise MattingInputError(f"IMAGE must be HxWx3 (RGB), got shape {list(image.shape)}")
    h, w = image.shape[:2]
    if min(h, w) < params.min_side:
        raise MattingInputError(
            f"IMAGE is {w}x{h}; both sides must be at least {params.min_side} pixels"
        )
    if h * w > params.max_pixels:
        raise MattingInputError(
            f"IMAGE is {w}x{h} = {h * w} pixels; the limit is {params.max_pixels}"
        )


def estimate_alpha(image: np.ndarray, params: MattingParams | None = None) -> np.ndarray:
    """Alpha matte (uint8 HxW, 255 = product) of the product in `image` (uint8 HxWx3
    RGB). An image with no product distinct from its border gives all zeros."""
    params = params or MattingParams()
    check_image(image, params)
    h, w = image.shape[:2]
    scale = min(1.0, params.work_long_side / max(h, w))
    small = (
        cv2.resize(
            image,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
        if scale < 1.0
        else image
    )
    mask_small = segment(small, params)
    if not mask_small.any():
        return np.zeros((h, w), np.uint8)
    trimap = make_trimap(mask_small, (h, w), scale, params)
    return refine(image, trimap, params)


def segment(image: np.ndarray, params: MattingParams) -> np.ndarray:
    """Hard product mask (bool HxW) of a small image: border colour model -> GrabCut
    seeds -> GrabCut -> region cleanup."""
    h, w = image.shape[:2]
    border = max(2, round(params.border_frac * min(h, w)))
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    weight = np.float32([params.lightness_weight, 1.0, 1.0])
    feats = lab * weight

    is_border = np.zeros((h, w), bool)
    is_border[:border, :] = is_border[-border:, :] = True
    is_border[:, :border] = is_border[:, -border:] = True
    samples = feats[is_border]
    k = min(params.border_clusters, len(samples))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, _, centers = cv2.kmeans(samples, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    dist = np.full((h, w), np.inf, np.float32)
    for c in centers:
        dist = np.minimum(dist, np.linalg.norm(feats - c, axis=2))
    # Smooth the distance so grain and JPEG noise don't scatter seeds.
    dist = cv2.GaussianBlur(dist, (0, 0), 1.0)

    far = dist > params.seed_distance
    if not far[~is_border].any():
        return np.zeros((h, w), bool)
    gc = np.where(far, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    # Pixels very far from the backdrop are product for certain; this keeps GrabCut
    # from eating into products that share some colours with the backdrop.
    gc[dist > 3.0 * params.seed_distance] = cv2.GC_FGD
    gc[is_border] = cv2.GC_BGD
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.grabCut(image, gc, None, bgd, fgd, params.grabcut_iterations, cv2.GC_INIT_WITH_MASK)
    mask = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    mask = clean_regions(mask, params.min_region_frac)
    if mask.any():
        mask = recover_enclosed(lab, mask, is_border, params)
    return mask


def recover_enclosed(
    lab: np.ndarray, mask: np.ndarray, is_border: np.ndarray, params: MattingParams
) -> np.ndarray:
    """Give back to the product the backdrop-coloured parts of it (a white panel on a
    white sweep) that colour alone cannot tell from a shadow.

    What separates them is the edge: a shadow fades out, an object's outline is crisp.
    Cut the backdrop along crisp edges; a thick piece that no longer reaches the image
    border and whose outline runs partly along open backdrop (not only along the
    product, as a real hole's does) is product."""
    blurred = cv2.GaussianBlur(lab, (0, 0), 0.7)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1)
    grad = np.sqrt((gx * gx + gy * gy).sum(axis=2))
    threshold = max(params.edge_factor * float(np.percentile(grad[is_border], 99)), params.edge_min)
    # Thicken edges so a short faint stretch (where a contact shadow meets a
    # corner) does not leave a gap for the backdrop to leak through.
    edges = cv2.dilate((grad > threshold).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # Open backdrop: reachable from the border without crossing product or an edge,
    # then grown over the outer half of the edge lines it stopped at.
    open_bg = (~mask & ~edges).astype(np.uint8)
    n, labels = cv2.connectedComponents(open_bg, connectivity=4)
    reached = np.unique(labels[is_border & (open_bg > 0)])
    outside = np.isin(labels, reached[reached > 0]).astype(np.uint8)
    outside = cv2.dilate(outside, np.ones((3, 3), np.uint8), iterations=5).astype(bool) & ~mask
    # What is left is fenced off: real holes and backdrop-coloured product parts
    # (and, thin enough to be told apart, pockets between a product's base and its
    # contact shadow).
    fenced = (~mask & ~outside).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fenced, connectivity=8)
    to_product = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    # Outline points this close to the product run along it (about an edge line's width).
    reach = 4.0
    min_area = params.min_region_frac * mask.size
    result = mask.copy()
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < min_area:
            continue
        x, y = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
        bw, bh = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]
        piece = (labels[y : y + bh, x : x + bw] == i).astype(np.uint8)
        # The outer outline only: print inside a panel (its own holes) says nothing
        # about what surrounds it.
        contours, _ = cv2.findContours(piece, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        pts = np.concatenate([c.reshape(-1, 2) for c in contours]) + (x, y)
        along_product = float((to_product[pts[:, 1], pts[:, 0]] <= reach).mean())
        filled = np.zeros((bh + 2, bw + 2), np.uint8)
        cv2.drawContours(filled, contours, -1, 1, thickness=-1, offset=(1, 1))
        radius = float(cv2.distanceTransform(filled, cv2.DIST_L2, 3).max())
        if radius < params.enclosed_min_radius * max(mask.shape):
            continue
        if along_product < 1.0 - params.enclosed_outside_frac:
            result[y : y + bh, x : x + bw] |= piece.astype(bool)
    return result


def clean_regions(mask: np.ndarray, min_frac: float) -> np.ndarray:
    """Drop product specks and fill pinholes, relative to the largest region. Large
    backdrop holes (a mug handle) stay open."""
    mask = _keep_large(mask, min_frac)
    if not mask.any():
        return mask
    holes = _keep_large(~mask, min_frac, touching_border_always=True)
    return ~holes


def _keep_large(
    mask: np.ndarray, min_frac: float, touching_border_always: bool = False
) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= min_frac * mask.size
    if touching_border_always:
        h, w = mask.shape
        x, y = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
        bw, bh = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
        keep[1:] |= (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    else:
        keep[1 + int(np.argmax(areas))] = True
    return keep[labels]


def make_trimap(
    mask_small: np.ndarray, shape: tuple[int, int], scale: float, params: MattingParams
) -> np.ndarray:
    """Full-resolution trimap (float HxW: 1 product, 0 backdrop, 0.5 unknown) with an
    unknown band around the upsampled mask edge, wide enough to cover the work
    resolution's quantisation."""
    h, w = shape
    soft = cv2.resize(mask_small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    hard = (soft > 0.5).astype(np.uint8)
    radius = params.band_px + math.ceil(1.0 / scale)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    fg = cv2.erode(hard, kernel)
    maybe = cv2.dilate(hard, kernel)
    trimap = np.full((h, w), 0.5, np.float64)
    trimap[fg > 0] = 1.0
    trimap[maybe == 0] = 0.0
    return trimap


def refine(image: np.ndarray, trimap: np.ndarray, params: MattingParams) -> np.ndarray:
    """Solve closed-form matting for the trimap's unknown band and return uint8 alpha.

    The band is solved tile by tile: pymatting sizes its Laplacian buffers by the
    whole array it is given (81 float64 per pixel, ~6 GB for a 16 MP crop) even when
    only a thin band is unknown. Each tile is solved with a margin so that band pixels
    near its edge still see their neighbours; only the tile's core is kept."""
    # Imported here: pymatting compiles numba kernels on first import (~40 s without a
    # warm NUMBA_CACHE_DIR), which unit tests of `segment` should not pay.
    from pymatting import estimate_alpha_cf, ichol

    def preconditioner(a: Any) -> Any:
        # pymatting's default reserves room for 250M factor entries (4 GB of address
        # space) per call; a band's factor needs a few times the matrix's entries.
        try:
            return ichol(a, max_nnz=max(16 * a.nnz, 1 << 20))
        except ValueError:
            return ichol(a)

    unknown = trimap == 0.5
    alpha = trimap.copy()
    h, w = trimap.shape
    t, m = params.refine_tile, _TILE_MARGIN
    for ty in range(0, h, t):
        for tx in range(0, w, t):
            if not unknown[ty : ty + t, tx : tx + t].any():
                continue
            y0, y1 = max(0, ty - m), min(h, ty + t + m)
            x0, x1 = max(0, tx - m), min(w, tx + t + m)
            tri = trimap[y0:y1, x0:x1]
            if not (tri == 0.0).any() or not (tri == 1.0).any():
                # Only one side known nearby: the Laplacian's minimiser is that side's
                # constant, which pymatting refuses to compute.
                solved = np.where(tri == 0.5, float(tri.max() == 1.0), tri)
            else:
                solved = estimate_alpha_cf(
                    image[y0:y1, x0:x1].astype(np.float64) / 255.0,
                    tri,
                    preconditioner=preconditioner,
                    laplacian_kwargs={"epsilon": params.cf_epsilon},
                    cg_kwargs={"maxiter": params.cf_maxiter},
                )
            core = solved[ty - y0 : ty - y0 + t, tx - x0 : tx - x0 + t]
            alpha[ty : ty + core.shape[0], tx : tx + core.shape[1]] = core
    return np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
