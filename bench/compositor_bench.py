"""Compositor benchmark: our numpy/OpenCV compose vs a straightforward PIL one.

Both draw the same thing (trim to the alpha box, resize to the layout, soft drop
shadow plus contact shadow, white-studio or gradient-light background, paste)
on the same synthetic product at 1024², 2048² and 4096² output. Reports median
wall time, the speed-up, PSNR between the two results, and peak memory, then
writes bench/results/compositor.json.

    .venv/bin/python bench/compositor_bench.py [--sizes 1024 2048 4096] [--repeats N]

Peak memory is measured in a fresh child process per case as the rise of the
process's peak RSS (VmHWM, reset just before the call), so PIL's own buffers
count as well as numpy's; tracemalloc (numpy allocations only) is reported for
ours alongside. Timings are medians of warm runs in this process."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.compositor import shadows  # noqa: E402
from services.compositor.compose import ComposeSpec, compose  # noqa: E402
from services.compositor.layout import TRIM_ALPHA, LayoutSpec, alpha_box, place  # noqa: E402
from services.compositor.presets import LIGHT_GREY, WHITE, Background  # noqa: E402
from tests.compositor.products import bottle  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "compositor.json"
BACKGROUNDS = ("white-studio", "gradient-light")
SUBJECT_SIDE = 1024  # the product photo is 1024² and scaled to each canvas


def layout_for(size: int) -> LayoutSpec:
    return LayoutSpec(output_width=size, output_height=size, scale=0.8, x=50.0, y=55.0)


def ours(subject: np.ndarray, size: int, background: str, decontaminate: bool) -> np.ndarray:
    spec = ComposeSpec(
        Background(background),
        layout_for(size),
        shadows.SHADOW_STYLES["soft"],
        decontaminate=decontaminate,
        max_canvas_side=4096,
    )
    return compose(subject, spec).pixels


def _pil_background(size: int, background: str) -> Image.Image:
    if background == "white-studio":
        return Image.new("RGB", (size, size), WHITE)
    ramp = Image.linear_gradient("L").resize((size, size), Image.Resampling.BICUBIC)
    return ImageOps.colorize(ramp, WHITE, LIGHT_GREY)


def reference(subject: np.ndarray, size: int, background: str) -> np.ndarray:
    """The straightforward PIL version of the same picture: Image.resize,
    GaussianBlur on the (full-resolution) shadow alpha, Image.composite, paste."""
    style = shadows.SHADOW_STYLES["soft"]
    assert style is not None
    image = Image.fromarray(subject, "RGBA")
    box = alpha_box(subject[:, :, 3], TRIM_ALPHA)
    assert box is not None
    p = place(layout_for(size), box, (size, size))
    placed = image.crop(box).resize((p.width, p.height), Image.Resampling.LANCZOS)
    canvas = _pil_background(size, background)
    alpha = placed.getchannel("A")
    extent = max(p.width, p.height)
    black = Image.new("RGB", (size, size), (0, 0, 0))

    # Drop shadow: the silhouette squashed towards its base, offset down, blurred.
    squashed_h = round(p.height * style.squash)
    silhouette = alpha.resize((p.width, squashed_h), Image.Resampling.BILINEAR)
    mask = Image.new("L", (size, size), 0)
    dx, dy = style.offset[0] * extent, style.offset[1] * extent
    mask.paste(silhouette, (round(p.left + dx), round(p.top + p.height - squashed_h + dy)))
    mask = mask.filter(ImageFilter.GaussianBlur(style.blur * extent))
    mask = mask.point(lambda v: round(v * style.opacity))
    canvas = Image.composite(black, canvas, mask)

    # Contact shadow: a band under each column's lowest solid pixel, fading
    # where the bottom edge rises off the floor (same geometry as ours).
    solid_px = np.asarray(alpha) > 127
    has = solid_px.any(axis=0)
    bottom = p.height - 1 - np.argmax(solid_px[::-1], axis=0)
    rise = np.where(has, p.height - 1 - bottom, np.inf)
    strength = np.exp(-((rise / max(1.0, shadows.CONTACT_FADE * extent)) ** 2))
    half = max(1.5, shadows.CONTACT_THICKNESS * extent)
    rows = np.arange(p.height + math.ceil(3 * half))[:, None]
    band = np.exp(-(((rows - bottom[None, :] - 0.25 * half) / half) ** 2)) * strength[None, :]
    band_img = Image.fromarray(np.uint8(np.clip(band * 255 * style.contact, 0, 255)), "L")
    contact = Image.new("L", (size, size), 0)
    contact.paste(band_img, (p.left, p.top))
    contact = contact.filter(ImageFilter.GaussianBlur(max(0.8, shadows.CONTACT_BLUR * extent)))
    canvas = Image.composite(black, canvas, contact)

    canvas.paste(placed, (p.left, p.top), placed)
    return np.asarray(canvas)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def median_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm: imports, caches, first-touch page faults of the allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def measure_memory(impl: str, size: int, background: str) -> dict[str, float]:
    """Run one compose in this (fresh) process; peak RSS rise and tracemalloc peak."""
    subject = bottle(SUBJECT_SIDE)
    if impl == "ours":
        ours(subject, 64, background, True)  # import-time and first-call costs out of the way
        run = lambda: ours(subject, size, background, True)  # noqa: E731
    else:
        reference(subject, 64, background)
        run = lambda: reference(subject, size, background)  # noqa: E731
    Path("/proc/self/clear_refs").write_text("5")
    base = _rss_kib()
    tracemalloc.start()
    result = run()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _hwm_kib() - base
    del result
    return {"rss_peak_mib": peak / 1024, "tracemalloc_peak_mib": traced_peak / 2**20}


def child_memory(impl: str, size: int, background: str) -> dict[str, float]:
    # A fixed mmap threshold makes glibc hand every large buffer straight back to
    # the kernel when freed, so resident memory tracks live memory and the peak
    # is the real one (not hidden by reuse of earlier freed heap).
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "MALLOC_TRIM_THRESHOLD_": "131072",
        "MALLOC_TOP_PAD_": "0",
    }
    out = subprocess.run(
        [sys.executable, __file__, "--memory", impl, str(size), background],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_case(subject: np.ndarray, size: int, background: str, repeats: int) -> dict:
    """Time, compare and measure both implementations on one (size, background)."""
    ours_px = ours(subject, size, background, False)
    ref_px = reference(subject, size, background)
    row: dict = {
        "size": size,
        "background": background,
        "ours_ms": median_ms(lambda: ours(subject, size, background, False), repeats),
        "ours_decontaminated_ms": median_ms(lambda: ours(subject, size, background, True), repeats),
        "pil_ms": median_ms(lambda: reference(subject, size, background), repeats),
        "psnr_db": psnr(ours_px, ref_px),
        "canvas_mib": size * size * 3 / 2**20,
    }
    row["speedup"] = row["pil_ms"] / row["ours_ms"]
    mem_ours = child_memory("ours", size, background)
    mem_pil = child_memory("pil", size, background)
    row["ours_peak_mib"] = mem_ours["rss_peak_mib"]
    row["ours_tracemalloc_mib"] = mem_ours["tracemalloc_peak_mib"]
    row["pil_peak_mib"] = mem_pil["rss_peak_mib"]
    row["ours_peak_vs_canvas"] = row["ours_peak_mib"] / row["canvas_mib"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--memory", nargs=3, metavar=("IMPL", "SIZE", "BACKGROUND"))
    args = parser.parse_args()
    if args.memory:
        impl, size, background = args.memory
        print(json.dumps(measure_memory(impl, int(size), background)))
        return

    subject = bottle(SUBJECT_SIDE)
    rows = []
    for size in args.sizes:
        for background in BACKGROUNDS:
            rows.append(measure_case(subject, size, background, args.repeats))
            print(f"done {size} {background}", file=sys.stderr)

    print(
        "| size | background | ours ms | ours + decontam. ms | PIL ms | speed-up | PSNR dB "
        "| ours peak MiB (x canvas) | PIL peak MiB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']}² | {r['background']} | {r['ours_ms']:.1f} | "
            f"{r['ours_decontaminated_ms']:.1f} | {r['pil_ms']:.1f} | {r['speedup']:.1f}x | "
            f"{r['psnr_db']:.1f} | {r['ours_peak_mib']:.0f} ({r['ours_peak_vs_canvas']:.1f}x) | "
            f"{r['pil_peak_mib']:.0f} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "pillow": Image.__version__,
        "opencv": __import__("cv2").__version__,
        "subject": f"synthetic bottle {SUBJECT_SIDE}x{SUBJECT_SIDE} RGBA, scale 0.8, soft shadow",
        "ours_ms": "decontamination off, like the reference; ours_decontaminated_ms is the default",
    }
    RESULTS.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
