"""Contact sheets for judging matting engines by eye.

One row per photo: the photo (with its probe points, if any), the true alpha (synthetic
samples only), then for each engine its alpha and its cut-out over a checkerboard.
Probe points are drawn on the photo as rings (green: subject, magenta: background) and
on each engine's alpha as dots (green: that engine got it right, red: wrong), so a
wrong spoon or a kept shelf shows at a glance.

Arrays: rgb uint8 HxWx3 (RGB), alpha uint8 HxW (255 = subject); sheets are RGB uint8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from services.compositor.contact_sheet import LABEL_HEIGHT, label
from services.samples.photos import Probe, probe

_SUBJECT, _BACKGROUND = (40, 220, 60), (230, 40, 230)
_RIGHT, _WRONG = (40, 220, 60), (240, 30, 30)


@dataclass
class SheetRow:
    title: str
    rgb: np.ndarray
    truth: np.ndarray | None = None
    probes: tuple[Probe, ...] = ()
    alphas: dict[str, np.ndarray] = field(default_factory=dict)  # engine -> alpha


def checkerboard_cutout(rgb: np.ndarray, alpha: np.ndarray, square: int = 12) -> np.ndarray:
    """`rgb` with `alpha` over a light grey checkerboard, so holes and kept
    background both show. RGB uint8, same size."""
    h, w = alpha.shape
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // square + xx // square) % 2)[..., None] == 0, 236, 196)
    a = alpha[..., None].astype(np.float32) / 255.0
    out = rgb.astype(np.float32) * a + board.astype(np.float32) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _fit(image: np.ndarray, cell: int) -> np.ndarray:
    """Scale to fit a cell x cell square (keeping the aspect), centred on dark grey."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    h, w = image.shape[:2]
    scale = cell / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.full((cell, cell, 3), 48, np.uint8)
    y0, x0 = (cell - nh) // 2, (cell - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = small
    return out


def _point(shape: tuple[int, ...], p: Probe, cell: int) -> tuple[int, int]:
    h, w = shape[:2]
    scale = cell / max(h, w)
    nw, nh = round(w * scale), round(h * scale)
    return (cell - nw) // 2 + int(p.x * nw), (cell - nh) // 2 + int(p.y * nh)


def contact_sheet(rows: Sequence[SheetRow], engines: Sequence[str], cell: int = 256) -> np.ndarray:
    """The sheet: a label strip over each cell; columns photo, truth (left out when no
    row has one), then alpha and cut-out per engine (a missing engine's cells stay dark
    grey)."""
    if not rows:
        raise ValueError("contact_sheet needs at least one row")
    with_truth = any(row.truth is not None for row in rows)
    columns = 1 + with_truth + 2 * len(engines)
    row_h = cell + LABEL_HEIGHT
    sheet = np.full((len(rows) * row_h, columns * cell, 3), 48, np.uint8)
    for r, row in enumerate(rows):
        y0 = r * row_h
        cells: list[tuple[str, np.ndarray | None]] = []
        photo = _fit(row.rgb, cell)
        for p in row.probes:
            colour = _SUBJECT if p.expect == "subject" else _BACKGROUND
            cv2.circle(photo, _point(row.rgb.shape, p, cell), 5, colour, 2, cv2.LINE_AA)
        cells.append((row.title, photo))
        if with_truth:
            cells.append(("truth", None if row.truth is None else _fit(row.truth, cell)))
        for engine in engines:
            alpha = row.alphas.get(engine)
            if alpha is None:
                cells += [(f"{engine}: n/a", None), ("", None)]
                continue
            view = _fit(alpha, cell)
            for result in probe(alpha, row.probes):
                colour = _RIGHT if result.ok else _WRONG
                cv2.circle(view, _point(alpha.shape, result.probe, cell), 4, colour, -1)
            cells.append((f"{engine} alpha", view))
            cells.append((f"{engine} cut-out", _fit(checkerboard_cutout(row.rgb, alpha), cell)))
        for c, (text, image) in enumerate(cells):
            x0 = c * cell
            label(sheet[y0 : y0 + LABEL_HEIGHT, x0 : x0 + cell], text)
            if image is not None:
                sheet[y0 + LABEL_HEIGHT : y0 + row_h, x0 : x0 + cell] = image
    return sheet
