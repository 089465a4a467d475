"""Deterministic synthetic product photos with exact ground-truth alpha.

Used by tests (matting IoU), benchmarks and the demo, so they have to look like
photos: shaded products with anti-aliased edges on a lit backdrop with a cast shadow
and sensor grain. Every pixel comes from numpy/OpenCV with a seeded generator, so the
same (product, backdrop, size, seed) gives the same bytes on every machine.

Products: "bottle" (amber glass with neck, cap and label), "box" (a printed carton in
three-quarter view), "mug" (glazed mug whose handle has a hole showing the backdrop).
Backdrops: "plain" (uneven light paper sweep with vignette) or "wood" (a table top of
planks with procedural grain). The cast shadow belongs to the backdrop: alpha is 0
there, as a matting model should find.

Arrays: rgb uint8 HxWx3 (RGB), alpha uint8 HxW (255 = product).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Product = Literal["bottle", "box", "mug"]
Backdrop = Literal["plain", "wood"]
PRODUCTS: tuple[Product, ...] = ("bottle", "box", "mug")
BACKDROPS: tuple[Backdrop, ...] = ("plain", "wood")


@dataclass(frozen=True)
class Sample:
    rgb: np.ndarray  # uint8 HxWx3 RGB
    alpha: np.ndarray  # uint8 HxW, exact coverage of the product
    name: str


def make_sample(
    product: Product,
    backdrop: Backdrop,
    size: tuple[int, int] = (1024, 1024),
    seed: int = 0,
) -> Sample:
    """A synthetic photo of `product` on `backdrop` at `size` = (W, H), with its
    ground-truth alpha. Deterministic in all four arguments."""
    if product not in PRODUCTS:
        raise ValueError(f"product must be one of {PRODUCTS}, not {product!r}")
    if backdrop not in BACKDROPS:
        raise ValueError(f"backdrop must be one of {BACKDROPS}, not {backdrop!r}")
    w, h = size
    if w < 64 or h < 64:
        raise ValueError(f"size must be at least 64x64, got {w}x{h}")
    # One stream per part, so tweaking the backdrop doesn't move the product.
    seq = np.random.SeedSequence([seed, PRODUCTS.index(product), BACKDROPS.index(backdrop)])
    rng_bg, rng_fg, rng_noise = (np.random.default_rng(s) for s in seq.spawn(3))

    canvas = _Canvas(w, h)
    fg, alpha, foot = _PRODUCT_RENDERERS[product](canvas, rng_fg)
    bg = _plain_backdrop(canvas, rng_bg) if backdrop == "plain" else _wood_backdrop(canvas, rng_bg)
    bg = (
        bg
        * _cast_shadow(canvas, alpha, foot, strength=0.42 if backdrop == "plain" else 0.5)[
            ..., None
        ]
    )

    a = alpha[..., None]
    img = fg * a + bg * (1.0 - a)
    # A lens is never perfectly sharp; soften a touch, then add grain like a sensor.
    img = cv2.GaussianBlur(img, (0, 0), 0.5)
    img = img + rng_noise.normal(0.0, 1.6 / 255.0, img.shape).astype(np.float32)
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    alpha_u8 = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Sample(rgb=rgb, alpha=alpha_u8, name=f"{product}_{backdrop}")


def all_samples(size: tuple[int, int] = (1024, 1024), seed: int = 0) -> Iterator[Sample]:
    """The six product x backdrop combinations, in a fixed order."""
    for product in PRODUCTS:
        for backdrop in BACKDROPS:
            yield make_sample(product, backdrop, size=size, seed=seed)


# --- drawing helpers ---------------------------------------------------------------


class _Canvas:
    """Pixel-centre coordinates and the scale unit `s` (the short side), so shapes
    keep their proportions at any size."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.s = float(min(w, h))
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self.x = xs + 0.5
        self.y = ys + 0.5


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _cover(signed_dist: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - signed_dist, 0.0, 1.0).astype(np.float32)


def _ellipse_sd(c: _Canvas, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Approximate signed distance (pixels) to an axis-aligned ellipse."""
    k = np.sqrt(((c.x - cx) / ax) ** 2 + ((c.y - cy) / ay) ** 2)
    return (k - 1.0) * min(ax, ay)


def _poly_cover(c: _Canvas, pts: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a polygon (pixel coords), via 8x sub-pixel fill."""
    mask = np.zeros((c.h, c.w), np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 8).astype(np.int32)], 255, cv2.LINE_AA, shift=3)
    return mask.astype(np.float32) / 255.0


def _noise(rng: np.random.Generator, h: int, w: int, cells_y: int, cells_x: int) -> np.ndarray:
    """Smooth value noise in [-1, 1]: a random grid upsampled with cubic interpolation."""
    grid = rng.uniform(-1.0, 1.0, (max(cells_y, 2), max(cells_x, 2))).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _fbm(rng: np.random.Generator, h: int, w: int, cells: int, octaves: int = 4) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for i in range(octaves):
        n = cells * 2**i
        out += amp * _noise(rng, h, w, n, n)
        total += amp
        amp *= 0.5
    return out / total


def _rgb(*v: float) -> np.ndarray:
    return np.array(v, np.float32) / 255.0


# --- backdrops ---------------------------------------------------------------------


def _plain_backdrop(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A light paper sweep: warm grey, lit from the upper left, falling off to the
    corners, with faint mottling."""
    tone = np.float32(rng.uniform(-8, 8)) + np.float32([0.0, 0.0, rng.uniform(-5, 2)])
    base = (np.float32([222, 219, 212]) + tone) / 255.0
    u = c.x / c.w - 0.35
    v = c.y / c.h - 0.3
    light = 1.04 - 0.10 * np.sqrt(u * u + v * v)
    # The sweep's curve: the floor part (lower) is a bit brighter than the wall part.
    light += 0.03 * _smoothstep(0.45, 0.8, c.y / c.h)
    vignette = 1.0 - 0.22 * (((c.x / c.w - 0.5) ** 2 + (c.y / c.h - 0.5) ** 2) * 2.0) ** 1.3
    mottle = 1.0 + 0.012 * _fbm(rng, c.h, c.w, 3)
    return base[None, None, :] * (light * vignette * mottle)[..., None]


def _wood_texture(rng: np.random.Generator, th: int, tw: int, planks: int) -> np.ndarray:
    """Flat (unprojected) table top, planks running along x: float HxWx3."""
    ys, xs = np.mgrid[0:th, 0:tw].astype(np.float32)
    plank_h = th / planks
    idx = np.minimum((ys / plank_h).astype(np.int32), planks - 1)
    in_plank = ys / plank_h - idx
    tones = rng.uniform(-0.07, 0.07, planks).astype(np.float32)
    freqs = rng.uniform(7.0, 14.0, planks).astype(np.float32)
    offsets = rng.uniform(0, 1, planks).astype(np.float32)
    # Growth rings cross a flat-sawn board as long lines that wander slowly along the
    # board and bunch up here and there: a phase warped by noise that changes much
    # faster across the board than along it.
    slow = _noise(rng, th, tw, planks * 3, 4) * 0.9
    mid = _noise(rng, th, tw, planks * 8, 14) * 0.18
    phase = in_plank * freqs[idx] + offsets[idx] + slow + mid
    for _ in range(3):
        kx, ky = rng.uniform(0.05, 0.95) * tw, rng.uniform(0.0, 1.0) * th
        kr = rng.uniform(0.010, 0.018) * th
        d2 = ((xs - kx) / (3.5 * kr)) ** 2 + ((ys - ky) / kr) ** 2
        phase += 1.6 * np.exp(-d2 * 0.5)
    rings = (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 6
    late = (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 1.5
    fibre = _noise(rng, th, tw, th // 2, tw // 40) * 0.6 + _noise(rng, th, tw, th, tw // 12) * 0.4

    light_wood = _rgb(184, 132, 86)
    dark_wood = _rgb(104, 64, 36)
    t = np.clip(0.12 + 0.25 * late + 0.45 * rings + 0.07 * fibre + tones[idx], 0.0, 1.0)
    col = light_wood * (1.0 - t[..., None]) + dark_wood * t[..., None]
    # Seams: a dark gap with a lit bevel on the edge facing the light.
    d = in_plank * plank_h
    seam = np.exp(-((d / 1.6) ** 2)) + np.exp(-(((plank_h - d) / 1.2) ** 2))
    bevel = np.exp(-(((d - 4.0) / 2.0) ** 2))
    return col * ((1.0 - 0.6 * seam) * (1.0 + 0.05 * bevel))[..., None]


def _wood_backdrop(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A wooden table top seen from slightly above: planks running left-right,
    foreshortened toward the back, lit by a window on the left."""
    h, w = c.h, c.w
    th, tw = 2 * h, 2 * w
    tex = _wood_texture(rng, th, tw, planks=7)
    # Ground-plane perspective: image row y sees depth ~ 1/(y/h + k). Far rows (top)
    # squeeze both the board widths and the lengths.
    k = 1.0
    yn = c.y / h
    inv = 1.0 / (yn + k)
    tv = (1.0 / k - inv) / (1.0 / k - 1.0 / (1.0 + k))  # 0 at the top, 1 at the bottom
    map_y = (0.04 + tv * 0.9) * th
    map_x = (c.x / w - 0.5) * (inv / (1.0 / (0.5 + k))) * 0.6 * tw + tw / 2
    # The far part is minified up to ~3x: blur the texture first so it doesn't alias.
    tex = cv2.GaussianBlur(tex, (0, 0), 1.0)
    wood = cv2.remap(
        tex,
        map_x.astype(np.float32),
        map_y.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    light = 1.08 - 0.2 * np.sqrt((c.x / w - 0.25) ** 2 + (yn - 0.4) ** 2)
    light *= 0.8 + 0.2 * _smoothstep(0.0, 0.4, yn)
    # Satin finish: a broad soft reflection of the window.
    sheen = 0.07 * np.exp(-(((c.x / w - 0.25) / 0.22) ** 2 + ((yn - 0.35) / 0.15) ** 2))
    return wood * light[..., None] + sheen[..., None]


def _cast_shadow(
    c: _Canvas, alpha: np.ndarray, foot: tuple[float, float, float], strength: float
) -> np.ndarray:
    """A multiplicative shadow map (1 = no shadow): a soft shadow of the product
    falling back and to the right, away from the key light, plus a dark contact
    shadow where it stands. `foot` = (centre x, base y, half-width) in pixels."""
    fx, fy, fw = foot
    # Lay the silhouette down behind the product: squash it vertically about the
    # base and shear it to the right.
    m = np.float32([[1.0, -0.45, 0.45 * fy], [0.0, 0.42, fy * (1 - 0.42)]])
    cast = cv2.warpAffine(alpha, m, (c.w, c.h), flags=cv2.INTER_LINEAR)
    cast = cv2.GaussianBlur(cast, (0, 0), 0.02 * c.s)
    contact = np.exp(-(((c.x - fx) / (fw * 1.05)) ** 2 + ((c.y - fy) / (0.012 * c.s)) ** 2) * 1.0)
    contact = contact * (c.y > fy - 0.01 * c.s)
    shadow = np.clip(0.55 * cast + 0.8 * contact, 0.0, 1.0)
    return 1.0 - strength * shadow


# --- products ----------------------------------------------------------------------
# Each returns (colour HxWx3 float in [0,1], alpha HxW float coverage, foot).


def _cylinder_normal(
    c: _Canvas, cx: float, half_width: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    nx = np.clip((c.x - cx) / np.maximum(half_width, 1e-3), -1.0, 1.0)
    nz = np.sqrt(1.0 - nx * nx)
    return nx, nz


def _bottle(
    c: _Canvas, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    s = c.s
    cx = c.w / 2 + rng.uniform(-0.04, 0.04) * s
    base = c.h / 2 + 0.36 * s
    body_r = 0.12 * s
    neck_r = 0.045 * s
    body_top = base - 0.40 * s
    shoulder_top = body_top - 0.11 * s
    neck_top = shoulder_top - 0.12 * s
    cap_top = neck_top - 0.07 * s
    cap_r = neck_r * 1.12

    y = c.y
    # Profile: half-width as a function of height, with a rounded heel at the base.
    heel = 0.025 * s
    r = np.full_like(y, body_r)
    t = np.clip((base - y) / heel, 0.0, 1.0)
    r = np.where(y > base - heel, body_r - heel + heel * np.sqrt(1 - (1 - t) ** 2), r)
    sh = _smoothstep(body_top, shoulder_top, y)
    r = np.where(y < body_top, body_r + (neck_r - body_r) * sh, r)
    r = np.where(y < shoulder_top, neck_r, r)
    lip = (y < neck_top + 0.012 * s) & (y >= neck_top)
    r = np.where(lip, neck_r * 1.08, r)
    is_cap = y < neck_top
    r = np.where(is_cap, cap_r, r)
    # The profile's slope makes horizontal distance overstate the true distance on the
    # shoulder; divide it out so edges there stay as soft as elsewhere.
    dr = np.gradient(r, axis=0)
    sd_side = (np.abs(c.x - cx) - r) / np.sqrt(1.0 + dr * dr)
    cap_round = 0.006 * s
    sd_v = np.maximum(cap_top + cap_round - y, y - base)
    alpha = _cover(np.maximum(sd_side, sd_v))

    nx, nz = _cylinder_normal(c, cx, r)
    # Amber glass: dark in the middle where the light passes through the most liquid,
    # brighter toward the walls, with sharp highlights from a softbox on the left.
    amber = _rgb(120, 58, 14)
    body = amber[None, None, :] * (0.55 + 0.6 * np.abs(nx) ** 2.5)[..., None]
    glow = np.exp(-(((nx - 0.45) / 0.18) ** 2)) * 0.35
    body = body + _rgb(220, 140, 50)[None, None, :] * glow[..., None]
    hl = np.exp(-(((nx + 0.55) / 0.07) ** 2)) * 0.85 + np.exp(-(((nx - 0.78) / 0.04) ** 2)) * 0.35
    hl = hl * _smoothstep(base, base - 0.05 * s, y) * (1 - is_cap)
    body = body + hl[..., None] * np.float32(0.95)
    # Paper label wrapped around the body: printed flat, then projected onto the
    # cylinder (the column seen at nx sits at arc angle asin(nx)).
    lab_top, lab_bot = body_top + 0.07 * s, base - 0.07 * s
    is_label = (y > lab_top) & (y < lab_bot) & (np.abs(c.x - cx) < r + 1)
    art_h, art_w = 360, 560
    art = np.empty((art_h, art_w, 3), np.float32)
    art[:] = _rgb(238, 232, 214)
    cream, red, ink = _rgb(238, 232, 214), _rgb(150, 30, 28), _rgb(40, 34, 30)
    cv2.rectangle(art, (0, 150), (art_w, 196), tuple(red.tolist()), -1)
    cv2.rectangle(art, (14, 14), (art_w - 14, art_h - 14), tuple(ink.tolist()), 2, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_TRIPLEX
    cv2.putText(art, "NORTHWIND", (96, 118), font, 1.9, tuple(ink.tolist()), 3, cv2.LINE_AA)
    cv2.putText(art, "MALT VINEGAR", (150, 184), font, 1.0, tuple(cream.tolist()), 2, cv2.LINE_AA)
    cv2.putText(art, "EST. 1921", (205, 262), font, 0.9, tuple(ink.tolist()), 1, cv2.LINE_AA)
    cv2.putText(art, "500 ml", (228, 318), font, 0.8, tuple(ink.tolist()), 1, cv2.LINE_AA)
    arc = np.arcsin(np.clip((c.x - cx) / body_r, -1, 1)) / np.pi  # -0.5 .. 0.5
    map_x = (arc + 0.5) * art_w
    map_y = (y - lab_top) / (lab_bot - lab_top) * art_h
    printed = cv2.remap(
        art, map_x, map_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    lab_shade = 0.35 + 0.65 * np.clip(nz * 0.8 + (-nx) * 0.35, 0, 1)
    label = printed * lab_shade[..., None]
    col = np.where(is_label[..., None], label, body)
    # Brushed metal cap with vertical ridges.
    ridges = 0.85 + 0.15 * np.sin(nx * 60.0)
    cap = (
        _rgb(190, 178, 150)[None, None, :] * ((0.3 + 0.8 * nz**1.5 - 0.25 * nx) * ridges)[..., None]
    )
    cap = cap + np.exp(-(((nx + 0.4) / 0.1) ** 2))[..., None] * 0.4
    col = np.where(is_cap[..., None], cap, col)
    # Edge darkening: glass walls seen at grazing angle.
    col = col * (0.75 + 0.25 * nz**0.5)[..., None]
    return np.clip(col, 0, 1.2), alpha, (cx, base, body_r)


def _box(
    c: _Canvas, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    s = c.s
    cx = c.w / 2 + rng.uniform(-0.04, 0.04) * s
    base = c.h / 2 + 0.33 * s
    fw, fh = 0.30 * s, 0.52 * s  # front face
    dx, dy = 0.13 * s, -0.07 * s  # receding side, seen from the right and a bit above
    x0 = cx - (fw + dx) / 2
    # Front face corners: tl, tr, br, bl.
    f = np.float32([[x0, base - fh], [x0 + fw, base - fh], [x0 + fw, base], [x0, base]])
    side = np.float32([f[1], f[1] + [dx, dy], f[2] + [dx, dy], f[2]])
    top = np.float32([f[0], f[0] + [dx, dy], f[1] + [dx, dy], f[1]])
    hull = np.float32([f[0], top[1], side[1], side[2], f[2], f[3]])
    alpha = _poly_cover(c, hull)

    # Printed front: rendered flat, then mapped onto the face.
    lw, lh = 600, int(600 * fh / fw)
    art = np.empty((lh, lw, 3), np.float32)
    art[:] = _rgb(28, 86, 140)
    cv2.rectangle(art, (0, int(lh * 0.62)), (lw, lh), tuple(_rgb(240, 236, 226).tolist()), -1)
    for i in range(5):
        y0 = int(lh * (0.66 + 0.05 * i))
        cv2.rectangle(art, (40, y0), (lw - 40, y0 + 8), tuple(_rgb(230, 120, 40).tolist()), -1)
    cv2.circle(
        art,
        (lw // 2, int(lh * 0.3)),
        int(lw * 0.22),
        tuple(_rgb(245, 200, 60).tolist()),
        -1,
        cv2.LINE_AA,
    )
    font = cv2.FONT_HERSHEY_DUPLEX
    white = tuple(_rgb(250, 250, 245).tolist())
    cv2.putText(art, "LUMEN", (70, int(lh * 0.53)), font, 3.6, white, 9, cv2.LINE_AA)
    cv2.putText(art, "SMART BULB  E27  9W", (60, int(lh * 0.60)), font, 1.15, white, 2, cv2.LINE_AA)
    ink = tuple(_rgb(40, 40, 48).tolist())
    cv2.putText(art, "warm white  2700K", (60, int(lh * 0.95)), font, 1.3, ink, 2, cv2.LINE_AA)
    src = np.float32([[0, 0], [lw, 0], [lw, lh], [0, lh]])
    front = cv2.warpPerspective(
        art,
        cv2.getPerspectiveTransform(src, f),
        (c.w, c.h),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )

    sw, sh = 200, lh
    side_art = np.empty((sh, sw, 3), np.float32)
    side_art[:] = _rgb(24, 74, 122)
    cv2.rectangle(side_art, (0, int(sh * 0.62)), (sw, sh), tuple(_rgb(232, 228, 218).tolist()), -1)
    for i in range(12):
        yb = int(sh * 0.67) + i * 14
        cv2.rectangle(side_art, (20 + (i % 3) * 10, yb), (sw - 30, yb + 5), ink, -1)
    side_img = cv2.warpPerspective(
        side_art,
        cv2.getPerspectiveTransform(np.float32([[0, 0], [sw, 0], [sw, sh], [0, sh]]), side),
        (c.w, c.h),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )
    top_art = np.empty((100, lw, 3), np.float32)
    top_art[:] = _rgb(34, 96, 152)
    top_img = cv2.warpPerspective(
        top_art,
        cv2.getPerspectiveTransform(np.float32([[0, 100], [0, 0], [lw, 0], [lw, 100]]), top),
        (c.w, c.h),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )

    m_front = _poly_cover(c, f)
    m_side = _poly_cover(c, side)
    m_top = _poly_cover(c, top)
    # Key light from the upper left: front fairly lit with a gentle gradient, the
    # side in shade, the top brightest.
    grad = 1.02 - 0.12 * (c.y - (base - fh)) / fh - 0.06 * (c.x - x0) / fw
    col = front * (grad * 0.95)[..., None] * m_front[..., None]
    col += side_img * 0.58 * m_side[..., None] * (1 - m_front[..., None])
    col += top_img * 1.18 * m_top[..., None] * (1 - m_front[..., None]) * (1 - m_side[..., None])
    # Edges of a carton catch light: a thin bright line along the front-top and
    # front-side creases.
    for a_pt, b_pt in ((f[0], f[1]), (f[1], f[2])):
        line = np.zeros((c.h, c.w), np.uint8)
        cv2.line(
            line,
            tuple(np.round(a_pt * 8).astype(int)),
            tuple(np.round(b_pt * 8).astype(int)),
            255,
            2,
            cv2.LINE_AA,
            shift=3,
        )
        col += (line.astype(np.float32) / 255.0 * 0.18)[..., None]
    # The faces' anti-aliased masks overlap along creases; normalise their sum so
    # creases are not darker or brighter than the faces.
    faces = np.clip(m_front + m_side + m_top, 0, 1)
    col = col / np.maximum(faces, 1e-6)[..., None] * (alpha > 0)[..., None]
    # Cut cardboard edges are slightly rounded and turn away from the light, so the
    # outline of a real carton reads as a thin darker line, even white on white.
    inner = cv2.erode((alpha > 0.999).astype(np.uint8), np.ones((3, 3), np.uint8))
    rim = cv2.GaussianBlur(1.0 - inner.astype(np.float32), (0, 0), 0.8) * (alpha > 0)
    col = col * (1.0 - 0.28 * rim)[..., None]
    return np.clip(col, 0, 1.2), alpha, (cx + dx * 0.3, base, (fw + dx) / 2)


def _mug(
    c: _Canvas, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    s = c.s
    cx = c.w / 2 - 0.05 * s + rng.uniform(-0.03, 0.03) * s
    base = c.h / 2 + 0.25 * s
    r = 0.19 * s
    height = 0.44 * s
    top = base - height
    ell = 0.045 * s  # half-height of the rim ellipse (seen from slightly above)

    # Body: a cylinder whose top and bottom are ellipses.
    sd_side = np.abs(c.x - cx) - r
    yy = np.clip((c.x - cx) / r, -1, 1)
    bottom_y = base + ell * np.sqrt(1 - yy * yy)
    sd_bottom = c.y - bottom_y
    sd_top_rim = _ellipse_sd(c, cx, top, r, ell)
    in_band = np.maximum(np.maximum(sd_side, top - c.y), sd_bottom)
    body_sd = np.minimum(in_band, sd_top_rim)
    # Handle: an elliptical ring on the right, partly hidden behind the body.
    hx, hy = cx + r + 0.02 * s, top + height * 0.47
    outer = _ellipse_sd(c, hx, hy, 0.125 * s, 0.15 * s)
    inner = _ellipse_sd(c, hx, hy, 0.07 * s, 0.095 * s)
    ring_sd = np.maximum(outer, -inner)
    ring_sd = np.maximum(ring_sd, cx + r * 0.6 - c.x)
    alpha = _cover(np.minimum(body_sd, ring_sd))

    glaze = _rgb(60, 128, 126) + rng.uniform(-0.03, 0.03, 3).astype(np.float32)
    nx, nz = _cylinder_normal(c, cx, np.float32(r))
    diffuse = 0.28 + 0.78 * np.clip(0.75 * nz - 0.55 * nx + 0.1, 0, 1)
    body = glaze[None, None, :] * diffuse[..., None]
    spec = np.exp(-(((nx + 0.42) / 0.08) ** 2)) * 0.55 + np.exp(-(((nx - 0.8) / 0.05) ** 2)) * 0.12
    body = body + spec[..., None]
    # Interior seen through the rim: darker glaze, lit on the far (right) wall.
    inner_rim = _ellipse_sd(c, cx, top, r * 0.93, ell * 0.86)
    inside = _cover(inner_rim)
    inner_col = glaze * 0.55
    inner_light = 0.45 + 0.6 * _smoothstep(-0.9, 0.9, (c.x - cx) / r)
    body = (
        body * (1 - inside[..., None])
        + (inner_col[None, None, :] * inner_light[..., None]) * inside[..., None]
    )
    rim = _cover(np.abs(sd_top_rim + 0.0045 * s) - 0.004 * s) * (1 - inside)
    body = body + rim[..., None] * 0.25
    # Unglazed foot ring.
    foot = (c.y > base - 0.018 * s + ell * np.sqrt(1 - yy * yy)) & (c.y <= bottom_y + 1)
    body = np.where(foot[..., None], _rgb(200, 188, 168)[None, None, :] * diffuse[..., None], body)

    # Handle shading: a torus lit from the upper left.
    hnx = np.clip((c.x - hx) / (0.125 * s), -1, 1)
    hny = np.clip((c.y - hy) / (0.15 * s), -1, 1)
    tube = np.clip(1.0 - np.abs(np.sqrt(hnx**2 + hny**2) - 0.7) / 0.3, 0, 1)
    handle = glaze[None, None, :] * (0.35 + 0.55 * tube - 0.25 * hny * tube)[..., None]
    handle = handle + (np.exp(-(((hny + 0.55) / 0.15) ** 2)) * tube * 0.25)[..., None]
    body_cov = _cover(body_sd)
    col = body * body_cov[..., None] + handle * (1 - body_cov[..., None])
    return np.clip(col, 0, 1.2), alpha, (cx + 0.05 * s, base + ell * 0.7, r * 1.1)


_PRODUCT_RENDERERS = {"bottle": _bottle, "box": _box, "mug": _mug}
