"""End to end through the public API: one 1-megapixel product photo (JPEG upload,
white-studio, soft shadow) from submit to downloaded output, the way a
PixelAPI-style client does it (poll GET /v1/image/{id} every 50 ms).

    .venv/bin/python bench/e2e_bench.py [--runs 5] [--gap 0] [--out bench/results/e2e.json]

Starts its own stack (real tritonserver, services, gateway) in a temporary
LIGHTBOX_HOME on free ports, so it measures what `make run` serves."""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_identity, describe  # noqa: E402
from services.common.ports import free_port_block  # noqa: E402
from services.common.settings import CommonSettings  # noqa: E402
from services.samples.synthetic import make_sample  # noqa: E402
from services.stack import Stack  # noqa: E402

SAMPLES = [
    ("bottle", "plain"),
    ("box", "wood"),
    ("mug", "plain"),
    ("bottle", "wood"),
    ("mug", "wood"),
    ("box", "plain"),
]


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def one_photo(base: str, key: str, product: str, backdrop: str, seed: int) -> dict:
    """One product photo through the API, with where its time went: `upload_s` (the
    POST), `queue_s` (created -> the worker started it), `work_s` (the worker's
    processing), `seen_s` (completed -> the client's poll said so), `download_s`.
    Server times come from the job's created_at / completed_at / processing_ms, so
    they share the machine's clock with the client's."""
    buf = io.BytesIO()
    rgb = make_sample(product, backdrop, size=(1024, 1024), seed=seed).rgb
    Image.fromarray(rgb).save(buf, "JPEG", quality=92)
    auth = {"Authorization": f"Bearer {key}"}
    t0 = time.perf_counter()
    wall0 = time.time()
    job = requests.post(
        f"{base}/v1/image/product-photo",
        headers=auth,
        files={"image": ("p.jpg", buf.getvalue(), "image/jpeg")},
        data={"preset": "white-studio", "shadow_type": "soft"},
        timeout=60,
    ).json()
    t_up = time.perf_counter()
    while job["status"] not in ("completed", "failed", "blocked", "canceled"):
        time.sleep(0.05)
        job = requests.get(f"{base}/v1/image/{job['id']}", headers=auth, timeout=10).json()
    t_seen = time.perf_counter()
    if job["status"] != "completed":
        raise RuntimeError(f"job failed: {job.get('error')}")
    requests.get(job["output_url"], timeout=30).raise_for_status()
    t_end = time.perf_counter()
    created, completed = _epoch(job["created_at"]), _epoch(job["completed_at"])
    work = job["processing_ms"] / 1000
    return {
        "sample": f"{product}_{backdrop}",
        "e2e_s": t_end - t0,
        "processing_ms": job["processing_ms"],
        "upload_s": t_up - t0,
        "queue_s": completed - work - created,
        "work_s": work,
        "seen_s": (wall0 + (t_seen - t0)) - completed,
        "download_s": t_end - t_seen,
        "engines": job["engines"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--gap",
        type=float,
        default=0.0,
        help="before each photo, idle a random 0..GAP seconds (a user, not a loop)",
    )
    parser.add_argument("--out", default="bench/results/e2e.json")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="lightbox-e2e-") as tmp:
        settings = CommonSettings(
            home=Path(tmp),
            http_port=free_port_block(),
            numba_cache_dir=repo / ".lightbox" / "numba_cache",
        )
        stack = Stack(settings=settings, log_path=Path(tmp) / "stack.log")
        key = stack.prepare()
        stack.start()
        try:
            stack.wait_ready()
            one_photo(stack.base_url, key, "bottle", "plain", 99)  # warm-up, not counted
            gaps = random.Random(1)
            rows = []
            for i in range(args.runs):
                time.sleep(gaps.uniform(0.0, args.gap))
                rows.append(one_photo(stack.base_url, key, *SAMPLES[i % len(SAMPLES)], i))
        finally:
            stack.stop()
    e2e = [r["e2e_s"] for r in rows]
    proc = [r["processing_ms"] for r in rows]
    summary = {
        "runs": len(rows),
        "e2e_median_s": statistics.median(e2e),
        "e2e_max_s": max(e2e),
        "processing_median_ms": statistics.median(proc),
        "load_avg_1m": os.getloadavg()[0],
        "cpu": cpu_identity(),
        "gap_s": args.gap,
        "parts_median_s": {
            part: round(statistics.median(r[part] for r in rows), 3)
            for part in ("upload_s", "queue_s", "work_s", "seen_s", "download_s")
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "runs": rows}, indent=2) + "\n")
    print(
        "| sample | end to end s | upload | queue | worker | seen | download |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    for r in rows:
        parts = " | ".join(
            f"{r[k]:.3f}" for k in ("upload_s", "queue_s", "work_s", "seen_s", "download_s")
        )
        print(f"| {r['sample']} | {r['e2e_s']:.2f} | {parts} |")
    print(
        f"\nmedian {summary['e2e_median_s']:.2f} s end to end, "
        f"{summary['processing_median_ms']:.0f} ms in the worker "
        f"(load average {summary['load_avg_1m']:.1f}; {describe(summary['cpu'])})\n"
        f"median parts, s: {summary['parts_median_s']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
