"""Matting benchmark: Lightbox's matting engines against rembg, on the same images in
one run.

Images: the 24 synthetic product photos of `services.samples.synthetic.varied_samples`
(exact alpha; kinds plain, textured, busy, white-on-white, dark-on-dark, glass, fur,
holes) and the real photographs of `services.samples.photos` (no alpha; probe points
placed by eye). Engines, each called on every image in turn (interleaved, so a load
spike on this shared machine hits them alike):

- `lightbox-isnet`, `lightbox-auto`, `classical`: our stack's matting stage as the worker
  calls it, `TritonEngines(addr, matting_engine=...).matting(rgb)`, against the real
  tritonserver (the nvidia-pytriton wheel's, CPU) serving a copy of model_repository/
  with ISNet provisioned from the cache (`lightbox models fetch isnet` fills it);
  `lightbox-auto` (asked for with --engines; the same calls as `lightbox-isnet` when it
  picks ISNet) runs only when auto picks ISNet, and which engine auto picks is always
  recorded (meta.auto_picks);
- `rembg`: rembg (pip, the `bench` extra) with its `dis_custom` session on the very ONNX
  file the npm package ships (the fp16 original, kept in the cache as source.onnx);
- `isnet-onnx@R` (only with --raw-resolutions): the provisioned fp32 ISNet run here
  with onnxruntime at an R x R network input, to choose the network resolution.

Reported per kind of photo and overall: IoU (alpha > 127 against truth > 127), mean
absolute alpha error (MAE, alpha in [0, 1]), "kept" (the share of the product's
interior, true alpha 255 at least 3 px inside the edge, that the engine gives exactly
255: what replace-background keeps bit for bit) and the median seconds per image (the
JSON adds edge_mae: MAE over the fractional pixels of the truth and 2 px around them,
where fur and glass show); on
the real photos the share of probe points each engine gets right (and which it missed).
Then the matting stage alone at 1 MP (1000 x 1000) through Triton: p50 over --mp-runs.

It writes bench/results/matting.json, prints a markdown table, and with --sheets DIR
writes contact sheets (bench/matting_sheet.py) to look at.

    .venv/bin/python bench/matting_bench.py [--quick] [--sheets /tmp/sheets]

Numbers from a shared 2-core CPU host are noisy: the load average is recorded, and
only engines measured in the same run should be compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_identity, describe  # noqa: E402
from bench.matting_sheet import SheetRow, contact_sheet  # noqa: E402
from services.common.settings import CommonSettings  # noqa: E402
from services.common.triton import TritonProcess  # noqa: E402
from services.jobs.engines import TritonEngines  # noqa: E402
from services.models.repository import loadable_models  # noqa: E402
from services.samples.photos import PHOTO_NAMES, Probe, load_photo, probe  # noqa: E402
from services.samples.synthetic import KINDS, make_sample, varied_samples  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "matting.json"
NUMBA_CACHE = ROOT / ".lightbox" / "numba_cache"
STACK_ENGINES = {"lightbox-isnet": "isnet", "lightbox-auto": "auto", "classical": "classical"}
DEFAULT_ENGINES = ("lightbox-isnet", "rembg", "classical")
MP_SIDE = 1000


@dataclass
class Image:
    name: str
    kind: str  # a samples kind, or "photo"
    rgb: np.ndarray
    truth: np.ndarray | None = None
    probes: tuple[Probe, ...] = ()


@dataclass
class Engine:
    name: str
    run: Callable[[np.ndarray], np.ndarray] | None
    note: str = ""
    times: list[float] = field(default_factory=list)


class Unavailable(RuntimeError):
    """An engine asked for cannot run here; the message says why."""


# --- engines -----------------------------------------------------------------------


def stack_engine(addr: str, choice: str, timeout_s: float) -> tuple[Callable, str]:
    """Our matting stage through Triton with the engine `choice`; returns the call and
    the engine Triton's side reports. Refuses when the stack serves another one."""
    engines = TritonEngines(addr, timeout_s=timeout_s, matting_engine=choice)
    probe_image = make_sample("bottle", "plain", size=(256, 256)).rgb
    try:
        _, served = engines.matting(probe_image)
    except Exception as exc:
        engines.close()
        raise Unavailable(f"{choice}: {type(exc).__name__}: {exc}") from exc
    wanted = {"auto": "isnet"}.get(choice, choice)
    if served != wanted:
        engines.close()
        raise Unavailable(f"matting_engine={choice} is served by {served!r}, not {wanted!r}")

    def run(rgb: np.ndarray) -> np.ndarray:
        alpha, engine = engines.matting(rgb)
        if engine != served:
            raise RuntimeError(f"engine changed mid-run: {served} -> {engine}")
        return alpha

    return run, served


def rembg_engine(model_path: Path) -> Callable:
    """rembg's dis_custom session on `model_path`, called as its README shows."""
    try:
        from PIL import Image as PILImage
        from rembg import new_session, remove
    except ImportError as exc:
        raise Unavailable(f"rembg is not installed (pip install -e '.[bench]'): {exc}") from exc
    if not model_path.is_file():
        raise Unavailable(f"{model_path} is missing (run `lightbox models fetch isnet`)")
    session = new_session("dis_custom", model_path=str(model_path))

    def run(rgb: np.ndarray) -> np.ndarray:
        mask = remove(PILImage.fromarray(rgb), session=session, only_mask=True)
        return np.asarray(mask.convert("L"), dtype=np.uint8)

    return run


def raw_onnx_engine(model_path: Path, resolution: int) -> Callable:
    """ISNet alone: resize to resolution^2, x/255 - 0.5, onnxruntime, bilinear back."""
    import onnxruntime as ort

    if not model_path.is_file():
        raise Unavailable(f"{model_path} is missing (run `lightbox models fetch isnet`)")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    def run(rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        shrink = resolution < max(h, w)
        x = cv2.resize(
            rgb,
            (resolution, resolution),
            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
        )
        x = (x.astype(np.float32) / 255.0 - 0.5).transpose(2, 0, 1)[None]
        p = session.run(["output"], {"input": np.ascontiguousarray(x)})[0][0, 0]
        p = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(p * 255.0 + 0.5, 0, 255).astype(np.uint8)

    return run


# --- metrics -----------------------------------------------------------------------


def iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    found, real = alpha > 127, truth > 127
    union = (found | real).sum()
    return float((found & real).sum() / union) if union else 1.0


def mae(alpha: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(alpha.astype(np.float32) - truth.astype(np.float32)).mean() / 255.0)


def edge_mae(alpha: np.ndarray, truth: np.ndarray, reach: int = 2) -> float | None:
    """MAE (alpha in [0, 1]) over the product's fractional pixels (edges, fur strands,
    glass) and `reach` px around them: the edge quality that full-image MAE dilutes.
    None when the truth has no fractional pixel."""
    band = ((truth > 0) & (truth < 255)).astype(np.uint8)
    if not band.any():
        return None
    band = cv2.dilate(band, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
    diff = np.abs(alpha[band].astype(np.float32) - truth[band].astype(np.float32))
    return float(diff.mean() / 255.0)


def interior_kept(alpha: np.ndarray, truth: np.ndarray, inset: int = 3) -> float | None:
    """Share of the product's interior (true alpha 255, at least `inset` px inside its
    edge) where the engine's alpha is exactly 255: the pixels replace-background must
    keep bit for bit. None when the product has no such interior (glass)."""
    kernel = np.ones((2 * inset + 1, 2 * inset + 1), np.uint8)
    inner = cv2.erode((truth == 255).astype(np.uint8), kernel) > 0
    if not inner.any():
        return None
    return float((alpha[inner] == 255).mean())


def summarise(rows: list[dict[str, Any]], engines: list[str]) -> dict[str, Any]:
    """Per engine: each kind and all samples (mean IoU, mean MAE, median s), and the
    photos (probe score, misses, median s)."""
    out: dict[str, Any] = {}
    for engine in engines:
        mine = [r for r in rows if r["engine"] == engine]
        if not mine:
            continue
        samples = [r for r in mine if r["kind"] != "photo"]
        kinds = {}
        for kind in [k for k in KINDS if any(r["kind"] == k for r in samples)]:
            of_kind = [r for r in samples if r["kind"] == kind]
            kinds[kind] = _group(of_kind)
        photos = [r for r in mine if r["kind"] == "photo"]
        entry: dict[str, Any] = {"kinds": kinds}
        if samples:
            entry["overall"] = _group(samples)
        if photos:
            right = sum(r["probes_right"] for r in photos)
            total = sum(r["probes_total"] for r in photos)
            entry["photos"] = {
                "n": len(photos),
                "probe_score": round(right / total, 3) if total else None,
                "probes_right": right,
                "probes_total": total,
                "seconds": round(statistics.median(r["seconds"] for r in photos), 3),
                "missed": {r["image"]: r["missed"] for r in photos if r["missed"]},
            }
        out[engine] = entry
    return out


def _group(rows: list[dict[str, Any]]) -> dict[str, Any]:
    kept = [r["interior_kept"] for r in rows if r.get("interior_kept") is not None]
    edge = [r["edge_mae"] for r in rows if r.get("edge_mae") is not None]
    return {
        "n": len(rows),
        "iou": round(statistics.fmean(r["iou"] for r in rows), 4),
        "mae": round(statistics.fmean(r["mae"] for r in rows), 4),
        "edge_mae": round(statistics.fmean(edge), 4) if edge else None,
        "interior_kept": round(statistics.fmean(kept), 4) if kept else None,
        "seconds": round(statistics.median(r["seconds"] for r in rows), 3),
    }


def table(summary: dict[str, Any], engines: list[str]) -> str:
    """Markdown: one row per kind (+ overall, + real photos), IoU / MAE / s per engine."""
    shown = [e for e in engines if e in summary]
    head = "| kind | n | " + " | ".join(f"{e} IoU / MAE / kept / s" for e in shown) + " |"
    lines = [head, "|" + "---|" * (2 + len(shown))]
    kinds = [k for k in KINDS if any(k in summary[e]["kinds"] for e in shown)]
    for kind in [*kinds, "overall"] if kinds else []:
        cells, n = [], ""
        for e in shown:
            g = summary[e]["overall"] if kind == "overall" else summary[e]["kinds"].get(kind)
            if g is None:
                cells.append("–")
                continue
            n = str(g["n"])
            kept = "–" if g.get("interior_kept") is None else f"{100 * g['interior_kept']:.1f}%"
            cells.append(f"{g['iou']:.3f} / {g['mae']:.4f} / {kept} / {g['seconds']:.2f}")
        label = "**overall**" if kind == "overall" else kind
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    if any("photos" in summary[e] for e in shown):
        cells, n = [], ""
        for e in shown:
            p = summary[e].get("photos")
            if p is None:
                cells.append("–")
                continue
            n = str(p["n"])
            cells.append(f"probes {p['probes_right']}/{p['probes_total']} / {p['seconds']:.2f} s")
        lines.append(f"| real photos | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- the run -----------------------------------------------------------------------


def images(args: argparse.Namespace) -> list[Image]:
    out = []
    size = (args.size, args.size)
    samples = list(varied_samples(size=size))
    if args.quick:  # the first photo of each kind
        first: dict[str, Any] = {}
        for s in samples:
            first.setdefault(s.kind, s)
        samples = list(first.values())
    if args.kinds:
        samples = [s for s in samples if s.kind in args.kinds.split(",")]
    if args.samples is not None:
        samples = samples[: args.samples]
    out += [Image(s.name, s.kind, s.rgb, truth=s.alpha) for s in samples]
    names = (
        []
        if args.photos == "none"
        else list(PHOTO_NAMES)
        if args.photos == "all"
        else [n for n in args.photos.split(",") if n]
    )
    for name in names:
        photo = load_photo(name)
        out.append(Image(name, "photo", photo.rgb, probes=photo.probes))
    return out


def prepare_repository(work: Path, want_isnet: bool, cache_dir: Path) -> tuple[Path, str]:
    """A copy of model_repository/ (no weights), with ISNet provisioned into it from
    the cache when asked for; returns (repo, a note on ISNet)."""
    from services.models.packages import provision
    from tests.model_repository.triton_fixtures import copy_repository

    repo = copy_repository(work / "repo")
    if not want_isnet:
        return repo, "not asked for"
    try:
        done = provision("isnet", repo, cache_dir)
    except Exception as exc:  # reported in the results, the other engines still run
        return repo, f"not provisioned: {type(exc).__name__}: {exc}"
    return repo, f"provisioned from {done.source} ({done.provenance.get('package')})"


def measure(engines: list[Engine], pics: list[Image], keep: bool) -> list[dict[str, Any]]:
    rows = []
    for pic in pics:
        for engine in engines:
            assert engine.run is not None
            t0 = time.perf_counter()
            alpha = engine.run(pic.rgb)
            seconds = time.perf_counter() - t0
            if alpha.dtype != np.uint8 or alpha.shape != pic.rgb.shape[:2]:
                raise RuntimeError(
                    f"{engine.name} returned {alpha.dtype} {alpha.shape} for {pic.name}"
                )
            row: dict[str, Any] = {
                "engine": engine.name,
                "image": pic.name,
                "kind": pic.kind,
                "seconds": round(seconds, 4),
            }
            if pic.truth is not None:
                row["iou"] = round(iou(alpha, pic.truth), 4)
                row["mae"] = round(mae(alpha, pic.truth), 5)
                edge = edge_mae(alpha, pic.truth)
                row["edge_mae"] = None if edge is None else round(edge, 4)
                kept = interior_kept(alpha, pic.truth)
                row["interior_kept"] = None if kept is None else round(kept, 4)
            if pic.probes:
                results = probe(alpha, pic.probes)
                row["probes_right"] = sum(r.ok for r in results)
                row["probes_total"] = len(results)
                row["missed"] = [r.probe.label for r in results if not r.ok]
            if keep:
                row["_alpha"] = alpha
            rows.append(row)
        print(
            f"  {pic.kind:15s} {pic.name:18s} "
            + "  ".join(
                f"{r['engine']}={r.get('iou', r.get('probes_right', ''))}"
                for r in rows[-len(engines) :]
            ),
            flush=True,
        )
    return rows


def stage_1mp(engines: list[Engine], runs: int) -> list[dict[str, Any]]:
    """The matting stage alone on a 1000 x 1000 photo: p50 and min of `runs` calls,
    engines interleaved."""
    rgb = make_sample("bottle", "wood", size=(MP_SIDE, MP_SIDE)).rgb
    times: dict[str, list[float]] = {e.name: [] for e in engines}
    for _ in range(runs):
        for e in engines:
            assert e.run is not None
            t0 = time.perf_counter()
            e.run(rgb)
            times[e.name].append(time.perf_counter() - t0)
    return [
        {
            "engine": name,
            "megapixels": MP_SIDE * MP_SIDE / 1e6,
            "runs": runs,
            "p50_s": round(statistics.median(t), 3),
            "min_s": round(min(t), 3),
        }
        for name, t in times.items()
    ]


def write_sheets(
    out_dir: Path, pics: list[Image], rows: list[dict[str, Any]], engines: list[str], cell: int
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    by_image: dict[str, dict[str, np.ndarray]] = {}
    for r in rows:
        by_image.setdefault(f"{r['kind']}/{r['image']}", {})[r["engine"]] = r["_alpha"]
    written = []
    for group in [*KINDS, "photo"]:
        members = [p for p in pics if p.kind == group]
        if not members:
            continue
        sheet_rows = [
            SheetRow(
                title=f"{p.kind}: {p.name}",
                rgb=p.rgb,
                truth=p.truth,
                probes=p.probes,
                alphas=by_image.get(f"{p.kind}/{p.name}", {}),
            )
            for p in members
        ]
        sheet = contact_sheet(sheet_rows, engines, cell=cell)
        path = out_dir / f"matting-{group}.png"
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        written.append(path)
    return written


_MATTING_PATHS = ("model_repository", "services/models", "services/jobs/engines.py")


def _git(*argv: str) -> str:
    return subprocess.run(
        ["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def code_state() -> dict[str, Any]:
    """The commit measured, the files of the matting path (Triton models, their
    python-backend code, the worker's client) that differ from it, and a digest of
    those files as they are on disk: the stack serves the working tree, so a run
    during someone's edit says so."""
    try:
        head = _git("rev-parse", "--short", "HEAD").strip()
        status = _git("status", "--porcelain", "--untracked-files=no", "--", *_MATTING_PATHS)
        files = _git("ls-files", "--", *_MATTING_PATHS).splitlines()
    except (OSError, subprocess.CalledProcessError) as exc:
        return {"commit": None, "error": str(exc)}
    digest = hashlib.sha256()
    for name in files:
        path = ROOT / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return {
        "commit": head,
        "uncommitted": [line[3:] for line in status.splitlines()],
        "matting_sha256": digest.hexdigest()[:16],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one photo per kind, 512 px")
    parser.add_argument(
        "--engines",
        default=",".join(DEFAULT_ENGINES),
        help=f"comma list from {', '.join([*STACK_ENGINES, 'rembg'])}",
    )
    parser.add_argument(
        "--raw-resolutions",
        default="",
        help="also run the fp32 ISNet ONNX here at these network sizes, e.g. 1024,768",
    )
    parser.add_argument("--size", type=int, default=None, help="sample side (1024; quick 512)")
    parser.add_argument("--samples", type=int, default=None, help="only the first N samples")
    parser.add_argument("--kinds", default="", help="only these kinds, e.g. fur,glass")
    parser.add_argument("--photos", default=None, help="all | none | comma list of names")
    parser.add_argument("--mp-runs", type=int, default=None, help="1 MP stage runs (10)")
    parser.add_argument("--sheets", type=Path, default=None, help="write contact sheets here")
    parser.add_argument("--sheet-cell", type=int, default=256, help="sheet cell side, px")
    parser.add_argument("--rembg-model", type=Path, default=None, help="ONNX for rembg")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--timeout", type=float, default=600.0, help="per Triton call, s")
    args = parser.parse_args()
    args.size = args.size or (512 if args.quick else 1024)
    args.photos = args.photos or ("coffee,motorcycle,astronaut" if args.quick else "all")
    args.mp_runs = args.mp_runs if args.mp_runs is not None else (3 if args.quick else 10)
    wanted = [e for e in args.engines.split(",") if e]
    unknown = [e for e in wanted if e not in (*STACK_ENGINES, "rembg")]
    if unknown:
        parser.error(f"unknown engines {unknown}")
    if set(args.kinds.split(",")) - {"", *KINDS}:
        parser.error(f"--kinds takes {', '.join(KINDS)}")
    resolutions = [int(r) for r in args.raw_resolutions.split(",") if r]

    from services.models.packages import cache_entry, packaged

    cache_dir = CommonSettings().cache_dir
    assert cache_dir is not None
    entry = cache_entry(cache_dir, packaged("isnet"))
    rembg_model = args.rembg_model or entry / packaged("isnet").source.filename
    pics = images(args)
    code = code_state()  # before Triton loads the models: what it serves
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    want_isnet = any(e in wanted for e in ("lightbox-isnet", "lightbox-auto", "rembg")) or bool(
        resolutions
    )
    with tempfile.TemporaryDirectory(prefix="lightbox-matting-bench-") as tmp:
        work = Path(tmp)
        repo, isnet_note = prepare_repository(work, want_isnet, cache_dir)
        matting = [m for m in loadable_models(repo) if m.startswith("matting_")]
        engines: list[Engine] = []
        with TritonProcess.start(
            repo,
            work / "triton",
            model_control="explicit",
            load_models=matting,
            numba_cache_dir=NUMBA_CACHE,
            ready_models=matting,
            timeout=600,
        ) as server:
            for name in wanted:
                try:
                    if name in STACK_ENGINES:
                        run, served = stack_engine(
                            server.grpc_addr, STACK_ENGINES[name], args.timeout
                        )
                        engines.append(Engine(name, run, note=f"served by {served}"))
                    else:
                        engines.append(Engine(name, rembg_engine(rembg_model), str(rembg_model)))
                except Unavailable as exc:
                    engines.append(Engine(name, None, note=str(exc)))
                    print(f"!! {name} unavailable: {exc}", flush=True)
            for r in resolutions:
                name = f"isnet-onnx@{r}"
                try:
                    engines.append(Engine(name, raw_onnx_engine(entry / "model.onnx", r)))
                except Unavailable as exc:
                    engines.append(Engine(name, None, note=str(exc)))
            auto = TritonEngines(server.grpc_addr, timeout_s=args.timeout)
            try:
                auto_picks = auto.matting(make_sample("box", "plain", size=(256, 256)).rgb)[1]
            except Exception as exc:  # recorded; the engines asked for by name still run
                auto_picks = f"none: {type(exc).__name__}: {exc}"
            finally:
                auto.close()
            ready = [e for e in engines if e.run is not None]
            warm = make_sample("mug", "plain", size=(320, 320)).rgb
            for e in ready:  # first calls pay for session set-up, not for matting
                assert e.run is not None
                e.run(warm)
            print(f"matting {len(pics)} images with {[e.name for e in ready]}", flush=True)
            rows = measure(ready, pics, keep=args.sheets is not None)
            stage = stage_1mp(ready, args.mp_runs) if args.mp_runs > 0 else []
    names = [e.name for e in ready]
    summary = summarise(rows, names)
    sheets = write_sheets(args.sheets, pics, rows, names, args.sheet_cell) if args.sheets else []
    for r in rows:
        r.pop("_alpha", None)
    results = {
        "meta": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "cpu": cpu_identity(),
            "loadavg_before": loadavg_before,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.monotonic() - started, 1),
            "sample_size": args.size,
            "quick": args.quick,
            "code": code,
            "code_changed_during_run": (
                code_state().get("matting_sha256") != code.get("matting_sha256")
            ),
            "isnet": isnet_note,
            "auto_picks": auto_picks,
        },
        "engines": {e.name: {"available": e.run is not None, "note": e.note} for e in engines},
        "summary": summary,
        "stage_1mp": stage,
        "images": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    dirty = f", uncommitted: {', '.join(code['uncommitted'])}" if code.get("uncommitted") else ""
    print(f"code: {code.get('commit')}{dirty}; cpu: {describe(results['meta']['cpu'])}\n")
    print(table(summary, names))
    if stage:
        print()
        print("| matting stage, 1000 x 1000 | p50 s | min s | runs |\n|---|---|---|---|")
        for s in stage:
            print(f"| {s['engine']} | {s['p50_s']:.3f} | {s['min_s']:.3f} | {s['runs']} |")
    for e in engines:
        if e.run is None:
            print(f"\n{e.name}: not run: {e.note}")
    for path in sheets:
        print(f"sheet: {path}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
