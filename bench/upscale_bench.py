"""Upscale benchmark: the provisioned ESRGAN-family RRDN model against the embedded
Lanczos + unsharp-mask engine (and plain bicubic), on real photographs, in one run.

Quality: each photo we did not make (scikit-image's, services/samples/photos.py, plus
two more of its wheel) is downscaled by 4 and by 2 with area averaging, then enlarged
back by each engine and compared with the original: PSNR and SSIM (on RGB, a border of
`scale` px left out). The engines run as the worker calls them, through the real
tritonserver (the nvidia-pytriton wheel's, CPU) serving a copy of model_repository/ with
RRDN provisioned from the cache: `rrdn` is upscale_rrdn (tiled front + OpenVINO, bf16
where the CPU has it; the package's 4x model, its result area-averaged for 2x),
`lanczos` is upscale_lanczos; `bicubic` is OpenCV's, in-process. With --fp32,
`rrdn-fp32` runs the same tiling in-process on the same ONNX file with OpenVINO at
float32, to show what bf16 costs. With --x2-from-tarball (the package's tarball,
`npm pack @upscalerjs/esrgan-thick@1.0.0`), `rrdn-x2-model` runs the package's own 2x
model (converted the same way, in-process) at 2x: the choice the 2x path was made on.
Each photo goes through every engine in turn.

Speed: seconds for 256^2 -> 1024^2 and 512^2 -> 2048^2 through Triton (the served
configuration, p50 of --runs), and, each in a child process of its own so its peak
memory (ru_maxrss) is its own, the levers: tile size, threads and precision, with the
same tiling code in-process.

It writes bench/results/upscale.json, prints markdown tables, and with --sheets DIR
writes contact sheets of crops (original | lanczos | rrdn, per photo and scale).

    .venv/bin/python bench/upscale_bench.py [--quick] [--sheets /tmp/upscale-sheets]

Numbers from a shared 2-core CPU host are noisy: the load average is recorded, and only
engines measured in the same run should be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_identity  # noqa: E402
from services.common.settings import CommonSettings  # noqa: E402
from services.common.triton import TritonProcess  # noqa: E402
from services.models.pybackend import tiling  # noqa: E402
from services.samples.photos import PHOTO_NAMES, load_photo  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "upscale.json"
NUMBA_CACHE = ROOT / ".lightbox" / "numba_cache"
EXTRA_PHOTOS = ("hubble_deep_field", "immunohistochemistry")
UPSCALE_MODELS = ("upscale_lanczos", "upscale_rrdn")
SIZES = ((256, 1024), (512, 2048))
# Engines measured at one scale only: the package's own 2x model.
SCALE_ONLY = {"rrdn-x2-model": 2}

Run = Callable[[np.ndarray, int], np.ndarray]


# --- images and scores --------------------------------------------------------------


def photos(names: list[str]) -> list[tuple[str, np.ndarray]]:
    from skimage import data

    out = []
    for name in names:
        if name in PHOTO_NAMES:
            rgb = load_photo(name).rgb
        else:
            rgb = getattr(data, name)()
        if rgb.ndim == 2:
            rgb = np.dstack([rgb] * 3)
        out.append((name, np.ascontiguousarray(rgb[..., :3]).astype(np.uint8)))
    return out


def crop_to(rgb: np.ndarray, multiple: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return rgb[: h - h % multiple, : w - w % multiple]


def psnr(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    a = a[shave:-shave, shave:-shave].astype(np.float64)
    b = b[shave:-shave, shave:-shave].astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave], channel_axis=2
        )
    )


# --- engines ------------------------------------------------------------------------


def served(addr: str, model: str) -> Run:
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(addr)

    def run(rgb: np.ndarray, scale: int) -> np.ndarray:
        a = triton_grpc.InferInput("IMAGE", list(rgb.shape), "UINT8")
        a.set_data_from_numpy(np.ascontiguousarray(rgb))
        b = triton_grpc.InferInput("SCALE", [1], "INT32")
        b.set_data_from_numpy(np.array([scale], np.int32))
        return client.infer(model, [a, b], client_timeout=900).as_numpy("UPSCALED")

    return run


def openvino_runner(onnx_path: Path, precision: str, threads: int) -> Callable:
    import openvino as ov

    core = ov.Core()
    if precision == "auto":
        caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        precision = "bf16" if "BF16" in caps else "f32"
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    request = core.compile_model(
        core.read_model(str(onnx_path)), "CPU", config
    ).create_infer_request()

    def run(batch: np.ndarray) -> np.ndarray:
        return np.array(request.infer({"input": batch})[0], copy=True)

    return run


def in_process(
    repo: Path,
    precision: str,
    threads: int = 0,
    tile: int | None = None,
    onnx_path: Path | None = None,
    model_scale: int = 4,
) -> Run:
    """The served tiling (upscale_rrdn's parameters) run here over OpenVINO, on the
    provisioned model or `onnx_path`."""
    from tests.model_repository.triton_fixtures import config_parameters

    raw = config_parameters("upscale_rrdn", repo)
    if tile is not None:
        raw["tile"] = str(tile)
    raw["model_scale"] = str(model_scale)
    params = tiling.parse_params(raw)
    path = onnx_path or repo / params.network_model / "1" / "model.onnx"
    fn = openvino_runner(path, precision, threads)
    return lambda rgb, scale: tiling.upscale_tiled(rgb, scale, fn, params)


def x2_model(tarball: Path, work: Path) -> Path:
    """The package's own 2x model, converted and checked like the provisioned 4x one."""
    from services.models import rrdn
    from services.models.packages import safe_extract

    package = safe_extract(tarball, work / "x2-package")
    source = rrdn.LayersModel(
        "models/x2/model.json",
        example_input="assets/fixture.png",
        example_output="assets/samples/2x/result.png",
    )
    source.assemble(package, work / "x2-source.zip")
    rrdn.prepare(work / "x2-source.zip", work / "x2.onnx")
    return work / "x2.onnx"


def bicubic(rgb: np.ndarray, scale: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)


# --- the parts of the run -----------------------------------------------------------


def quality(
    engines: dict[str, Run], pics: list[tuple[str, np.ndarray]], scales: tuple[int, ...]
) -> tuple[list[dict[str, Any]], dict[tuple[str, int], dict[str, np.ndarray]]]:
    rows: list[dict[str, Any]] = []
    outputs: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    for name, rgb in pics:
        for scale in scales:
            truth = crop_to(rgb, scale)
            h, w = truth.shape[:2]
            small = cv2.resize(truth, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
            outs: dict[str, np.ndarray] = {}
            for engine, run in engines.items():
                if engine in SCALE_ONLY and SCALE_ONLY[engine] != scale:
                    continue
                t0 = time.perf_counter()
                out = run(small, scale)
                seconds = time.perf_counter() - t0
                assert out.shape == truth.shape, (engine, out.shape, truth.shape)
                outs[engine] = out
                rows.append(
                    {
                        "photo": name,
                        "scale": scale,
                        "engine": engine,
                        "input": f"{w // scale}x{h // scale}",
                        "psnr": round(psnr(out, truth, scale), 3),
                        "ssim": round(ssim(out, truth, scale), 4),
                        "seconds": round(seconds, 3),
                    }
                )
                print(
                    f"{name:22s} x{scale} {engine:10s} PSNR {rows[-1]['psnr']:6.2f} "
                    f"SSIM {rows[-1]['ssim']:.4f} {seconds:6.2f} s",
                    flush=True,
                )
            outs["original"] = truth
            outputs[(name, scale)] = outs
    return rows, outputs


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scale in sorted({r["scale"] for r in rows}):
        by_engine: dict[str, Any] = {}
        for engine in dict.fromkeys(r["engine"] for r in rows if r["scale"] == scale):
            mine = [r for r in rows if r["scale"] == scale and r["engine"] == engine]
            by_engine[engine] = {
                "psnr": round(statistics.mean(r["psnr"] for r in mine), 3),
                "ssim": round(statistics.mean(r["ssim"] for r in mine), 4),
            }
        lanczos = {
            r["photo"]: r["psnr"] for r in rows if r["scale"] == scale and r["engine"] == "lanczos"
        }
        losses = [
            r["photo"]
            for r in rows
            if r["scale"] == scale and r["engine"] == "rrdn" and r["psnr"] < lanczos[r["photo"]]
        ]
        out[f"x{scale}"] = {"mean": by_engine, "rrdn_loses_to_lanczos_on": losses}
    return out


def speed_served(run: Run, runs: int) -> list[dict[str, Any]]:
    out = []
    rng = np.random.default_rng(0)
    for side, target in SIZES:
        base = cv2.resize(load_photo("astronaut").rgb, (side, side), interpolation=cv2.INTER_AREA)
        image = np.clip(base.astype(int) + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)
        run(image, 4)  # the first call at a new size compiles OpenVINO's shapes
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            result = run(image, 4)
            times.append(time.perf_counter() - t0)
        assert result.shape == (target, target, 3)
        out.append(
            {
                "case": f"{side}^2 -> {target}^2",
                "p50_s": round(statistics.median(times), 2),
                "min_s": round(min(times), 2),
                "runs": runs,
            }
        )
        print(f"served x4 {side}->{target}: p50 {out[-1]['p50_s']} s", flush=True)
    return out


# The served setting first (upscale_rrdn's config: tile 512, bf16 where the CPU has it,
# every core), then one lever changed at a time.
LEVERS = (
    {"precision": "auto", "threads": 0, "tile": 512},
    {"precision": "auto", "threads": 0, "tile": 256},
    {"precision": "auto", "threads": 0, "tile": 128},
    {"precision": "auto", "threads": 1, "tile": 512},
    {"precision": "f32", "threads": 0, "tile": 512},
)


def lever_child(repo: Path, side: int, precision: str, threads: int, tile: int, runs: int) -> None:
    """One lever in this (child) process: prints its JSON result."""
    run = in_process(repo, precision, threads, tile)
    image = cv2.resize(load_photo("astronaut").rgb, (side, side), interpolation=cv2.INTER_AREA)
    run(image, 4)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(image, 4)
        times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"p50_s": round(statistics.median(times), 2), "peak_rss_mb": round(peak_mb)}))


def levers(repo: Path, sides: tuple[int, ...], runs: int) -> list[dict[str, Any]]:
    out = []
    for side in sides:
        for lever in LEVERS:
            command = [
                sys.executable,
                __file__,
                "--lever-child",
                json.dumps({"repo": str(repo), "side": side, "runs": runs, **lever}),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"lever {lever} failed: {done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            row = {"case": f"{side}^2 -> {side * 4}^2", **lever, **result}
            out.append(row)
            print(f"lever {row}", flush=True)
    return out


def write_sheets(
    folder: Path, outputs: dict[tuple[str, int], dict[str, np.ndarray]], crop: int
) -> list[str]:
    """Per scale, one sheet: a row per photo, crops (crop x crop px of the output, from
    the busiest part of the original) of original | lanczos | rrdn, labelled."""
    from services.compositor.contact_sheet import LABEL_HEIGHT, label

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for scale in sorted({s for _, s in outputs}):
        rows = []
        for (name, s), outs in outputs.items():
            if s != scale:
                continue
            truth = outs["original"]
            gray = cv2.cvtColor(truth, cv2.COLOR_RGB2GRAY).astype(np.float32)
            detail = cv2.boxFilter(np.abs(cv2.Laplacian(gray, cv2.CV_32F)), -1, (crop, crop))
            half = crop // 2
            inner = detail[half:-half, half:-half]
            y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
            cells = []
            for engine in ("original", "lanczos", "rrdn", "rrdn-x2-model"):
                if engine not in outs:
                    continue
                cell = outs[engine][y : y + crop, x : x + crop]
                cell = cv2.resize(cell, (crop * 2, crop * 2), interpolation=cv2.INTER_NEAREST)
                strip = np.zeros((LABEL_HEIGHT, crop * 2, 3), np.uint8)
                label(strip, f"{name} x{scale} {engine}")
                cells.append(np.concatenate([strip, cell]))
            rows.append(np.concatenate(cells, axis=1))
        width = max(r.shape[1] for r in rows)
        sheet = np.concatenate(
            [
                np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                for r in rows
            ]
        )
        path = folder / f"upscale-x{scale}.png"
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        written.append(str(path))
    return written


def table(
    summary: dict[str, Any], rows: list[dict[str, Any]], speed: list, lever_rows: list
) -> str:
    lines = [
        "| photo | scale | input | lanczos PSNR / SSIM | rrdn PSNR / SSIM | bicubic PSNR | "
        "package's x2 model |"
    ]
    lines.append("|---|---|---|---|---|---|---|")
    by = {(r["photo"], r["scale"], r["engine"]): r for r in rows}
    for photo, scale in dict.fromkeys((r["photo"], r["scale"]) for r in rows):
        la, rr, bi, x4 = (
            by.get((photo, scale, e)) for e in ("lanczos", "rrdn", "bicubic", "rrdn-x2-model")
        )
        if la is None or rr is None:
            continue
        alt = f"{x4['psnr']:.2f} / {x4['ssim']:.3f}" if x4 else "-"
        lines.append(
            f"| {photo} | {scale}x | {la['input']} | {la['psnr']:.2f} / {la['ssim']:.3f} | "
            f"{rr['psnr']:.2f} / {rr['ssim']:.3f} | {bi['psnr'] if bi else '-'} | {alt} |"
        )
    for key, s in summary.items():
        m = s["mean"]
        lines.append(
            f"| **mean** | {key} | | {m['lanczos']['psnr']:.2f} / {m['lanczos']['ssim']:.3f} | "
            f"{m['rrdn']['psnr']:.2f} / {m['rrdn']['ssim']:.3f} | "
            f"{m.get('bicubic', {}).get('psnr', '-')} | "
            + (
                f"{m['rrdn-x2-model']['psnr']:.2f} / {m['rrdn-x2-model']['ssim']:.3f} |"
                if "rrdn-x2-model" in m
                else "- |"
            )
        )
    lines += ["", "| served x4 | p50 s |", "|---|---|"]
    lines += [f"| {r['case']} | {r['p50_s']} |" for r in speed]
    if lever_rows:
        lines += [
            "",
            "| case | precision | threads | tile | p50 s | peak RSS MB |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['case']} | {r['precision']} | {r['threads'] or 'all'} | {r['tile']} | "
            f"{r['p50_s']} | {r['peak_rss_mb']} |"
            for r in lever_rows
        ]
    return "\n".join(lines)


def prepare_repository(work: Path, cache_dir: Path) -> Path:
    from services.models.packages import provision
    from tests.model_repository.triton_fixtures import copy_repository

    repo = copy_repository(work / "repo")
    provision("rrdn", repo, cache_dir)
    return repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three photos, one served run")
    parser.add_argument("--photos", default=None, help="comma list (default: all eight)")
    parser.add_argument("--runs", type=int, default=None, help="served speed runs (3)")
    parser.add_argument("--levers", default="512", help="sides for the lever runs, or none")
    parser.add_argument("--fp32", action="store_true", help="also rrdn at float32, in-process")
    parser.add_argument(
        "--x2-from-tarball", type=Path, default=None, help="also the package's own 2x model"
    )
    parser.add_argument("--sheets", type=Path, default=None)
    parser.add_argument("--crop", type=int, default=96, help="sheet crop side, output px")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--lever-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lever_child:
        spec = json.loads(args.lever_child)
        lever_child(
            Path(spec["repo"]),
            spec["side"],
            spec["precision"],
            spec["threads"],
            spec["tile"],
            spec["runs"],
        )
        return 0
    names = (
        args.photos.split(",")
        if args.photos
        else (
            ["coffee", "astronaut", "motorcycle"] if args.quick else [*PHOTO_NAMES, *EXTRA_PHOTOS]
        )
    )
    runs = args.runs or (1 if args.quick else 3)
    lever_sides = () if args.levers == "none" else tuple(int(s) for s in args.levers.split(","))
    cache_dir = CommonSettings().cache_dir
    assert cache_dir is not None
    pics = photos(names)
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lightbox-upscale-bench-") as tmp:
        work = Path(tmp)
        repo = prepare_repository(work, cache_dir)
        load = [*UPSCALE_MODELS, "upscale_rrdn_onnx"]
        with TritonProcess.start(
            repo,
            work / "triton",
            model_control="explicit",
            load_models=load,
            numba_cache_dir=NUMBA_CACHE,
            ready_models=list(UPSCALE_MODELS),
            timeout=600,
        ) as server:
            lanczos = served(server.grpc_addr, "upscale_lanczos")
            engines: dict[str, Run] = {
                "bicubic": bicubic,
                "lanczos": lanczos,
                "rrdn": served(server.grpc_addr, "upscale_rrdn"),
            }
            if args.x2_from_tarball:
                engines["rrdn-x2-model"] = in_process(
                    repo, "auto", onnx_path=x2_model(args.x2_from_tarball, work), model_scale=2
                )
            if args.fp32:
                engines["rrdn-fp32"] = in_process(repo, "f32")
            rows, outputs = quality(engines, pics, (4, 2))
            speed = speed_served(engines["rrdn"], runs)
        lever_rows = levers(repo, lever_sides, runs) if lever_sides else []
    summary = summarise(rows)
    sheets = write_sheets(args.sheets, outputs, args.crop) if args.sheets else []
    results = {
        "meta": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "cpu": cpu_identity(),
            "loadavg_before": loadavg_before,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.monotonic() - started, 1),
            "command": " ".join(sys.argv),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip(),
            "downscale": "cv2.INTER_AREA; PSNR/SSIM on RGB with a border of `scale` px left out",
        },
        "summary": summary,
        "rows": rows,
        "speed_served": speed,
        "levers": lever_rows,
        "sheets": sheets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(summary, rows, speed, lever_rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
