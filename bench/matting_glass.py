"""Can a clear glass be told from an opaque product by "the photo shows the backdrop
through it"? Measured, not served (BENCHMARKS.md, Matting: glass).

    .venv/bin/python bench/matting_glass.py [--seeds 0,3] [--out bench/results/matting_glass.json]

ISNet calls a clear tumbler on a plain sweep solid subject, so the only cue left to a
refinement step is physical: behind a see-through body the photo is nearly the backdrop
(I = a F + (1 - a) B with a about 0.15), while an opaque product's interior is its own
colour. This measures that cue with everything else ideal: the true alpha says which
pixels are backdrop, subject interior (truth 255, 7 px in) and see-through body (truth
between 5 and 80); the backdrop behind the subject is predicted by inpainting the true
backdrop (OpenCV Telea at 256 px) and so is its local texture level (RGB standard
deviation in a 9 x 9 window). Per pixel z = |blur5(I) - B| / (texture + 3/255): small
where the photo matches the backdrop predicted there.

For a cue to make glass see-through without punching holes in products, some threshold
t would have to take most of every glass body (z < t) and none of any opaque interior.
The table gives, per threshold, the share of glass bodies taken and the worst share of
an opaque product's interior taken, by kind, over the synthetic set (VARIED_SET) at the
seeds given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_identity  # noqa: E402
from services.samples.synthetic import VARIED_SET, make_sample  # noqa: E402

THRESHOLDS = (0.75, 1.0, 1.5, 2.0)
LOW = 256  # the backdrop model's resolution


def backdrop_behind(img: np.ndarray, backdrop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The backdrop's colour and texture level (h x w x 3, h x w; [0, 1]) predicted over
    the whole photo, inpainted from the pixels where `backdrop` is true."""
    h, w = backdrop.shape
    small = cv2.resize(img, (LOW, LOW), interpolation=cv2.INTER_AREA)
    known = cv2.resize(backdrop.astype(np.float32), (LOW, LOW), interpolation=cv2.INTER_AREA)
    hole = (known < 0.999).astype(np.uint8)
    mean = cv2.blur(img, (9, 9))
    square = cv2.blur(img * img, (9, 9))
    spread = np.sqrt(np.maximum(square - mean * mean, 0.0).sum(axis=2))
    spread_small = cv2.resize(spread, (LOW, LOW), interpolation=cv2.INTER_AREA)
    colour = cv2.inpaint(np.clip(small * 255, 0, 255).astype(np.uint8), hole, 5, cv2.INPAINT_TELEA)
    # the texture level is small: stored x4 so 8 bits keep its detail
    level = cv2.inpaint(
        np.clip(spread_small * 255 * 4, 0, 255).astype(np.uint8), hole, 5, cv2.INPAINT_TELEA
    )
    b = cv2.resize(colour.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_LINEAR)
    s = cv2.resize(level.astype(np.float32) / (255 * 4), (w, h), interpolation=cv2.INTER_LINEAR)
    return b, s


def measure(seed: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    k7 = np.ones((7, 7), np.uint8)
    for kind, product, backdrop in VARIED_SET:
        sample = make_sample(product, backdrop, size=(1024, 1024), seed=seed)
        img = sample.rgb.astype(np.float32) / 255
        truth = sample.alpha
        known = cv2.erode((truth == 0).astype(np.uint8), k7) > 0
        b, s = backdrop_behind(img, known)
        z = np.linalg.norm(cv2.blur(img, (5, 5)) - b, axis=2) / (s + 3 / 255)
        regions = {
            "opaque": cv2.erode((truth == 255).astype(np.uint8), k7) > 0,
            "see_through": cv2.erode(((truth > 5) & (truth < 80)).astype(np.uint8), k7) > 0,
        }
        for region, mask in regions.items():
            if mask.sum() < 100:
                continue
            zz = z[mask]
            rows.append(
                {
                    "seed": seed,
                    "sample": sample.name,
                    "kind": kind,
                    "region": region,
                    "pixels": int(mask.sum()),
                    "z_p50": round(float(np.median(zz)), 3),
                    "taken": {str(t): round(float(np.mean(zz < t)), 4) for t in THRESHOLDS},
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    kinds = sorted({str(r["kind"]) for r in rows if r["region"] == "opaque"})
    head = "| threshold t | glass bodies taken (mean, min) | " + " | ".join(
        f"{k}: worst opaque taken" for k in kinds
    )
    lines = [head + " |", "|---" * (2 + len(kinds)) + "|"]
    for t in THRESHOLDS:
        key = str(t)
        glass = [float(r["taken"][key]) for r in rows if r["region"] == "see_through"]
        cells = [f"{t}", f"{np.mean(glass):.0%}, {min(glass):.0%}"]
        for k in kinds:
            worst = max(
                (r for r in rows if r["kind"] == k and r["region"] == "opaque"),
                key=lambda r: float(r["taken"][key]),
            )
            cells.append(f"{float(worst['taken'][key]):.1%} ({worst['sample']})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,3")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/matting_glass.json")
    args = parser.parse_args()
    started = time.monotonic()
    rows = [r for seed in (int(s) for s in args.seeds.split(",")) for r in measure(seed)]
    report = {
        "meta": {
            "seeds": args.seeds,
            "thresholds": THRESHOLDS,
            "cpu": cpu_identity(),
            "seconds": round(time.monotonic() - started, 1),
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(rows))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
