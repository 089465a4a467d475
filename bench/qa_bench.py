"""Image QA benchmark: the worker's grading step (services/jobs/qa_review.grade:
decode the encoded output, every score, reasons, compliance) per megapixel, against
the budget of 50 ms per megapixel of output.

Cases, each at 1, 4 and 16 MP outputs (1024^2, 2048^2, 4096^2): a product photo
(JPEG, white background, soft shadow: every score runs), the same with a small
subject (the edge work scales with the subject, the rest with the canvas), and a
transparent PNG cut-out. The outputs are made once by the real compositor; only
grading is timed. Reports the median of --repeats warm runs, wall time and this
process's CPU time (all its threads), in ms and ms/MP, and writes
bench/results/qa.json. The budget is checked on CPU time: on a shared, loaded host
wall time measures the neighbours as much as the code.

    PYTHONPATH=.:gen .venv/bin/python bench/qa_bench.py [--sides 1024 2048 4096] [--repeats N]

Timings on a shared 2-core host are noisy: the load average is recorded."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from services.common.qa_thresholds import QaThresholds  # noqa: E402
from services.compositor.compose import ComposeSpec, compose  # noqa: E402
from services.compositor.cutout import cutout  # noqa: E402
from services.compositor.encode import EncodeOptions, encode  # noqa: E402
from services.compositor.layout import LayoutSpec  # noqa: E402
from services.compositor.presets import preset_background  # noqa: E402
from services.compositor.shadows import SHADOW_STYLES  # noqa: E402
from services.jobs.qa_review import Evidence, grade  # noqa: E402
from tests.compositor import products  # noqa: E402

BUDGET_MS_PER_MP = 50.0
RESULTS = Path(__file__).resolve().parent / "results" / "qa.json"


def _product_photo(side: int, scale: float) -> Evidence:
    subject = products.bottle(1024)
    spec = ComposeSpec(
        background=preset_background("white-studio"),
        layout=LayoutSpec(output_width=side, output_height=side, scale=scale),
        shadow=SHADOW_STYLES["soft"],
    )
    result = compose(subject, spec)
    data = encode(result.pixels, EncodeOptions("jpeg", 90))
    return Evidence(
        operation="product-photo",
        params={"output_size": f"{side}x{side}", "scale": scale},
        source_size=(1024, 1024),
        output=data,
        format="jpeg",
        source_alpha=np.ascontiguousarray(subject[:, :, 3]),
        source_rgb=products.photographed(subject, (236, 236, 236)),
        canvas_alpha=result.alpha,
        shadow=result.shadow,
        background=result.background_engine,
    )


def _cutout(side: int) -> Evidence:
    import cv2

    subject = cv2.resize(products.jar(1024), (side, side), interpolation=cv2.INTER_CUBIC)
    pixels = cutout(subject)
    return Evidence(
        operation="remove-background",
        params={},
        source_size=(side, side),
        output=encode(pixels, EncodeOptions("png", 90, png_compress_level=1)),
        format="png",
        source_alpha=np.ascontiguousarray(subject[:, :, 3]),
        source_rgb=products.photographed(subject, (236, 236, 236)),
        canvas_alpha=np.ascontiguousarray(subject[:, :, 3]),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    limits = QaThresholds()
    rows = []
    for side in args.sides:
        cases = {
            "product-photo jpeg": _product_photo(side, 0.8),
            "product-photo jpeg, small subject": _product_photo(side, 0.2),
            "cut-out png": _cutout(side),
        }
        for name, evidence in cases.items():
            grade(evidence, limits)  # warm up
            walls, cpus = [], []
            for _ in range(args.repeats):
                start, cpu = time.perf_counter(), time.process_time()
                grade(evidence, limits)
                walls.append((time.perf_counter() - start) * 1000)
                cpus.append((time.process_time() - cpu) * 1000)
            mp = side * side / 1e6
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            rows.append(
                {
                    "case": name,
                    "output": f"{side}x{side}",
                    "megapixels": round(mp, 2),
                    "median_wall_ms": round(wall, 1),
                    "median_cpu_ms": round(cpu, 1),
                    "wall_ms_per_mp": round(wall / mp, 1),
                    "cpu_ms_per_mp": round(cpu / mp, 1),
                    "within_budget": cpu / mp <= BUDGET_MS_PER_MP,
                }
            )
            print(
                f"{name:36s} {side}x{side}  wall {wall:7.1f} ms {wall / mp:6.1f} ms/MP  "
                f"cpu {cpu:7.1f} ms {cpu / mp:5.1f} ms/MP  "
                f"{'ok' if cpu / mp <= BUDGET_MS_PER_MP else 'OVER BUDGET'}"
            )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "budget_ms_per_mp": BUDGET_MS_PER_MP,
                "repeats": args.repeats,
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "loadavg": os.getloadavg(),
                },
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
