"""Real photographs we did not make, with probe points placed by eye.

The synthetic samples (services/samples/synthetic.py) have exact alpha but were drawn by
us, so a matting engine can be tuned to them without anyone noticing. These are
ordinary photos that ship inside scikit-image's wheel (so they load offline, on any
machine with the `dev` extra): a cup of coffee with a spoon on a wooden table, a
motorcycle in a garage in front of shelves, a portrait in front of a flag, a cat's
face, a rocket between lightning towers, a cameraman with a tripod on a lawn.

There is no ground-truth alpha for them. Instead each carries probe points, placed by
looking at the photo: a position (fractions of width and height), what a cut-out must
have there ("subject" or "background"), and a short label naming the part. The points
sit where the classical engine failed (the spoon and the inside of the cup's rim, the
motorcycle's wheels and the shelves behind it, the uniform and the flag), where ISNet
fails (the rocket's lightning masts), and on the obvious parts, at least a few pixels
from any outline (the masts are 3-4 pixels wide: their probes sit on the centre
column), and none on parts where the subject is a matter of taste (the helmet the
astronaut holds).

Arrays: rgb uint8 HxWx3 (RGB); alpha uint8 HxW (255 = subject).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Expect = Literal["subject", "background"]


@dataclass(frozen=True)
class Probe:
    x: float  # fraction of the width, 0 = left edge
    y: float  # fraction of the height, 0 = top edge
    expect: Expect
    label: str


@dataclass(frozen=True)
class Photo:
    name: str
    rgb: np.ndarray  # uint8 HxWx3 RGB
    description: str
    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    alpha: float  # mean alpha (0..255) over the 3x3 pixels at the point
    ok: bool


def _s(x: float, y: float, label: str) -> Probe:
    return Probe(x, y, "subject", label)


def _b(x: float, y: float, label: str) -> Probe:
    return Probe(x, y, "background", label)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, name)()
        if isinstance(image, tuple):  # stereo pairs: the left view
            image = image[0]
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return np.ascontiguousarray(image[..., :3].astype(np.uint8))

    return load


# name: (loader, description, probes)
_PHOTOS: dict[str, tuple[Callable[[], np.ndarray], str, tuple[Probe, ...]]] = {
    "coffee": (
        _skimage("coffee"),
        "an espresso cup on a saucer with a spoon, on a worn wooden table (600x400)",
        (
            _s(0.683, 0.19, "spoon handle above the rim"),
            _s(0.632, 0.575, "spoon neck beside the cup"),
            _s(0.61, 0.72, "spoon bowl"),
            _s(0.34, 0.3, "inside of the rim, left wall"),
            _s(0.5, 0.17, "inside of the rim, far wall"),
            _s(0.48, 0.37, "coffee crema"),
            _s(0.34, 0.68, "cup handle"),
            _s(0.15, 0.55, "saucer, left"),
            _s(0.5, 0.9, "saucer, front"),
            _b(0.9, 0.5, "table, right"),
            _b(0.1, 0.9, "table, lower left"),
            _b(0.75, 0.12, "table above the spoon handle"),
            _b(0.04, 0.08, "dark corner, top left"),
        ),
    ),
    "motorcycle": (
        _skimage("stereo_motorcycle"),
        "a red motorcycle in a garage, shelves, boxes and a bench behind it (741x500)",
        (
            _s(0.844, 0.881, "front tyre, bottom"),
            _s(0.911, 0.774, "front tyre, front"),
            _s(0.172, 0.626, "rear tyre, back"),
            _s(0.289, 0.774, "rear tyre, bottom"),
            _s(0.578, 0.387, "fuel tank"),
            _s(0.33, 0.4, "seat"),
            _s(0.522, 0.593, "engine"),
            _s(0.728, 0.305, "headlight"),
            _s(0.8, 0.568, "front fender"),
            _b(0.756, 0.115, "cardboard box on the shelf"),
            _b(0.55, 0.235, "box on the shelf behind the handlebars"),
            _b(0.822, 0.297, "white tub on the shelf"),
            _b(0.806, 0.437, "red storage bin"),
            _b(0.878, 0.478, "cardboard boxes, right"),
            _b(0.278, 0.231, "bench behind the seat"),
            _b(0.31, 0.08, "whiteboard on the wall"),
            _b(0.56, 0.86, "floor between the wheels"),
            _b(0.6, 0.95, "floor in front"),
        ),
    ),
    "astronaut": (
        _skimage("astronaut"),
        "a portrait in an orange flight suit, a flag on the left, a shuttle model (512x512)",
        (
            _s(0.42, 0.22, "cheek"),
            _s(0.45, 0.09, "hair"),
            _s(0.27, 0.44, "neck ring"),
            _s(0.26, 0.58, "uniform, chest"),
            _s(0.09, 0.75, "uniform, left sleeve"),
            _s(0.33, 0.76, "mission patch"),
            _s(0.22, 0.9, "uniform, lower left"),
            _b(0.08, 0.5, "flag behind the shoulder"),
            _b(0.04, 0.42, "flag, stripes"),
            _b(0.05, 0.1, "flag, stars"),
            _b(0.62, 0.2, "grey backdrop"),
            _b(0.77, 0.35, "shuttle model"),
            _b(0.9, 0.6, "black cloth at the right"),
        ),
    ),
    "chelsea": (
        _skimage("chelsea"),
        "a tabby cat's face filling the frame, a blurred room at the right (451x300)",
        (
            _s(0.45, 0.12, "forehead fur"),
            _s(0.37, 0.38, "eye"),
            _s(0.58, 0.8, "nose"),
            _s(0.12, 0.5, "cheek"),
            _s(0.3, 0.95, "chin fur"),
            _b(0.95, 0.55, "blurred room, right"),
            _b(0.95, 0.3, "blurred room, upper right"),
        ),
    ),
    "rocket": (
        _skimage("rocket"),
        "a rocket on its pad at dusk between lightning towers (640x427)",
        (
            _s(0.5, 0.38, "nose cone"),
            _s(0.5, 0.6, "first stage"),
            _s(0.5, 0.85, "first stage, low"),
            _b(0.4, 0.4, "sky left of the rocket"),
            _b(0.6, 0.2, "sky right of the rocket"),
            _b(0.4, 0.75, "sky between rocket and tower"),
            _b(0.31, 0.41, "lightning mast, left"),
            _b(0.699, 0.41, "lightning mast, right"),
        ),
    ),
    "cameraman": (
        _skimage("camera"),
        "a man filming with a camera on a tripod, a lawn and buildings behind (512x512, grey)",
        (
            _s(0.4, 0.3, "cheek"),
            _s(0.1, 0.6, "coat"),
            _s(0.56, 0.3, "camera"),
            _s(0.571, 0.55, "tripod column"),
            _b(0.2, 0.1, "sky"),
            _b(0.82, 0.33, "building"),
            _b(0.85, 0.75, "lawn, right"),
            _b(0.64, 0.88, "lawn between the tripod legs"),
        ),
    ),
}

PHOTO_NAMES: tuple[str, ...] = tuple(_PHOTOS)


def load_photo(name: str) -> Photo:
    """The photo `name` (one of PHOTO_NAMES) with its probes. Needs scikit-image."""
    if name not in _PHOTOS:
        raise ValueError(f"photo must be one of {PHOTO_NAMES}, not {name!r}")
    loader, description, probes = _PHOTOS[name]
    return Photo(name=name, rgb=loader(), description=description, probes=probes)


def all_photos() -> list[Photo]:
    return [load_photo(n) for n in PHOTO_NAMES]


def probe(alpha: np.ndarray, probes: tuple[Probe, ...]) -> list[ProbeResult]:
    """Check an alpha matte (uint8 HxW, the photo's size) at each probe: a point is
    right when the mean alpha of the 3x3 pixels around it is on the expected side
    of 127.5."""
    h, w = alpha.shape
    out = []
    for p in probes:
        cx, cy = min(int(p.x * w), w - 1), min(int(p.y * h), h - 1)
        patch = alpha[max(cy - 1, 0) : cy + 2, max(cx - 1, 0) : cx + 2]
        value = float(patch.astype(np.float32).mean())
        ok = (value > 127.5) == (p.expect == "subject")
        out.append(ProbeResult(probe=p, alpha=value, ok=ok))
    return out


def probe_score(alpha: np.ndarray, probes: tuple[Probe, ...]) -> float:
    """The fraction of probes an alpha matte gets right."""
    results = probe(alpha, probes)
    return sum(r.ok for r in results) / len(results)
