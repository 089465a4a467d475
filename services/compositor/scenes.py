"""Procedural scenes that should pass for photographs: marble, wood, concrete,
paper and an outdoor bokeh.

Each `draw_*` takes (width, height, seed) and returns RGB uint8 (height, width, 3);
the same seed gives the same pixels, different seeds different ones. Textures are
built from value-noise octaves (random grids upsampled bicubically by OpenCV),
then lit like a photo: a soft key light with falloff, a gentle vignette, and
fine sensor grain, because a perfectly even texture is what reads as fake."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from services.compositor import backgrounds
from services.compositor.colors import RGB

# Fine luminance grain, in 8-bit levels (standard deviation).
GRAIN = 1.6
# Full-resolution work goes this many rows at a time.
BAND = 256
# Lighting is smooth: a grid this fine, upsampled, describes it exactly enough.
LIGHT_GRID = 64
# Resolution at which a noise octave is drawn, in pixels per feature.
PX_PER_CELL = 16
# Textures are synthesised at most this tall, then warped up to the canvas with
# bicubic interpolation: detail finer than this reads as grain, which is added
# at full resolution anyway.
WORK_SIDE = 1024


def rng_for(seed: int, scene: str) -> np.random.Generator:
    """A generator per (seed, scene): the same seed gives unrelated textures per scene."""
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, sum(map(ord, scene))])


def noise(
    rng: np.random.Generator, width: int, height: int, cells_x: int, cells_y: int
) -> np.ndarray:
    """Smooth value noise, float32 (height, width), roughly -1..1, with about
    `cells_x` x `cells_y` features across the canvas."""
    grid = rng.standard_normal((max(2, cells_y) + 3, max(2, cells_x) + 3), dtype=np.float32)
    big = cv2.resize(
        grid,
        (width * (grid.shape[1]) // max(2, cells_x), height * (grid.shape[0]) // max(2, cells_y)),
        interpolation=cv2.INTER_CUBIC,
    )
    oy = (big.shape[0] - height) // 2
    ox = (big.shape[1] - width) // 2
    return np.ascontiguousarray(big[oy : oy + height, ox : ox + width]) * np.float32(0.6)


def fbm(
    rng: np.random.Generator,
    width: int,
    height: int,
    cells: float,
    octaves: int,
    persistence: float = 0.5,
    stretch: float = 1.0,
) -> np.ndarray:
    """Fractal noise: `octaves` of `noise`, each twice as fine and `persistence`
    as strong; about `cells` features down the canvas at the coarsest. `stretch`
    > 1 elongates features along x. float32 (height, width), roughly -1..1.

    Each octave is drawn at only the resolution it needs (PX_PER_CELL per
    feature) and the running sum is carried up a resolution pyramid, so coarse
    octaves cost almost nothing."""
    aspect = width / height
    acc: np.ndarray | None = None
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        cy = max(2, round(cells * 2**k))
        cx = max(2, round(cells * 2**k * aspect / stretch))
        w_k, h_k = min(width, cx * PX_PER_CELL), min(height, cy * PX_PER_CELL)
        layer = noise(rng, w_k, h_k, cx, cy) * np.float32(amp)
        if acc is None:
            acc = layer
        else:
            acc = cv2.resize(acc, (w_k, h_k), interpolation=cv2.INTER_LINEAR) + layer
        norm += amp
        amp *= persistence
    assert acc is not None
    if acc.shape != (height, width):
        acc = cv2.resize(acc, (width, height), interpolation=cv2.INTER_CUBIC)
    return acc / np.float32(norm)


def light_grid(key: tuple[float, float], strength: float, vignette: float) -> np.ndarray:
    """Illumination around 1.0 on a coarse LIGHT_GRID x LIGHT_GRID grid (upsample it
    to any canvas with `resize_rows`): brighter near `key` (fractions of width and
    height), darker towards the far side and the corners."""
    n = LIGHT_GRID
    xs = (np.arange(n, dtype=np.float32) + 0.5) / n
    d_key = np.sqrt((xs[None, :] - key[0]) ** 2 + (xs[:, None] - key[1]) ** 2)
    d_mid = np.sqrt((xs[None, :] - 0.5) ** 2 + (xs[:, None] - 0.5) ** 2) / math.sqrt(0.5)
    lit = 1.0 + strength * (0.5 - np.clip(d_key, 0.0, 1.0))
    lit *= 1.0 - vignette * np.clip(d_mid, 0.0, 1.0) ** 2
    return lit.astype(np.float32)


def resize_rows(
    small: np.ndarray, width: int, height: int, y0: int, y1: int, interpolation: int
) -> np.ndarray:
    """Rows y0..y1 of `cv2.resize(small, (width, height))`, computed on their own:
    float32 (y1 - y0, width[, C]). Lets full-resolution work go band by band."""
    sh, sw = small.shape[:2]
    sx, sy = width / sw, height / sh
    matrix = np.float32([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5 - y0]])
    return cv2.warpAffine(
        small, matrix, (width, y1 - y0), flags=interpolation, borderMode=cv2.BORDER_REPLICATE
    )


Rows = Callable[[int, int], np.ndarray]


def render(
    width: int,
    height: int,
    rows: Rows,
    rng: np.random.Generator,
    light: np.ndarray | None = None,
    grain: float = GRAIN,
) -> np.ndarray:
    """Assemble a scene band by band: `rows(y0, y1)` gives float32 (y1 - y0, width,
    3) levels 0..255; each band is lit by the `light_grid`, given luminance grain
    and quantised. Full-resolution float data never exceeds one band, so a 4096 px
    scene costs little more memory than its uint8 output. RGB uint8 (height, width, 3)."""
    out = np.empty((height, width, 3), dtype=np.uint8)
    for y0 in range(0, height, BAND):
        y1 = min(height, y0 + BAND)
        band = rows(y0, y1)
        if light is not None:
            band *= resize_rows(light, width, height, y0, y1, cv2.INTER_LINEAR)[:, :, None]
        if grain > 0:
            noise_rows = rng.standard_normal((y1 - y0, width), dtype=np.float32)
            band += (noise_rows * np.float32(grain))[:, :, None]
        np.clip(band, 0.0, 255.0, out=band)
        out[y0:y1] = (band + 0.5).astype(np.uint8)
    return out


def mix(a: RGB, b: RGB, t: np.ndarray) -> np.ndarray:
    """Per-pixel mix of two colours: t float32 (H, W) 0..1 -> float32 (H, W, 3)."""
    ca = np.asarray(a, dtype=np.float32)
    cb = np.asarray(b, dtype=np.float32)
    return ca + t[:, :, None] * (cb - ca)


def soft_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float32 image, done at a reduced size when `sigma` is
    large (the result is smooth, so nothing visible is lost)."""
    if sigma <= 3.0:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    f = sigma / 2.0
    h, w = image.shape[:2]
    small = cv2.resize(
        image, (max(2, round(w / f)), max(2, round(h / f))), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigma / f)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def table_top(texture: np.ndarray, width: int, height: int, spread: float, blur: float) -> Rows:
    """Lay a flat texture down as a table top seen from a low angle; returns the
    `Rows` of the (height, width) canvas, float32 with the texture's channels.

    texture: float32 (Ht, Wt, C) at any resolution. The canvas's bottom edge shows
    the middle Wt / (1 + spread) of the texture's bottom row; its top edge shows
    the texture's whole top row, i.e. farther away (a true perspective warp:
    straight lines stay straight). Then a shallow depth of field: sharp where the
    product stands, blurred up to `blur` px (sigma) at the top."""
    th, tw = texture.shape[:2]
    cx = tw / 2.0
    half_near, half_far = tw / (1.0 + spread) / 2.0, tw / 2.0
    canvas = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    source = np.float32(
        [[cx - half_far, 0], [cx + half_far, 0], [cx + half_near, th], [cx - half_near, th]]
    )
    matrix = cv2.getPerspectiveTransform(canvas, source)
    # Depth of field: blur levels blended by distance; the near 30 % stays sharp.
    levels = [(blur * 0.35, 0.0), (blur * 0.7, 0.4), (blur, 0.75)] if blur > 0.5 else []
    halo = int(math.ceil(3 * blur)) + 2 if levels else 0

    def rows(y0: int, y1: int) -> np.ndarray:
        a0, a1 = max(0, y0 - halo), min(height, y1 + halo)
        shift = np.array([[1, 0, 0], [0, 1, a0], [0, 0, 1]], dtype=np.float64)
        flat = cv2.warpPerspective(
            texture,
            matrix @ shift,
            (width, a1 - a0),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
        far = np.clip(
            (0.7 - np.arange(a0, a1, dtype=np.float32) / max(1, height - 1)) / 0.7, 0.0, 1.0
        )
        out = flat.copy()
        for sigma, start in levels:
            if far.max() <= start:
                continue
            weight = np.clip((far - start) / 0.35, 0.0, 1.0)[:, None, None]
            out = out * (1.0 - weight) + soft_blur(flat, sigma) * weight
        return out[y0 - a0 : y1 - a0]

    return rows


def rotated(image: np.ndarray, angle_deg: float, width: int, height: int) -> np.ndarray:
    """The centre (height, width) of `image` rotated by `angle_deg` (counter-clockwise)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    matrix[0, 2] += width / 2.0 - w / 2.0
    matrix[1, 2] += height / 2.0 - h / 2.0
    return cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def _vein(field: np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """A soft line along the zero crossing of `field`: float32 0..1."""
    d = field / width
    return np.exp(-(d * d))


def _work_size(width: int, height: int, spread: float) -> tuple[int, int, float]:
    """Texture size (before perspective) at the working resolution, and that scale."""
    scale = min(1.0, WORK_SIDE / height)
    return max(8, round(width * (1 + spread) * scale)), max(8, round(height * scale)), scale


def draw_marble(width: int, height: int, seed: int) -> np.ndarray:
    """Veined white (Carrara-like) marble table top, RGB uint8 (height, width, 3).

    Veins are zero crossings of anisotropic fractal noise (long along the vein
    direction), crinkled by fine noise, varying in thickness and visibility,
    clustered in a meandering band and surrounded by a grey haze."""
    rng = rng_for(seed, "marble")
    spread = 0.45
    tw, th, scale = _work_size(width, height, spread)
    d = int(math.hypot(tw, th)) + 2
    angle = float(rng.uniform(20.0, 60.0)) * (1 if rng.random() < 0.5 else -1)

    warp = fbm(rng, d, d, 1.2, 3)
    crinkle = fbm(rng, d, d, 14, 3, 0.6)
    thick = np.clip(fbm(rng, d, d, 4, 3) * 2.0 + 0.7, 0.15, 1.6)
    v = (np.arange(d, dtype=np.float32) / d)[:, None]
    band = np.exp(-(((v + 0.22 * warp - rng.uniform(0.35, 0.65)) / 0.25) ** 2))

    def vein(
        cells: float, stretch: float, warp_amp: float, wiggle: float, width: float | np.ndarray
    ) -> np.ndarray:
        field = fbm(rng, d, d, cells, 5, 0.55, stretch)
        field += np.float32(warp_amp) * warp
        field += np.float32(wiggle) * crinkle
        return _vein(field, width)

    # Each vein family is folded into `lines` as soon as it is drawn, so only a
    # few d x d fields are alive at once (marble is the heaviest scene).
    lines = np.zeros((d, d), dtype=np.float32)
    seen = np.clip(fbm(rng, d, d, 2, 3) * 2.5 + 0.5, 0.0, 1.0) * (0.3 + 0.7 * band)
    np.maximum(lines, vein(2.5, 5.0, 0.35, 0.025, 0.011 * thick) * seen, out=lines)
    np.maximum(lines, 0.8 * vein(2.0, 5.0, 0.3, 0.025, 0.008 * thick) * seen, out=lines)
    seen = np.clip(fbm(rng, d, d, 3, 3) * 2.5 + 0.2, 0.0, 1.0)
    np.maximum(lines, 0.13 * vein(9.0, 8.0, 0.1, 0.01, 0.004) * seen, out=lines)
    seen *= 0.6 * (0.15 + 0.85 * band)
    np.maximum(lines, vein(5.0, 6.0, 0.2, 0.02, 0.006 * thick) * seen, out=lines)
    np.maximum(lines, vein(4.0, 6.0, 0.25, 0.02, 0.005 * thick) * seen, out=lines)
    del seen, thick
    # Veins bleed into the stone: a close soft halo and a wide grey haze.
    haze = soft_blur(lines, 0.035 * d) * band
    lines = np.maximum(lines, 1.1 * soft_blur(lines, 0.006 * d)) + 1.3 * haze
    clouds = fbm(rng, d, d, 4, 6, 0.6)
    layers = rotated(np.dstack([lines, clouds]), angle, tw, th)

    texture = mix((247, 246, 243), (228, 228, 230), np.clip(layers[:, :, 1] * 1.4 + 0.5, 0, 1))
    grey = np.asarray((104, 106, 114), dtype=np.float32)
    texture += (layers[:, :, 0] * np.float32(0.75))[:, :, None] * (grey - texture)
    top = table_top(texture, width, height, spread, blur=0.004 * height)
    return render(width, height, top, rng, light_grid((0.3, 0.15), 0.1, 0.14))


# (early wood, late wood) colours of the species a seed may pick.
WOODS: tuple[tuple[RGB, RGB], ...] = (
    ((201, 160, 116), (148, 104, 66)),  # oak
    ((128, 88, 60), (78, 50, 33)),  # walnut
    ((216, 190, 156), (172, 140, 102)),  # ash
    ((176, 118, 78), (120, 72, 44)),  # teak
)


def draw_wood(width: int, height: int, seed: int) -> np.ndarray:
    """A wooden table top of long planks, RGB uint8 (height, width, 3).

    Each plank has its own tone and grain: growth rings from a sine of strongly
    stretched fractal noise, fine fibres along the board, dark seams between
    boards and the odd butt joint."""
    rng = rng_for(seed, "wood")
    spread = 0.5
    tw, th, scale = _work_size(width, height, spread)
    early, late = WOODS[int(rng.integers(len(WOODS)))]
    planks = int(rng.integers(5, 8))
    edges = np.linspace(0, th, planks + 1)
    edges[1:-1] += rng.uniform(-0.15, 0.15, planks - 1) * th / planks
    rows = np.arange(th, dtype=np.float32)[:, None]

    rings_field = fbm(rng, tw, th, 3.0, 5, 0.5, stretch=14.0)
    fibres = fbm(rng, tw, th, 40.0, 3, 0.6, stretch=25.0)
    wobble = fbm(rng, tw, th, 2.0, 3, 0.5, stretch=4.0)
    texture = np.empty((th, tw, 3), dtype=np.float32)
    seam = np.zeros((th, tw), dtype=np.float32)
    for k in range(planks):
        y0, y1 = int(edges[k]), int(edges[k + 1])
        if y1 <= y0:
            continue
        local = (rows[y0:y1] - y0) / max(1.0, y1 - y0)
        freq = rng.uniform(10.0, 16.0)
        phase = rng.uniform(0.0, 2 * math.pi)
        field = (local + rings_field[y0:y1] * 1.1 + wobble[y0:y1] * 0.2) * freq * 2 * math.pi
        rings = (0.5 + 0.5 * np.sin(field + phase)) ** 3
        tone = np.float32(rng.uniform(0.9, 1.08))
        t = np.clip(rings * 0.5 + fibres[y0:y1] * 1.3 + 0.2, 0.0, 1.0)
        texture[y0:y1] = mix(early, late, t) * tone
        seam[y0 : y0 + max(1, round(2 * scale))] = 1.0
        if rng.random() < 0.6:
            x = int(rng.uniform(0.15, 0.85) * tw)
            seam[y0:y1, x : x + max(1, round(2 * scale))] = 1.0
    seam = cv2.GaussianBlur(seam, (0, 0), max(0.6, 1.2 * scale))
    texture *= (1.0 - 0.55 * np.clip(seam * 1.5, 0.0, 1.0))[:, :, None]
    top = table_top(texture, width, height, spread, blur=0.005 * height)
    return render(width, height, top, rng, light_grid((0.35, 0.1), 0.16, 0.2))


def _speckles(
    rng: np.random.Generator, width: int, height: int, count: int, radius: tuple[float, float]
) -> np.ndarray:
    """float32 (height, width) 0..1: `count` small soft dots (pores, grit)."""
    dots = np.zeros((height, width), dtype=np.float32)
    xs = rng.uniform(0, width, count)
    ys = rng.uniform(0, height, count)
    rs = rng.uniform(radius[0], radius[1], count)
    ks = rng.uniform(0.4, 1.0, count)
    for x, y, r, k in zip(xs, ys, rs, ks, strict=True):
        cv2.circle(dots, (int(x), int(y)), max(1, int(r)), float(k), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(dots, (0, 0), 0.7)


def draw_concrete(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth poured concrete (a table top or floor), RGB uint8 (height, width, 3):
    large damp-looking blotches, mottling, fine aggregate speckle and pores."""
    rng = rng_for(seed, "concrete")
    spread = 0.4
    tw, th, _ = _work_size(width, height, spread)
    grey = float(rng.uniform(150.0, 182.0))
    tint = np.asarray((1.0, 0.995, 0.985) if rng.random() < 0.5 else (0.985, 0.995, 1.0))
    blotch = fbm(rng, tw, th, 2.0, 5, 0.55)
    mottle = fbm(rng, tw, th, 12.0, 3, 0.6)
    fine = fbm(rng, tw, th, 160.0, 2, 0.6)
    trowel = fbm(rng, tw, th, 3.0, 4, 0.5, stretch=6.0)
    area = tw * th / 1e6
    pores = _speckles(rng, tw, th, int(900 * area), (0.8, 2.2))
    grit = _speckles(rng, tw, th, int(1500 * area), (0.6, 1.4))
    level = (
        grey
        + 26.0 * blotch
        + 9.0 * mottle
        + 10.0 * fine
        + 6.0 * trowel
        - 38.0 * pores
        + 14.0 * grit
    )
    texture = level[:, :, None] * tint.astype(np.float32)[None, None, :]
    top = table_top(texture, width, height, spread, blur=0.004 * height)
    return render(width, height, top, rng, light_grid((0.3, 0.1), 0.16, 0.22), 2.2)


PASTELS: tuple[RGB, ...] = (
    (246, 214, 214),  # blush
    (214, 232, 220),  # mint
    (218, 212, 236),  # lilac
    (252, 226, 200),  # peach
    (208, 226, 240),  # powder blue
    (246, 236, 200),  # butter
)


def draw_paper(width: int, height: int, seed: int, color: RGB | None = None) -> np.ndarray:
    """A pastel seamless paper backdrop, RGB uint8 (height, width, 3): the studio
    sweep's falloff in `color` (a seeded pastel when None), with the faint
    unevenness and fibre of real paper."""
    rng = rng_for(seed, "paper")
    if color is None:
        color = PASTELS[int(rng.integers(len(PASTELS)))]
    shade = backgrounds.sweep_shading(width, height)
    tw, th = max(8, min(width, WORK_SIDE)), max(8, min(height, WORK_SIDE))
    uneven = fbm(rng, tw, th, 2.0, 4, 0.5) * 0.012 + fbm(rng, tw, th, 60.0, 2, 0.5) * 0.01
    colour = np.asarray(color, dtype=np.float32)

    def rows(y0: int, y1: int) -> np.ndarray:
        lit = backgrounds.smooth_rows(shade, width, y0, y1)
        lit *= 1.0 + resize_rows(uneven, width, height, y0, y1, cv2.INTER_CUBIC)
        return lit[:, :, None] * colour

    return render(width, height, rows, rng, grain=1.2)


def _discs(
    rng: np.random.Generator, width: int, height: int, count: int, where: np.ndarray
) -> np.ndarray:
    """float32 (height, width, 3) additive bokeh: soft-edged discs whose centres
    are drawn with probability `where` (float32 (height, width) weights)."""
    layer = np.zeros((height, width, 3), dtype=np.float32)
    p = where.ravel().astype(np.float64)
    p /= p.sum()
    picks = rng.choice(p.size, size=count, p=p)
    warm = np.float32([1.0, 0.95, 0.82])
    leafy = np.float32([0.82, 0.94, 0.62])
    for idx in picks:
        y, x = divmod(int(idx), width)
        r = float(rng.uniform(0.012, 0.05)) * width
        colour = warm if rng.random() < 0.65 else leafy
        k = float(rng.uniform(0.08, 0.32))
        disc = np.zeros((height, width), dtype=np.float32)
        x0, x1 = max(0, int(x - r - 3)), min(width, int(x + r + 4))
        y0, y1 = max(0, int(y - r - 3)), min(height, int(y + r + 4))
        cv2.circle(disc, (x, y), max(1, int(r)), 1.0, -1, cv2.LINE_AA)
        patch = cv2.GaussianBlur(disc[y0:y1, x0:x1], (0, 0), max(0.6, 0.06 * r))
        # A real lens's disc is a touch brighter at the rim.
        rim = patch - cv2.GaussianBlur(patch, (0, 0), max(0.8, 0.15 * r)) * 0.6
        layer[y0:y1, x0:x1] += (np.clip(patch * 0.8 + rim * 0.5, 0, 1) * k)[:, :, None] * colour
    return layer * np.float32(255.0)


def draw_outdoor(width: int, height: int, seed: int) -> np.ndarray:
    """Outdoors with a wide-open lens, RGB uint8 (height, width, 3): out-of-focus
    foliage and sky with sunlit bokeh above a softly focused stone ledge."""
    rng = rng_for(seed, "outdoor")
    tw, th = max(16, min(width, 512)), max(16, min(height, 512))
    y = (np.arange(th, dtype=np.float32) / th)[:, None]
    horizon = float(rng.uniform(0.64, 0.72))

    leaves = fbm(rng, tw, th, 3.0, 5, 0.55)
    sky = np.clip((0.35 - y) * 2.5 + leaves * 1.6, 0.0, 1.0)
    greens = np.clip(leaves * 1.4 + 0.5, 0.0, 1.0)
    foliage = mix((44, 70, 36), (150, 168, 84), greens)
    foliage = (
        foliage * (1.0 - sky[:, :, None])
        + mix((196, 216, 226), (236, 240, 232), sky) * sky[:, :, None]
    )
    sunlit = np.clip(sky * 1.5, 0.05, 1.0) * (y < horizon)
    foliage += _discs(rng, tw, th, int(rng.integers(35, 70)), sunlit)
    foliage = cv2.GaussianBlur(foliage, (0, 0), 0.012 * tw)

    # The ledge: weathered light stone, in perspective, sharpest at the front.
    stone = fbm(rng, tw, th, 5.0, 6, 0.6) + 0.5 * fbm(rng, tw, th, 2.0, 3, 0.5)
    ground = mix((176, 166, 148), (204, 194, 176), np.clip(stone + 0.5, 0.0, 1.0))
    ground = table_top(ground, tw, th, 0.6, blur=0.006 * th)(0, th)
    near = np.clip((y - horizon) / (1.0 - horizon), 0.0, 1.0)
    ground *= (0.86 + 0.14 * near)[:, :, None]
    ledge = np.clip((y - horizon) / 0.006 + 0.5, 0.0, 1.0)[:, :, None]
    scene = foliage * (1.0 - ledge) + ground * ledge

    def rows(y0: int, y1: int) -> np.ndarray:
        return resize_rows(scene, width, height, y0, y1, cv2.INTER_CUBIC)

    return render(width, height, rows, rng, light_grid((0.7, 0.1), 0.12, 0.18), 1.4)
