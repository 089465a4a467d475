"""Deterministic synthetic product photos with exact ground-truth alpha.

Used by tests (matting IoU), benchmarks and the demo, so they have to look like
photos: shaded products with anti-aliased edges on a lit backdrop with a cast shadow
and sensor grain. Every pixel comes from numpy/OpenCV with a seeded generator, so the
same (product, backdrop, size, seed) gives the same bytes on every machine.

Products: "bottle" (amber glass with neck, cap and label), "box" (a printed carton in
three-quarter view), "mug" (glazed mug whose handle has a hole showing the backdrop),
and the hard cases: "lotion" (a white bottle with a white paper label), "camera" (a
black camera body and lens), "tumbler" (a clear glass: fractional alpha, the backdrop
seen through it), "plush" (a fuzzy toy whose outline is fine strands of fractional
alpha), "tape" (a roll of tape standing up, the backdrop seen through its core).
Backdrops: "plain" (uneven light paper sweep with vignette), "wood" (a table top of
planks with procedural grain), "white" (a high-key white sweep), "dark" (a charcoal
sweep under a spot light), "tiles" (a table of glazed two-colour tiles), "counter" (a
cluttered kitchen counter: tiled wall, granite top, a cutting board, a utensil crock,
an oil bottle and a fruit bowl, all background). The cast shadow belongs to the
backdrop: alpha is 0 there, as a matting model should find. Glass and fur keep their
fractional alpha: the photo is exactly `fg * alpha + backdrop * (1 - alpha)` before the
lens blur and grain, so the ground truth is exact there too.

`all_samples` is the original six (bottle, box, mug on plain, wood); `varied_samples`
is the benchmark set: 24 photos with a `kind` each (plain, textured, busy,
white-on-white, dark-on-dark, glass, fur, holes).

Arrays: rgb uint8 HxWx3 (RGB), alpha uint8 HxW (255 = product).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Product = Literal["bottle", "box", "mug", "lotion", "camera", "tumbler", "plush", "tape"]
Backdrop = Literal["plain", "wood", "white", "dark", "tiles", "counter"]
# New entries go at the end: a sample's random streams are seeded by these indices.
PRODUCTS: tuple[Product, ...] = (
    "bottle",
    "box",
    "mug",
    "lotion",
    "camera",
    "tumbler",
    "plush",
    "tape",
)
BACKDROPS: tuple[Backdrop, ...] = ("plain", "wood", "white", "dark", "tiles", "counter")
# The products whose alpha is 255 inside and partial only along a hard outline.
OPAQUE_PRODUCTS: tuple[Product, ...] = ("bottle", "box", "mug", "lotion", "camera", "tape")

# The benchmark set: (kind, product, backdrop), grouped by kind.
VARIED_SET: tuple[tuple[str, Product, Backdrop], ...] = (
    ("plain", "bottle", "plain"),
    ("plain", "box", "plain"),
    ("plain", "mug", "plain"),
    ("plain", "camera", "plain"),
    ("textured", "bottle", "wood"),
    ("textured", "box", "wood"),
    ("textured", "box", "tiles"),
    ("textured", "lotion", "tiles"),
    ("busy", "bottle", "counter"),
    ("busy", "box", "counter"),
    ("busy", "mug", "counter"),
    ("white-on-white", "lotion", "white"),
    ("white-on-white", "lotion", "plain"),
    ("dark-on-dark", "camera", "dark"),
    ("dark-on-dark", "bottle", "dark"),
    ("dark-on-dark", "camera", "wood"),
    ("glass", "tumbler", "plain"),
    ("glass", "tumbler", "wood"),
    ("glass", "tumbler", "counter"),
    ("fur", "plush", "plain"),
    ("fur", "plush", "tiles"),
    ("fur", "plush", "dark"),
    ("holes", "mug", "wood"),
    ("holes", "tape", "plain"),
)
KINDS: tuple[str, ...] = tuple(dict.fromkeys(k for k, _, _ in VARIED_SET))
_SHADOW_STRENGTH: dict[str, float] = {
    "plain": 0.42,
    "wood": 0.5,
    "white": 0.36,
    "dark": 0.5,
    "tiles": 0.45,
    "counter": 0.45,
}


@dataclass(frozen=True)
class Sample:
    rgb: np.ndarray  # uint8 HxWx3 RGB
    alpha: np.ndarray  # uint8 HxW, exact coverage of the product
    name: str
    kind: str = ""  # the benchmark's group (VARIED_SET); empty outside it


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
    bg = _BACKDROP_RENDERERS[backdrop](canvas, rng_bg)
    bg = bg * _cast_shadow(canvas, alpha, foot, strength=_SHADOW_STRENGTH[backdrop])[..., None]

    a = alpha[..., None]
    img = fg * a + bg * (1.0 - a)
    # A lens is never perfectly sharp; soften a touch, then add grain like a sensor.
    img = cv2.GaussianBlur(img, (0, 0), 0.5)
    img = img + rng_noise.normal(0.0, 1.6 / 255.0, img.shape).astype(np.float32)
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    alpha_u8 = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Sample(rgb=rgb, alpha=alpha_u8, name=f"{product}_{backdrop}")


def all_samples(size: tuple[int, int] = (1024, 1024), seed: int = 0) -> Iterator[Sample]:
    """The original six: bottle, box, mug x plain, wood, in that order."""
    for product in PRODUCTS[:3]:
        for backdrop in BACKDROPS[:2]:
            yield make_sample(product, backdrop, size=size, seed=seed)


def varied_samples(size: tuple[int, int] = (1024, 1024), seed: int = 0) -> Iterator[Sample]:
    """The benchmark set VARIED_SET in order, each Sample carrying its `kind`."""
    for kind, product, backdrop in VARIED_SET:
        s = make_sample(product, backdrop, size=size, seed=seed)
        yield Sample(rgb=s.rgb, alpha=s.alpha, name=s.name, kind=kind)


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
    tex = _wood_texture(rng, 2 * c.h, 2 * c.w, planks=7)
    return _table_top(c, tex)


def _table_top(c: _Canvas, tex: np.ndarray) -> np.ndarray:
    """A flat table texture (float 2H x 2W x 3) laid on the ground plane, seen from
    slightly above and lit by a window on the left."""
    h, w = c.h, c.w
    th, tw = tex.shape[:2]
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
    top = cv2.remap(
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
    return top * light[..., None] + sheen[..., None]


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


def _profile_alpha(
    c: _Canvas, cx: float, r: np.ndarray, y_top: float, y_bottom: float, round_top: float
) -> np.ndarray:
    """Coverage of a turned (round) product: half-width `r` per row between y_top and
    y_bottom, its top rounded by `round_top` pixels."""
    dr = np.gradient(r, axis=0)
    sd_side = (np.abs(c.x - cx) - r) / np.sqrt(1.0 + dr * dr)
    sd_v = np.maximum(y_top + round_top - c.y, c.y - y_bottom)
    return _cover(np.maximum(sd_side, sd_v))


def _lotion(
    c: _Canvas, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A white plastic bottle with a flip cap and a white paper label printed in pale
    grey: white on white, the case where colour says nothing about the outline."""
    s = c.s
    cx = c.w / 2 + rng.uniform(-0.04, 0.04) * s
    base = c.h / 2 + 0.34 * s
    body_r = 0.13 * s
    neck_r = 0.05 * s
    body_top = base - 0.42 * s
    neck_bottom = body_top - 0.06 * s
    neck_top = neck_bottom - 0.03 * s
    cap_r = 0.058 * s
    cap_top = neck_top - 0.095 * s
    y = c.y
    heel = 0.02 * s
    t = np.clip((base - y) / heel, 0.0, 1.0)
    r = np.full_like(y, body_r)
    r = np.where(y > base - heel, body_r - heel + heel * np.sqrt(1 - (1 - t) ** 2), r)
    # A round shoulder: a quarter ellipse from the body to the neck.
    q = np.clip((body_top - y) / (body_top - neck_bottom), 0.0, 1.0)
    shoulder = neck_r + (body_r - neck_r) * np.sqrt(1.0 - q * q)
    r = np.where(y < body_top, shoulder, r)
    r = np.where(y < neck_bottom, neck_r, r)
    is_cap = y < neck_top
    r = np.where(is_cap, cap_r, r)
    alpha = _profile_alpha(c, cx, r, cap_top, base, 0.012 * s)

    nx, nz = _cylinder_normal(c, cx, r)
    plastic = _rgb(236, 236, 233)
    diffuse = 0.6 + 0.42 * np.clip(0.75 * nz - 0.5 * nx + 0.1, 0, 1)
    body = plastic[None, None, :] * diffuse[..., None]
    body = body + (np.exp(-(((nx + 0.5) / 0.12) ** 2)) * 0.12)[..., None]
    lab_top, lab_bot = body_top + 0.05 * s, base - 0.05 * s
    is_label = (y > lab_top) & (y < lab_bot) & (np.abs(c.x - cx) < r + 1)
    art_h, art_w = 360, 600
    paper = _rgb(250, 249, 245)
    art = np.empty((art_h, art_w, 3), np.float32)
    art[:] = paper
    grey, pale = _rgb(196, 196, 194), _rgb(214, 226, 234)
    font = cv2.FONT_HERSHEY_DUPLEX
    cv2.rectangle(art, (0, 210), (art_w, 222), tuple(pale.tolist()), -1)
    cv2.putText(art, "SOFT", (215, 120), font, 2.2, tuple(grey.tolist()), 3, cv2.LINE_AA)
    cv2.putText(art, "body lotion", (205, 180), font, 1.0, tuple(grey.tolist()), 1, cv2.LINE_AA)
    cv2.putText(art, "250 ml", (250, 290), font, 0.8, tuple(grey.tolist()), 1, cv2.LINE_AA)
    arc = np.arcsin(np.clip((c.x - cx) / body_r, -1, 1)) / np.pi
    printed = cv2.remap(
        art,
        ((arc + 0.5) * art_w).astype(np.float32),
        ((y - lab_top) / (lab_bot - lab_top) * art_h).astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    label = printed * (0.62 + 0.42 * np.clip(0.75 * nz - 0.5 * nx + 0.1, 0, 1))[..., None]
    # The label's paper edge throws a hairline shadow onto the bottle.
    edge = np.exp(-(((y - lab_top) / 1.2) ** 2)) + np.exp(-(((y - lab_bot) / 1.2) ** 2))
    col = np.where(is_label[..., None], label, body) * (1.0 - 0.12 * edge)[..., None]
    seam = np.exp(-(((y - (cap_top + 0.065 * s)) / 1.0) ** 2))
    cap = plastic[None, None, :] * ((0.55 + 0.45 * nz - 0.15 * nx) * (1.0 - 0.3 * seam))[..., None]
    col = np.where(is_cap[..., None], cap, col)
    return np.clip(col, 0, 1.2), alpha, (cx, base, body_r)


def _rounded_box_sd(
    c: _Canvas, x0: float, y0: float, x1: float, y1: float, radius: float
) -> np.ndarray:
    hx, hy = (x1 - x0) / 2 - radius, (y1 - y0) / 2 - radius
    qx = np.abs(c.x - (x0 + x1) / 2) - hx
    qy = np.abs(c.y - (y0 + y1) / 2) - hy
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0) - radius


def _rim_light(c: _Canvas, alpha: np.ndarray, width: float) -> np.ndarray:
    """A thin highlight along the parts of the outline that face the upper left."""
    soft = cv2.GaussianBlur(alpha, (0, 0), width)
    gy, gx = np.gradient(soft)
    facing = np.clip((gx * 0.6 + gy * 0.8) / (np.hypot(gx, gy) + 1e-6), 0, 1)
    inner = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    return np.exp(-inner / width) * facing * (alpha > 0.5)


def _camera(
    c: _Canvas, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A black camera body with a lens, seen from the front: dark leatherette, a
    glossier top plate, a rim light on its upper edges, a lens with coated glass."""
    s = c.s
    cx = c.w / 2 + rng.uniform(-0.04, 0.04) * s
    base = c.h / 2 + 0.2 * s
    bw, bh = 0.58 * s, 0.3 * s
    x0, x1, y0 = cx - bw / 2, cx + bw / 2, base - bh
    body_sd = _rounded_box_sd(c, x0, y0, x1, base, 0.035 * s)
    hx = cx - 0.02 * s
    hump = np.float32(
        [
            [hx - 0.11 * s, y0 + 0.01 * s],
            [hx - 0.065 * s, y0 - 0.085 * s],
            [hx + 0.065 * s, y0 - 0.085 * s],
            [hx + 0.11 * s, y0 + 0.01 * s],
        ]
    )
    hump_cov = _poly_cover(c, hump)
    dial_sd = _rounded_box_sd(c, cx + 0.12 * s, y0 - 0.03 * s, cx + 0.21 * s, y0 + 0.01 * s, 4.0)
    grip_sd = _ellipse_sd(c, x0 + 0.06 * s, base - bh * 0.5, 0.075 * s, 0.14 * s)
    lx, ly, lr = cx + 0.03 * s, base - bh * 0.5, 0.135 * s
    lens_sd = np.hypot(c.x - lx, c.y - ly) - lr
    solid = _cover(np.minimum(np.minimum(body_sd, dial_sd), np.minimum(grip_sd, lens_sd)))
    alpha = 1.0 - (1.0 - solid) * (1.0 - hump_cov)

    grain = 1.0 + 0.08 * _noise(rng, c.h, c.w, c.h // 3, c.w // 3)
    body = _rgb(30, 30, 33)[None, None, :] * grain[..., None]
    body = body * (1.05 - 0.25 * ((c.y - y0) / bh))[..., None]
    is_top = (c.y < y0 + 0.05 * s) | (hump_cov > 0) | (dial_sd < 0)
    top_col = _rgb(44, 44, 48)[None, None, :] * (1.1 - 0.6 * (c.x - x0) / bw)[..., None]
    col = np.where(is_top[..., None], top_col, body)
    grip = _cover(grip_sd) * (1 - _cover(lens_sd))
    col = (
        col * (1.0 + 0.25 * grip * np.clip(-(c.x - (x0 + 0.06 * s)) / (0.075 * s), 0, 1))[..., None]
    )
    font = cv2.FONT_HERSHEY_SIMPLEX
    text = np.zeros((c.h, c.w), np.uint8)
    cv2.putText(
        text,
        "OBSCURA",
        (int(hx - 0.058 * s), int(y0 - 0.03 * s)),
        font,
        0.00085 * s,
        255,
        max(1, int(0.002 * s)),
        cv2.LINE_AA,
    )
    col = col + (text.astype(np.float32) / 255.0 * 0.45)[..., None]
    red = _cover(np.hypot(c.x - (x1 - 0.05 * s), c.y - (y0 + 0.05 * s)) - 0.008 * s)
    col = col * (1 - red[..., None]) + _rgb(200, 20, 30)[None, None, :] * red[..., None]
    # The lens: a ribbed rubber ring, a metal ring, the black barrel, coated glass.
    rr = np.hypot(c.x - lx, c.y - ly) / lr
    ang = np.arctan2(c.y - ly, c.x - lx)
    ribs = 0.8 + 0.2 * np.sin(ang * 120.0)
    lens = _rgb(24, 24, 26)[None, None, :] * ribs[..., None]
    metal = (rr < 0.8) & (rr > 0.72)
    lens = np.where(
        metal[..., None],
        _rgb(70, 70, 74)[None, None, :] * (1.2 + 0.4 * np.sin(ang))[..., None],
        lens,
    )
    barrel = rr <= 0.72
    lens = np.where(barrel[..., None], _rgb(14, 14, 16)[None, None, :], lens)
    glass = rr < 0.5
    coat = _rgb(40, 30, 70) * 1.0 + 0.0 * rr[..., None]
    refl = np.exp(-(((c.x - lx + 0.2 * lr) ** 2 + (c.y - ly + 0.2 * lr) ** 2) / (0.02 * lr * lr)))
    coat = coat + refl[..., None] * _rgb(120, 200, 150)
    hl = np.exp(-(((c.x - lx + 0.25 * lr) ** 2 + (c.y - ly + 0.28 * lr) ** 2) / (0.002 * lr * lr)))
    coat = coat + hl[..., None] * 0.9
    lens = np.where(glass[..., None], coat, lens)
    lens_cov = _cover(lens_sd)[..., None]
    col = col * (1 - lens_cov) + lens * lens_cov
    col = col + (_rim_light(c, alpha, 0.0025 * s) * 0.35)[..., None]
    return np.clip(col, 0, 1.2), alpha, (cx, base, bw / 2)


def _tumbler(
    c: _Canvas, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A clear glass tumbler: mostly see-through (alpha about 0.15 in the middle),
    dark walls where the glass is seen edge-on, a thick base, a bright rim and two
    highlight streaks. Its alpha is genuinely fractional."""
    s = c.s
    cx = c.w / 2 + rng.uniform(-0.03, 0.03) * s
    base = c.h / 2 + 0.3 * s
    height = 0.5 * s
    top = base - height
    r_top, r_bot = 0.15 * s, 0.12 * s
    ell_top, ell_bot = 0.035 * s, 0.028 * s
    f = np.clip((c.y - top) / height, 0.0, 1.0)
    r = r_top + (r_bot - r_top) * f
    sd_side = np.abs(c.x - cx) - r
    u = np.clip((c.x - cx) / r_bot, -1, 1)
    bottom_y = base + ell_bot * np.sqrt(1 - u * u)
    band = np.maximum(np.maximum(sd_side, top - c.y), c.y - bottom_y)
    rim_sd = _ellipse_sd(c, cx, top, r_top, ell_top)
    cov = _cover(np.minimum(band, rim_sd))

    nx = np.clip((c.x - cx) / r, -1, 1)
    wall = np.abs(nx) ** 10
    opacity = 0.14 + 0.6 * wall
    thick = _smoothstep(base - 0.075 * s, base - 0.055 * s, c.y)
    opacity = opacity + (0.78 - opacity) * thick
    rim_line = np.exp(-((rim_sd / (0.0035 * s)) ** 2))
    opacity = opacity + (0.9 - opacity) * rim_line
    streak = np.exp(-(((nx + 0.62) / 0.05) ** 2)) * (1 - thick) * 0.8
    streak2 = np.exp(-(((nx - 0.74) / 0.025) ** 2)) * (1 - thick) * 0.55
    hl = np.maximum(streak, streak2)
    opacity = opacity + (0.92 - opacity) * hl
    alpha = cov * np.clip(opacity, 0, 1)

    glass = _rgb(206, 222, 218)[None, None, :] * np.ones_like(c.x)[..., None]
    edge_col = _rgb(52, 66, 64)
    col = glass * (1 - wall[..., None]) + edge_col[None, None, :] * wall[..., None]
    base_col = _rgb(150, 178, 172) * (0.8 + 0.3 * rng.uniform())
    col = col * (1 - thick[..., None]) + base_col[None, None, :] * thick[..., None]
    col = col * (1 - hl[..., None]) + hl[..., None] * 1.0
    col = col * (1 - rim_line[..., None]) + rim_line[..., None] * _rgb(235, 245, 242)
    return np.clip(col, 0, 1.2), alpha.astype(np.float32), (cx, base, r_bot)


def _plush(
    c: _Canvas, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A plush bear: body, head, ears and feet whose outline is a fringe of fine
    strands, each thinner than a pixel, so the fur's alpha is fractional."""
    s = c.s
    cx = c.w / 2 + rng.uniform(-0.03, 0.03) * s
    base = c.h / 2 + 0.34 * s
    parts = [
        _ellipse_sd(c, cx, base - 0.17 * s, 0.19 * s, 0.16 * s),
        _ellipse_sd(c, cx, base - 0.43 * s, 0.15 * s, 0.14 * s),
        _ellipse_sd(c, cx - 0.115 * s, base - 0.555 * s, 0.055 * s, 0.055 * s),
        _ellipse_sd(c, cx + 0.115 * s, base - 0.555 * s, 0.055 * s, 0.055 * s),
        _ellipse_sd(c, cx - 0.1 * s, base - 0.035 * s, 0.075 * s, 0.035 * s),
        _ellipse_sd(c, cx + 0.1 * s, base - 0.035 * s, 0.075 * s, 0.035 * s),
    ]
    sd = parts[0]
    for p in parts[1:]:
        sd = np.minimum(sd, p)
    # The pile itself is a soft edge of about two pixels, not a cut line.
    core = np.clip(0.5 - sd / 2.0, 0.0, 1.0).astype(np.float32)

    # Strands drawn at 4x on an 8-bit canvas: anti-aliased drawing with value 255
    # blends as 1 - (1 - a)(1 - b), which is exactly how overlapping strands cover.
    k = 4
    hair = np.zeros((c.h * k, c.w * k), np.uint8)
    mask = (sd < 0).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = np.concatenate([ct[:, 0, :] for ct in contours]).astype(np.float32) + 0.5
    gy, gx = np.gradient(cv2.GaussianBlur(sd, (0, 0), 3.0))
    n_strands = int(len(pts) * 3)
    idx = rng.integers(0, len(pts), n_strands)
    jitter = rng.uniform(-0.5, 0.5, (n_strands, 2)).astype(np.float32)
    turn = rng.normal(0.0, 0.45, n_strands)
    bend = rng.normal(0.0, 0.25, n_strands)
    length = rng.uniform(0.006, 0.028, n_strands) * s
    for i in range(n_strands):
        px, py = pts[idx[i]] + jitter[i]
        xi, yi = min(int(px), c.w - 1), min(int(py), c.h - 1)
        a = np.arctan2(gy[yi, xi], gx[yi, xi]) + turn[i]
        dx, dy = np.cos(a), np.sin(a)
        sx, sy = px - dx * length[i] * 0.35, py - dy * length[i] * 0.35
        mx, my = sx + dx * length[i] * 0.5, sy + dy * length[i] * 0.5
        b = a + bend[i]
        ex, ey = mx + np.cos(b) * length[i] * 0.5, my + np.sin(b) * length[i] * 0.5
        p0 = (int(sx * k * 16), int(sy * k * 16))
        p1 = (int(mx * k * 16), int(my * k * 16))
        p2 = (int(ex * k * 16), int(ey * k * 16))
        cv2.line(hair, p0, p1, 255, 1, cv2.LINE_AA, shift=4)
        cv2.line(hair, p1, p2, 255, 1, cv2.LINE_AA, shift=4)
    strands = cv2.resize(hair, (c.w, c.h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    alpha = 1.0 - (1.0 - core) * (1.0 - strands)

    fur = _rgb(206, 168, 122) * (1.0 + rng.uniform(-0.05, 0.05, 3).astype(np.float32))
    depth = cv2.GaussianBlur(np.clip(-sd, 0, 0.08 * s), (0, 0), 0.02 * s) / (0.08 * s)
    light = 0.62 + 0.45 * np.clip(depth, 0, 1) - 0.12 * (c.x - cx) / (0.2 * s)
    pile = (
        1.0
        + 0.1 * _noise(rng, c.h, c.w, c.h // 2, c.w // 6)
        + 0.06 * _noise(rng, c.h, c.w, c.h // 6, c.w // 2)
    )
    col = fur[None, None, :] * (light * pile)[..., None]
    # Tips catch the light: strands are a little lighter than the pile.
    col = col * (1.0 + 0.12 * strands)[..., None]
    muzzle = _cover(_ellipse_sd(c, cx, base - 0.39 * s, 0.065 * s, 0.05 * s))
    col = col * (1 - muzzle[..., None]) + (_rgb(232, 208, 172) * 0.95) * muzzle[..., None]
    for ex in (cx - 0.055 * s, cx + 0.055 * s):
        eye = _cover(np.hypot(c.x - ex, c.y - (base - 0.46 * s)) - 0.016 * s)
        col = col * (1 - eye[..., None]) + _rgb(18, 14, 12) * eye[..., None]
        glint = _cover(np.hypot(c.x - ex + 0.005 * s, c.y - (base - 0.466 * s)) - 0.004 * s)
        col = col + glint[..., None] * 0.7
    nose = _cover(_ellipse_sd(c, cx, base - 0.405 * s, 0.022 * s, 0.015 * s))
    col = col * (1 - nose[..., None]) + _rgb(52, 30, 24) * nose[..., None]
    return np.clip(col, 0, 1.2), alpha.astype(np.float32), (cx, base, 0.19 * s)


def _tape(
    c: _Canvas, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A roll of painter's tape standing on its edge, seen a little from the left:
    its hole shows the backdrop where the front and back openings line up."""
    s = c.s
    big_r, core_r, hole_r = 0.2 * s, 0.128 * s, 0.11 * s
    depth = 0.07 * s
    cx = c.w / 2 - depth / 2 + rng.uniform(-0.03, 0.03) * s
    base = c.h / 2 + 0.3 * s
    cy = base - big_r
    front = np.hypot(c.x - cx, c.y - cy)
    back = np.hypot(c.x - cx - depth, c.y - cy)
    side = np.maximum(np.maximum(cx - c.x, c.x - cx - depth), np.abs(c.y - cy) - big_r)
    outer_sd = np.minimum(np.minimum(front - big_r, back - big_r), side)
    hole_sd = np.maximum(front - hole_r, back - hole_r)
    alpha = _cover(np.maximum(outer_sd, -hole_sd))

    tape = _rgb(70, 136, 200) * (1.0 + rng.uniform(-0.05, 0.05, 3).astype(np.float32))
    layers = (
        0.9
        + 0.08 * np.sin(front / (0.0035 * s) * 2 * np.pi)
        + 0.04 * _noise(rng, c.h, c.w, c.h // 8, c.w // 8)
    )
    face = tape[None, None, :] * (layers * (1.02 - 0.15 * (c.y - cy) / big_r))[..., None]
    on_face = _cover(front - big_r)
    # The outside of the roll, turning away from the light toward the right.
    turn = np.clip((c.x - cx) / depth, 0, 1)
    ang = np.arcsin(np.clip((c.y - cy) / big_r, -1, 1))
    outside = tape * 0.85
    outside = outside[None, None, :] * (0.55 + 0.35 * np.cos(ang) - 0.15 * turn)[..., None]
    col = outside * (1 - on_face[..., None]) + face * on_face[..., None]
    card = _rgb(186, 152, 108)
    core_face = (front < core_r) & (front >= hole_r)
    col = np.where(core_face[..., None], card[None, None, :] * 1.0, col)
    # Inside the front opening but not through the back: the core's inner wall.
    inner_wall = (front < hole_r) & (back >= hole_r)
    wall_col = card[None, None, :] * (0.45 + 0.2 * (c.y - cy) / hole_r)[..., None]
    col = np.where(inner_wall[..., None], wall_col, col)
    return np.clip(col, 0, 1.2), alpha, (cx + depth / 2, base, big_r * 0.7)


_PRODUCT_RENDERERS = {
    "bottle": _bottle,
    "box": _box,
    "mug": _mug,
    "lotion": _lotion,
    "camera": _camera,
    "tumbler": _tumbler,
    "plush": _plush,
    "tape": _tape,
}


# --- backdrops for the hard cases ---------------------------------------------------


def _white_backdrop(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A high-key white sweep: nearly white everywhere, a faint falloff."""
    tone = np.float32(rng.uniform(-2, 2))
    base = (np.float32([247, 247, 245]) + tone) / 255.0
    u = c.x / c.w - 0.4
    v = c.y / c.h - 0.35
    light = 1.01 - 0.05 * np.sqrt(u * u + v * v) + 0.01 * _smoothstep(0.45, 0.8, c.y / c.h)
    mottle = 1.0 + 0.006 * _fbm(rng, c.h, c.w, 3)
    return np.minimum(base[None, None, :] * (light * mottle)[..., None], 1.0)


def _dark_backdrop(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A charcoal sweep under a spot light: about 20 in the corners, 60 at the centre."""
    tone = np.float32(rng.uniform(-3, 3))
    base = (np.float32([36, 36, 40]) + tone) / 255.0
    spot = np.exp(-(((c.x / c.w - 0.45) / 0.42) ** 2 + ((c.y / c.h - 0.45) / 0.5) ** 2))
    light = 0.55 + 1.05 * spot + 0.08 * _smoothstep(0.45, 0.8, c.y / c.h)
    mottle = 1.0 + 0.03 * _fbm(rng, c.h, c.w, 3)
    return base[None, None, :] * (light * mottle)[..., None]


def _tile_texture(rng: np.random.Generator, th: int, tw: int, across: int) -> np.ndarray:
    """Flat glazed tiles in two colours laid as a checkerboard, with grout lines."""
    ys, xs = np.mgrid[0:th, 0:tw].astype(np.float32)
    size = tw / across
    ix, iy = (xs // size).astype(np.int32), (ys // size).astype(np.int32)
    rows = int(np.ceil(th / size)) + 1
    tones = rng.uniform(-0.06, 0.06, (rows, across + 1)).astype(np.float32)
    cream, slate = _rgb(226, 216, 194), _rgb(62, 92, 112)
    checker = ((ix + iy) % 2 == 1)[..., None]
    col = np.where(checker, slate[None, None, :], cream[None, None, :])
    col = col * (1.0 + tones[iy, ix] + 0.05 * _fbm(rng, th, tw, 12))[..., None]
    u, v = xs / size - ix, ys / size - iy
    d = np.minimum(np.minimum(u, 1 - u), np.minimum(v, 1 - v)) * size
    grout = 1.0 - _smoothstep(2.0, 4.5, d)
    col = col * (1 - grout[..., None]) + _rgb(150, 146, 138) * grout[..., None]
    bevel = np.exp(-(((d - 6.0) / 2.5) ** 2)) * ((u < 0.5) & (v < 0.5))
    return col * (1.0 + 0.1 * bevel)[..., None]


def _tiles_backdrop(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A table top of cream and slate-blue tiles seen from slightly above."""
    return _table_top(c, _tile_texture(rng, 2 * c.h, 2 * c.w, across=9))


def _counter_backdrop(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A cluttered kitchen counter: a white subway-tiled wall, a speckled granite top,
    and things that are background (a cutting board leaning on the wall, a utensil
    crock with wooden spoons, an oil bottle, a bowl of oranges), a touch out of focus."""
    s, w, h = c.s, c.w, c.h
    horizon = h * (0.5 + rng.uniform(-0.03, 0.03))
    # Wall: 2:1 subway tiles in running bond.
    tw_, th_ = 0.09 * s, 0.045 * s
    row = np.floor(c.y / th_)
    u = (c.x / tw_ + 0.5 * (row % 2)) % 1.0
    v = (c.y / th_) % 1.0
    d = np.minimum(np.minimum(u, 1 - u) * tw_, np.minimum(v, 1 - v) * th_)
    grout = 1.0 - _smoothstep(0.6, 2.0, d)
    wall = _rgb(238, 236, 230) * (1.0 - 0.03 * _noise(rng, h, w, 40, 60))[..., None]
    wall = wall * (1 - grout[..., None]) + _rgb(176, 172, 164) * grout[..., None]
    wall = wall * (1.0 - 0.25 * (c.x / w))[..., None]
    # Granite: dark warm grey with light and dark speckles.
    speck = rng.random((h, w)).astype(np.float32)
    granite = _rgb(96, 90, 84) * (1.0 + 0.15 * _fbm(rng, h, w, 8))[..., None]
    granite = np.where((speck > 0.985)[..., None], _rgb(200, 192, 180), granite)
    granite = np.where((speck < 0.03)[..., None], _rgb(40, 36, 34), granite)
    depth_light = 0.8 + 0.3 * _smoothstep(horizon, h, c.y)
    granite = granite * (depth_light * (1.05 - 0.2 * c.x / w))[..., None]
    lip = np.exp(-(((c.y - horizon) / 1.5) ** 2))
    img = np.where((c.y < horizon)[..., None], wall, granite) * (1 - 0.5 * lip)[..., None]

    def over(colour: np.ndarray, cov: np.ndarray) -> None:
        nonlocal img
        img = img * (1 - cov[..., None]) + colour * cov[..., None]

    # A cutting board leaning on the wall at the left, with a hole in its handle.
    bx0, bx1 = w * 0.03, w * 0.03 + 0.26 * s
    board_sd = _rounded_box_sd(c, bx0, horizon - 0.36 * s, bx1, horizon + 0.01 * s, 0.03 * s)
    handle_sd = np.hypot(c.x - (bx0 + bx1) / 2, c.y - (horizon - 0.31 * s)) - 0.022 * s
    board = _cover(np.maximum(board_sd, -handle_sd))
    grain = 1.0 + 0.08 * np.sin(c.x / (0.006 * s) + 3 * _noise(rng, h, w, 6, 3))
    over(_rgb(170, 120, 72) * grain[..., None], board)
    # An oil bottle behind the product, left of centre.
    ox = w * 0.5 - 0.2 * s
    oil_r = np.where(c.y < horizon - 0.2 * s, 0.018 * s, 0.045 * s)
    oil = _cover(
        np.maximum(np.abs(c.x - ox) - oil_r, np.maximum(horizon - 0.32 * s - c.y, c.y - horizon))
    )
    oil_col = (
        _rgb(150, 130, 30) * (0.6 + 0.6 * np.exp(-(((c.x - ox + 0.02 * s) / 8.0) ** 2)))[..., None]
    )
    over(oil_col, oil)
    # A utensil crock at the right with wooden spoons standing in it.
    kx = w * 0.5 + 0.3 * s
    for dx, tilt in ((-0.03, -0.25), (0.0, 0.05), (0.035, 0.3)):
        p0 = np.float32([kx + dx * s, horizon - 0.1 * s])
        p1 = p0 + np.float32([np.sin(tilt), -np.cos(tilt)]) * 0.26 * s
        stick = np.zeros((h, w), np.uint8)
        cv2.line(
            stick,
            tuple(np.round(p0 * 8).astype(int)),
            tuple(np.round(p1 * 8).astype(int)),
            255,
            max(2, int(0.012 * s)),
            cv2.LINE_AA,
            shift=3,
        )
        over(_rgb(196, 150, 96), stick.astype(np.float32) / 255.0)
        bowl = _cover(_ellipse_sd(c, float(p1[0]), float(p1[1]), 0.02 * s, 0.032 * s))
        over(_rgb(186, 140, 88), bowl)
    crock_sd = np.maximum(
        np.abs(c.x - kx) - 0.075 * s, np.abs(c.y - (horizon - 0.05 * s)) - 0.1 * s
    )
    crock_shade = 0.6 + 0.5 * np.clip(1 - np.abs(c.x - kx + 0.03 * s) / (0.075 * s), 0, 1)
    over(_rgb(60, 70, 96) * crock_shade[..., None], _cover(crock_sd))
    # A bowl of oranges in front, to the right.
    fx, fy = w * 0.5 + 0.36 * s, horizon + 0.17 * s
    for ox_, oy_ in ((-0.06, -0.08), (0.05, -0.085), (-0.005, -0.11)):
        ocx, ocy = fx + ox_ * s, fy + oy_ * s
        dist = np.hypot(c.x - ocx, c.y - ocy)
        orange = _cover(dist - 0.055 * s)
        shade = 0.55 + 0.6 * np.clip(
            1 - np.hypot(c.x - ocx + 0.02 * s, c.y - ocy + 0.02 * s) / (0.06 * s), 0, 1
        )
        over(_rgb(232, 120, 24) * shade[..., None], orange)
    bowl_sd = np.maximum(_ellipse_sd(c, fx, fy - 0.06 * s, 0.13 * s, 0.09 * s), fy - 0.07 * s - c.y)
    over(
        _rgb(236, 232, 222) * (0.7 + 0.35 * (1 - np.abs(c.x - fx) / (0.13 * s)))[..., None],
        _cover(bowl_sd),
    )
    return cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.0012 * s)


_BACKDROP_RENDERERS = {
    "plain": _plain_backdrop,
    "wood": _wood_backdrop,
    "white": _white_backdrop,
    "dark": _dark_backdrop,
    "tiles": _tiles_backdrop,
    "counter": _counter_backdrop,
}
