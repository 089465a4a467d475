"""The learned-matting front's algorithm: a photo in, the network's input out, and the
network's answer back to an alpha matte at the photo's full resolution.

Every learned matting network Lightbox serves (ISNet, BiRefNet) sits behind the same
front (`matting_model.py`); what differs between them is data, read from the model's
config.pbtxt into `FrontParams`: the network's input size and whether it keeps the
photo's aspect ratio, the normalisation, and what the network outputs (logits, a
probability, or a map that wants min-max scaling).

The network sees the photo at about a megapixel; upsampling its matte to a 4K photo
would smear every edge over several pixels, and a network's output is rarely exactly
0 or 1 (ISNet's tops out at 254/255). So:

0. The network's doubt is confined to a band along its edge (`edge_band`): haze deep
   inside a dark coat, or a ghost of the shelves well behind a motorcycle, is the
   network hesitating, not transparency.
1. `sure_fg`/`sure_bg` split the network's matte, upsampled to the photo, into sure
   subject (exactly 255), sure backdrop (exactly 0) and the uncertain band between, so a
   subject's interior is exactly opaque (the compositor keeps alpha 255 pixels
   bit-for-bit).
2. In the band, a colour guided filter (He & Sun) fitted at the work resolution (a
   local linear model alpha ~ A . rgb + b in every window; A and b upsampled and applied
   to the full-resolution photo) puts edges where the photo's edges are.
3. Where subject and backdrop colours differ clearly, colour unmixing (each pixel's
   colour projected between the nearby sure subject and backdrop colours) takes over,
   so strands of fur or hair finer than the network's resolution keep their own
   fractional alpha.

Full-resolution work runs in strips of `strip_rows` rows (bounded memory).

Arrays: image uint8 HxWx3 RGB; network input float32 [1, 3, h, w]; network output
float32 [1, 1, h, w] (any leading singleton axes); alpha uint8 HxW (255 = subject).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

ACTIVATIONS = ("logits", "probability", "minmax")


class MattingInputError(ValueError):
    """The request cannot be served; the caller's fault (INVALID_ARG)."""


def _floats(text: str, what: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise ValueError(f"{what}={text!r} must be three comma-separated numbers") from exc
    if len(values) != 3:
        raise ValueError(f"{what}={text!r} must be three comma-separated numbers")
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class FrontParams:
    """Knobs; the model reads them from config.pbtxt `parameters` (strings)."""

    # The ONNX model called over BLS and its tensor names.
    network_model: str = ""
    network_input: str = "input"
    network_output: str = "output"
    # The network's input: the photo's long side becomes `work_size`; with
    # keep_aspect=1 the short side keeps the photo's proportions, rounded to a multiple
    # of `size_multiple` (networks with a dynamic input); with 0 the photo is squashed
    # to work_size x work_size (networks with a fixed input).
    work_size: int = 1024
    keep_aspect: int = 0
    size_multiple: int = 32
    # (x/255 - mean) / std per RGB channel.
    mean: str = "0.485,0.456,0.406"
    std: str = "0.229,0.224,0.225"
    activation: str = "logits"
    # The network is sure above sure_fg and below sure_bg; in between lies the band
    # refined at full resolution.
    sure_fg: float = 0.9
    sure_bg: float = 0.05
    # The network's doubt counts only near its edge (within edge_band work pixels of
    # where its matte crosses 0.5): deeper in, a doubtful pixel is subject (haze in a
    # dark coat would otherwise survive as partial transparency); farther out, backdrop
    # (a ghost of the shelves behind a motorcycle). A fringe of hair or fur lies within
    # the band. 0 keeps every doubtful pixel.
    edge_band: int = 16
    # Guided filter window radius (work pixels) and regulariser (colour variance, rgb in
    # [0, 1]): smaller follows the photo more closely.
    guide_radius: int = 3
    guide_eps: float = 1e-4
    # Colour unmixing in the band: subject and backdrop colours are estimated next to
    # each uncertain pixel (normalised Gaussian convolution of the sure regions, sigma
    # in work pixels), and the photo's colour is projected between them; where the two
    # colours differ by more than unmix_contrast (rgb distance, [0, 1] units) this
    # estimate replaces the guided filter's, so strands of fur or hair finer than the
    # network's resolution get their own alpha. 0 turns it off.
    unmix_sigma: float = 4.0
    unmix_contrast: float = 0.25
    strip_rows: int = 512
    min_side: int = 16
    max_pixels: int = 40_000_000
    _mean: tuple[float, float, float] = field(init=False, repr=False)
    _std: tuple[float, float, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.network_model:
            raise ValueError("network_model must name the ONNX model to call")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {self.activation!r}")
        if not 0 <= self.sure_bg < self.sure_fg <= 1:
            raise ValueError(
                f"need 0 <= sure_bg < sure_fg <= 1, got {self.sure_bg} and {self.sure_fg}"
            )
        if self.work_size < 32 or self.size_multiple < 1 or self.work_size % self.size_multiple:
            raise ValueError(
                f"work_size={self.work_size} must be >= 32 and a multiple of "
                f"size_multiple={self.size_multiple}"
            )
        if self.keep_aspect not in (0, 1):
            raise ValueError(f"keep_aspect must be 0 or 1, not {self.keep_aspect}")
        std = _floats(self.std, "std")
        if min(std) <= 0:
            raise ValueError(f"std={self.std!r} must be positive")
        object.__setattr__(self, "_mean", _floats(self.mean, "mean"))
        object.__setattr__(self, "_std", std)
        if self.strip_rows < 1:
            raise ValueError("strip_rows must be >= 1")


def check_image(image: np.ndarray, params: FrontParams) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MattingInputError(
            f"IMAGE must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
        )
    h, w = image.shape[:2]
    if min(h, w) < params.min_side:
        raise MattingInputError(
            f"IMAGE must be at least {params.min_side} pixels on each side, got {w}x{h}"
        )
    if h * w > params.max_pixels:
        raise MattingInputError(f"IMAGE has {h * w} pixels, more than {params.max_pixels}")


def work_shape(height: int, width: int, params: FrontParams) -> tuple[int, int]:
    """(h, w) of the network's input for a height x width photo."""
    if not params.keep_aspect:
        return params.work_size, params.work_size
    m = params.size_multiple
    long_side = params.work_size
    short = min(height, width) * long_side / max(height, width)
    short_side = max(m, int(round(short / m)) * m)
    return (long_side, short_side) if height >= width else (short_side, long_side)


def preprocess(image: np.ndarray, params: FrontParams) -> np.ndarray:
    """The network input, float32 [1, 3, h, w]."""
    check_image(image, params)
    h, w = work_shape(image.shape[0], image.shape[1], params)
    shrink = image.shape[0] * image.shape[1] > h * w
    small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    x = small.astype(np.float32) * np.float32(1 / 255.0)
    x -= np.asarray(params._mean, np.float32)
    x /= np.asarray(params._std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def activate(raw: np.ndarray, params: FrontParams) -> np.ndarray:
    """The network's output as a probability map, float32 h x w in [0, 1]."""
    if raw.ndim < 2 or any(d != 1 for d in raw.shape[:-2]):
        raise MattingInputError(f"network output must be [1, 1, h, w], got {list(raw.shape)}")
    p = raw.reshape(raw.shape[-2:]).astype(np.float32)
    if params.activation == "logits":
        p = 1.0 / (1.0 + np.exp(-np.clip(p, -60.0, 60.0)))
    elif params.activation == "minmax":
        lo, hi = float(p.min()), float(p.max())
        p = (p - lo) / (hi - lo) if hi - lo > 1e-6 else np.zeros_like(p)
    return np.clip(p, 0.0, 1.0).astype(np.float32)


def guided_coefficients(
    guide: np.ndarray, p: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Colour guided filter coefficients (mean A: HxWx3, mean b: HxW) of `p` (HxW
    float32) against `guide` (HxWx3 float32 in [0, 1])."""
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

    mean_i = box(guide)
    mean_p = box(p)
    cov_ip = box(guide * p[..., None]) - mean_i * mean_p[..., None]

    # 3x3 covariance of the guide per pixel, regularised, inverted in closed form (the
    # symmetric adjugate): a batched LAPACK solve is ~10x slower at a megapixel.
    def cov(i: int, j: int) -> np.ndarray:
        return box(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j]

    e = np.float32(eps)
    rr, rg, rb = cov(0, 0) + e, cov(0, 1), cov(0, 2)
    gg, gb, bb = cov(1, 1) + e, cov(1, 2), cov(2, 2) + e
    inv_rr = gg * bb - gb * gb
    inv_rg = gb * rb - rg * bb
    inv_rb = rg * gb - gg * rb
    inv_gg = rr * bb - rb * rb
    inv_gb = rb * rg - rr * gb
    inv_bb = rr * gg - rg * rg
    det = rr * inv_rr + rg * inv_rg + rb * inv_rb
    c0, c1, c2 = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a = (
        np.stack(
            [
                inv_rr * c0 + inv_rg * c1 + inv_rb * c2,
                inv_rg * c0 + inv_gg * c1 + inv_gb * c2,
                inv_rb * c0 + inv_gb * c1 + inv_bb * c2,
            ],
            axis=2,
        )
        / det[..., None]
    )
    b = mean_p - (a * mean_i).sum(axis=2)
    return box(a), box(b)


def _axis_map(size_out: int, size_in: int, lo: int, hi: int) -> np.ndarray:
    """Source coordinates (half-pixel centres, as cv2.resize INTER_LINEAR) of output
    positions lo..hi-1 along one axis."""
    pos = (np.arange(lo, hi, dtype=np.float32) + 0.5) * (size_in / size_out) - 0.5
    return np.clip(pos, 0, size_in - 1)


def upsample_region(
    low: np.ndarray,
    low_size: tuple[int, int],
    origin: tuple[int, int],
    size: tuple[int, int],
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> np.ndarray:
    """Rows x cols of a low_size (h, w) array resized bilinearly to `size` (H, W),
    from `low`, the crop of it that starts at `origin` (y, x) and covers every source
    pixel the region reads; without making the whole resized array."""
    ys = _axis_map(size[0], low_size[0], *rows) - origin[0]
    xs = _axis_map(size[1], low_size[1], *cols) - origin[1]
    shape = (rows[1] - rows[0], cols[1] - cols[0])
    map_x = np.broadcast_to(xs[None, :], shape)
    map_y = np.broadcast_to(ys[:, None], shape)
    return cv2.remap(
        low,
        np.ascontiguousarray(map_x),
        np.ascontiguousarray(map_y),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _unsettled_box(p: np.ndarray, lo: float, hi: float) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) bounding the work pixels whose 3x3 neighbourhood is not all
    sure subject or all sure backdrop; None when there are none. Outside it, every
    bilinear sample of `p` is beyond a threshold, so alpha there is 0 or 255 as is."""
    k = np.ones((3, 3), np.uint8)
    settled = cv2.erode((p >= hi).astype(np.uint8), k) | cv2.erode((p <= lo).astype(np.uint8), k)
    ys, xs = np.nonzero(settled == 0)
    if ys.size == 0:
        return None
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def confine_doubt(p: np.ndarray, band: int) -> np.ndarray:
    """`p` with values more than `band` pixels from its 0.5 contour set to 1 (inside)
    or 0 (outside)."""
    if band <= 0:
        return p
    inside = (p > 0.5).astype(np.uint8)
    far = np.float32(band)
    depth_in = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    depth_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3)
    out = np.where(depth_in > far, np.float32(1.0), p)
    return np.where(depth_out > far, np.float32(0.0), out).astype(np.float32)


def unmix_colours(
    guide: np.ndarray, p: np.ndarray, params: FrontParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subject colour F and backdrop colour B next to every work pixel (h x w x 3,
    [0, 1]), from the sure regions of `p`, and the weight (h x w in [0, 1]) the colour
    estimate gets: 0 where the two colours are too alike to tell apart or where no sure
    region is near, 1 where they differ by unmix_contrast or more.

    The colours are smooth, so they are estimated at half the work resolution (the
    Gaussian blurs here are most of the refinement's cost) and upsampled."""
    full = (p.shape[1], p.shape[0])
    half = (max(1, p.shape[1] // 2), max(1, p.shape[0] // 2))
    guide = cv2.resize(guide, half, interpolation=cv2.INTER_AREA)
    p = cv2.resize(p, half, interpolation=cv2.INTER_AREA)
    sigma = params.unmix_sigma / 2
    colours, spreads = [], []
    valid = np.ones(p.shape, bool)
    squares = guide * guide
    for mask in ((p >= params.sure_fg), (p <= params.sure_bg)):
        weight = mask.astype(np.float32)
        moments = []
        for s in (sigma, 4 * sigma):
            den = cv2.GaussianBlur(weight, (0, 0), s)
            inv = 1.0 / np.maximum(den, 1e-6)[..., None]
            mean = cv2.GaussianBlur(guide * weight[..., None], (0, 0), s) * inv
            square = cv2.GaussianBlur(squares * weight[..., None], (0, 0), s) * inv
            moments.append((den, mean, square))
        (near_den, near_mean, near_sq), (far_den, far_mean, far_sq) = moments
        near = (near_den > 0.05)[..., None]
        mean = np.where(near, near_mean, far_mean)
        square = np.where(near, near_sq, far_sq)
        colours.append(mean.astype(np.float32))
        spreads.append(np.sqrt(np.maximum(square - mean * mean, 0.0).sum(axis=2)))
        valid &= far_den > 0.01
    fg, bg = colours
    contrast = np.linalg.norm(fg - bg, axis=2)
    c = np.float32(params.unmix_contrast)
    # A textured backdrop (wood grain, tiles) or a patterned subject makes the colour
    # estimate as uncertain as its spread: the weight falls with contrast / spread.
    snr = contrast / (spreads[0] + spreads[1] + 0.02)
    weight = np.clip((contrast - 0.5 * c) / (0.5 * c), 0.0, 1.0)
    weight *= np.clip((snr - 3.0) / 3.0, 0.0, 1.0) * valid

    def up(x: np.ndarray) -> np.ndarray:
        return cv2.resize(x.astype(np.float32), full, interpolation=cv2.INTER_LINEAR)

    return up(fg), up(bg), up(weight)


def refine(p: np.ndarray, image: np.ndarray, params: FrontParams) -> np.ndarray:
    """Alpha (uint8 HxW) for `image` (uint8 HxWx3) from the probability map `p`
    (float32 h x w in [0, 1], at the network's resolution)."""
    check_image(image, params)
    p = confine_doubt(p, params.edge_band)
    h, w = image.shape[:2]
    sh, sw = p.shape
    lo, hi = np.float32(params.sure_bg), np.float32(params.sure_fg)
    # Outside the box of unsettled work pixels the network is sure everywhere around:
    # alpha is its thresholded answer. Only the box is refined (most of a product
    # photo's pixels are sure subject or sure backdrop).
    alpha = cv2.resize(
        (p >= hi).astype(np.uint8) * np.uint8(255), (w, h), interpolation=cv2.INTER_NEAREST
    )
    box = _unsettled_box(p, float(lo), float(hi))
    if box is None:
        return alpha
    small = cv2.resize(
        image, (sw, sh), interpolation=cv2.INTER_AREA if h * w > sh * sw else cv2.INTER_LINEAR
    )
    # The filters read around the box: the guided filter's two box passes and the
    # near colour estimate (3 sigma); the far one is cut at the crop and mirrored.
    margin = 2 * params.guide_radius + 2 + int(np.ceil(3 * params.unmix_sigma)) + 2
    y0, y1 = max(0, box[0] - margin), min(sh, box[1] + margin)
    x0, x1 = max(0, box[2] - margin), min(sw, box[3] + margin)
    pc = np.ascontiguousarray(p[y0:y1, x0:x1])
    guide = small[y0:y1, x0:x1].astype(np.float32) * np.float32(1 / 255.0)
    a, b = guided_coefficients(guide, pc, params.guide_radius, params.guide_eps)
    # crop x C: A (3), b, p [, F (3), B (3), unmix weight]
    planes = [a, b, pc]
    unmix = params.unmix_contrast > 0 and params.unmix_sigma > 0
    if unmix:
        fg, bg, weight = unmix_colours(guide, pc, params)
        planes += [fg, bg, weight]
    low = np.dstack(planes)
    # Full-resolution pixels whose bilinear sources may fall in the box (one spare
    # pixel each side for rounding).
    fy0 = max(0, int(np.floor((box[0] - 1) * h / sh)) - 1)
    fy1 = min(h, int(np.ceil((box[1] + 1) * h / sh)) + 1)
    fx0 = max(0, int(np.floor((box[2] - 1) * w / sw)) - 1)
    fx1 = min(w, int(np.ceil((box[3] + 1) * w / sw)) + 1)
    for r0 in range(fy0, fy1, params.strip_rows):
        r1 = min(fy1, r0 + params.strip_rows)
        up = upsample_region(low, (sh, sw), (y0, x0), (h, w), (r0, r1), (fx0, fx1))
        # Where the network is sure, its answer stands, exactly; the refinement decides
        # only the band between (upsampled, so a 4K photo gets its edge from the photo).
        p_up = up[..., 4]
        out = (p_up >= hi).astype(np.float32)
        band = (p_up > lo) & (p_up < hi)
        u = up[band]  # N x C, the band's pixels only
        rgb = image[r0:r1, fx0:fx1][band].astype(np.float32) * np.float32(1 / 255.0)
        r, g, bl = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        refined = u[:, 0] * r + u[:, 1] * g + u[:, 2] * bl + u[:, 3]
        if unmix:
            d0, d1, d2 = u[:, 5] - u[:, 8], u[:, 6] - u[:, 9], u[:, 7] - u[:, 10]
            dot = (r - u[:, 8]) * d0 + (g - u[:, 9]) * d1 + (bl - u[:, 10]) * d2
            mixed = np.clip(dot / (d0 * d0 + d1 * d1 + d2 * d2 + 1e-6), 0.0, 1.0)
            refined += u[:, 11] * (mixed - refined)
        refined = np.where(refined >= hi, np.float32(1.0), np.where(refined <= lo, 0.0, refined))
        out[band] = refined
        alpha[r0:r1, fx0:fx1] = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return alpha


def postprocess(raw: np.ndarray, image: np.ndarray, params: FrontParams) -> np.ndarray:
    """Alpha (uint8 HxW) for `image` from the network's raw output."""
    return refine(activate(raw, params), image, params)
