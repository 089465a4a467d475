"""ISNet at mixed precision: int8 for part of the network, bf16 for the rest, against
the bf16 network we serve (issue 12's 0.8 s stage goal on 2 CPU cores).

Each variant is the provisioned fp32 ISNet (`lightbox models fetch isnet`, the cache's
model.onnx) quantized post-training by NNCF (ONNX backend: QuantizeLinear /
DequantizeLinear pairs in the ONNX file, which OpenVINO runs as int8 kernels while the
layers left out run at bf16 under the same INFERENCE_PRECISION_HINT we serve with).
Variants differ only in the NNCF ignored scope (node-name patterns kept at bf16).

Calibration: the 24 VARIED_SET photos rendered with the --seeds given (default 1; other
product placement, textures and noise than the benchmark's seed 0), 1024 x 1024,
preprocessed exactly as the matting front does. Evaluation (--eval-seeds, default 0):
the benchmark's 24 seed-0 samples, or held-out renders at other seeds, optionally only
some --kinds, plus the six real photographs with their 67 probes; each through the
network (OpenVINO, bf16 hint, as ort_runner serves it) and the front's own
`postprocess` (refinement at full resolution), so IoU / MAE / kept are the stage's, not
the raw network's. Network time: median over the 1024 x 1024 inputs (the photos run at
their own aspect and are left out), variants interleaved image by image, alternating
their order, so load spikes hit them alike. --ranges minmax: activation ranges from
the calibration extremes instead of NNCF's default mean of per-photo min/max.

    .venv/bin/python bench/matting_mixed.py [--variants bf16,int8-all,...]
    .venv/bin/python bench/matting_mixed.py --variants bf16,int8-no-ends \
        --eval-seeds 3,4,5 --kinds busy,plain,dark-on-dark --photos none --out FILE

A one-off study, not part of `make bench` (each variant takes NNCF minutes to quantize
on two cores). Writes bench/results/matting_mixed.json and prints a table. Quantized
models are cached under --work (default /tmp/lightbox-isnet-mixed) by variant and
calibration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.matting_bench import interior_kept, iou, mae  # noqa: E402
from services.models.pybackend.matting import FrontParams, postprocess, preprocess  # noqa: E402
from services.samples.photos import PHOTO_NAMES, load_photo, probe  # noqa: E402
from services.samples.synthetic import (  # noqa: E402
    KINDS,
    VARIED_SET,
    Sample,
    make_sample,
    varied_samples,
)

RESULTS = ROOT / "bench" / "results" / "matting_mixed.json"
FRONT_CONFIG = ROOT / "model_repository" / "matting_isnet" / "config.pbtxt"

# Node-name patterns (NNCF IgnoredScope regexes) kept at bf16 per variant; None = the
# unquantized graph. ISNet: conv_in, encoder stage1..6 (RSU blocks), decoder
# stage5d..1d, side outputs side1..6 (only side1 feeds `output` after pruning).
VARIANTS: dict[str, list[str] | None] = {
    "bf16": None,
    "int8-all": [],
    "int8-enc": [r"^/stage\dd/.*", r"^/side\d/.*"],
    "int8-no-ends": [r"^/conv_in/.*", r"^/stage1d/.*", r"^/side\d/.*"],
    "int8-no-1d": [r"^/stage1d/.*", r"^/side\d/.*"],
    "int8-no-first": [r"^/conv_in/.*", r"^/stage1/.*"],
    "int8-dec": [r"^/conv_in/.*", r"^/stage\d/.*"],
    "int8-no-ends-1": [r"^/conv_in/.*", r"^/stage1/.*", r"^/stage1d/.*", r"^/side\d/.*"],
    "int8-no-ends-2d": [r"^/conv_in/.*", r"^/stage[12]d/.*", r"^/side\d/.*"],
}


def front_params() -> FrontParams:
    """The matting_isnet front's parameters, read from its config.pbtxt."""
    text = FRONT_CONFIG.read_text()
    raw = dict(re.findall(r'key: "(\w+)", value: \{ string_value: "([^"]*)" \}', text))
    raw.pop("network_model", None)
    types = {f: t for f, t in FrontParams.__annotations__.items()}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind = types[key]
        values[key] = int(value) if kind == "int" else float(value) if kind == "float" else value
    return FrontParams(network_model="matting_isnet_onnx", **values)


def calibration_inputs(seeds: tuple[int, ...], params: FrontParams) -> list[np.ndarray]:
    out = []
    for seed in seeds:
        for _, product, backdrop in VARIED_SET:
            out.append(preprocess(make_sample(product, backdrop, seed=seed).rgb, params))
    return out


def quantize(
    fp32: Path, ignored: list[str], calib: list[np.ndarray], dst: Path, preset: str, ranges: str
) -> float:
    import nncf
    import onnx
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    model = onnx.load(str(fp32))
    dataset = nncf.Dataset(calib, lambda x: {"input": x})
    scope = nncf.IgnoredScope(patterns=ignored, validate=False) if ignored else None
    t0 = time.perf_counter()
    q = nncf.quantize(
        model,
        dataset,
        preset=nncf.QuantizationPreset(preset),
        subset_size=len(calib),
        ignored_scope=scope,
        # NNCF's default for per-tensor activations is the mean over the calibration
        # photos of each one's min and max; "minmax" takes the extremes instead.
        advanced_parameters=AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
        )
        if ranges == "minmax"
        else None,
    )
    onnx.save(q, str(dst))
    return time.perf_counter() - t0


class Network:
    def __init__(self, path: Path) -> None:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(
            core.read_model(str(path)),
            "CPU",
            {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16"},
        )
        self.request = compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        out = self.request.infer({"input": x})
        seconds = time.perf_counter() - t0
        return np.array(next(iter(out.values())), copy=True), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--model", type=Path, default=None, help="fp32 ISNet ONNX")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lightbox-isnet-mixed"))
    parser.add_argument("--seeds", default="1", help="calibration seeds (24 photos each)")
    parser.add_argument("--preset", default="performance", help="NNCF preset: performance|mixed")
    parser.add_argument(
        "--ranges", default="mean", choices=("mean", "minmax"), help="activation ranges"
    )
    parser.add_argument("--samples", type=int, default=None, help="only the first N samples")
    parser.add_argument(
        "--eval-seeds", default="0", help="evaluation seeds (0: the benchmark's own samples)"
    )
    parser.add_argument("--kinds", default="", help="only these kinds, e.g. busy,plain")
    parser.add_argument("--photos", default="all", choices=("all", "none"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v]
    for name in names:
        if name not in VARIANTS:
            parser.error(f"unknown variant {name}; known: {', '.join(VARIANTS)}")

    from services.common.settings import CommonSettings
    from services.models.packages import cache_entry, packaged

    fp32 = args.model or cache_entry(CommonSettings().cache_dir, packaged("isnet")) / "model.onnx"
    params = front_params()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    loadavg_before = [round(x, 2) for x in os.getloadavg()]

    calib: list[np.ndarray] | None = None
    paths: dict[str, Path] = {}
    quantize_s: dict[str, float] = {}
    for name in names:
        ignored = VARIANTS[name]
        if ignored is None:
            paths[name] = fp32
            continue
        tag = f"{name}-s{'_'.join(map(str, seeds))}-{args.preset}"
        tag += "-minmax" if args.ranges == "minmax" else ""
        dst = args.work / f"{tag}.onnx"
        if not dst.exists():
            if calib is None:
                calib = calibration_inputs(seeds, params)
            print(f"quantizing {tag} ({len(calib)} calibration photos)", flush=True)
            quantize_s[name] = round(
                quantize(fp32, ignored, calib, dst, args.preset, args.ranges), 1
            )
        paths[name] = dst
    del calib

    nets = {name: Network(path) for name, path in paths.items()}
    warm = preprocess(make_sample("mug", "plain", size=(320, 320)).rgb, params)
    for net in nets.values():
        net(warm)

    pics: list[tuple[str, str, np.ndarray, np.ndarray | None, tuple]] = []
    eval_seeds = [int(s) for s in args.eval_seeds.split(",")]
    if set(eval_seeds) & set(seeds):
        parser.error("evaluation and calibration seeds overlap")
    samples = []
    for eval_seed in eval_seeds:
        for s in varied_samples(seed=eval_seed):
            if not args.kinds or s.kind in args.kinds.split(","):
                name = s.name if eval_seed == 0 else f"{s.name}@{eval_seed}"
                samples.append(Sample(s.rgb, s.alpha, name, s.kind))
    if args.samples is not None:
        samples = samples[: args.samples]
    pics += [(s.name, s.kind, s.rgb, s.alpha, ()) for s in samples]
    photo_names = list(PHOTO_NAMES) if args.photos == "all" else []
    for pname in photo_names:
        photo = load_photo(pname)
        pics.append((pname, "photo", photo.rgb, None, photo.probes))

    rows: list[dict[str, Any]] = []
    order = list(nets)
    for i, (pname, kind, rgb, truth, probes) in enumerate(pics):
        x = preprocess(rgb, params)
        # ABBA-style: alternate the order of the variants image by image.
        for name in order if i % 2 == 0 else order[::-1]:
            raw, seconds = nets[name](x)
            alpha = postprocess(raw, rgb, params)
            row: dict[str, Any] = {
                "variant": name,
                "image": pname,
                "kind": kind,
                "net_s": round(seconds, 4),
                "shape": list(x.shape[2:]),
            }
            if truth is not None:
                row["iou"] = round(iou(alpha, truth), 4)
                row["mae"] = round(mae(alpha, truth), 5)
                kept = interior_kept(alpha, truth)
                row["interior_kept"] = None if kept is None else round(kept, 4)
            if probes:
                res = probe(alpha, probes)
                row["probes_right"] = sum(r.ok for r in res)
                row["probes_total"] = len(res)
            rows.append(row)
        print(
            f"  {kind:15s} {pname:18s} "
            + "  ".join(
                f"{r['variant']}={r.get('iou', r.get('probes_right'))}/{r['net_s']:.2f}s"
                for r in rows[-len(nets) :]
            ),
            flush=True,
        )

    summary: dict[str, Any] = {}
    for name in names:
        mine = [r for r in rows if r["variant"] == name]
        entry: dict[str, Any] = {"kinds": {}}
        for kind in [*KINDS, "all"]:
            of = [r for r in mine if "iou" in r and (kind == "all" or r["kind"] == kind)]
            if not of:
                continue
            kept = [r["interior_kept"] for r in of if r["interior_kept"] is not None]
            entry["kinds"][kind] = {
                "n": len(of),
                "iou": round(statistics.fmean(r["iou"] for r in of), 4),
                "mae": round(statistics.fmean(r["mae"] for r in of), 5),
                "min_kept": min(kept) if kept else None,
            }
        photos = [r for r in mine if r["kind"] == "photo"]
        entry["probes_right"] = sum(r["probes_right"] for r in photos)
        entry["probes_total"] = sum(r["probes_total"] for r in photos)
        square = [r["net_s"] for r in mine if r["shape"] == [1024, 1024]]
        entry["net_p50_s_1024"] = round(statistics.median(square), 3) if square else None
        summary[name] = entry

    results = {
        "meta": {
            "cpus": os.cpu_count(),
            "loadavg_before": loadavg_before,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "calibration": f"varied_samples kinds at seeds {list(seeds)}, 1024x1024",
            "evaluation_seeds": eval_seeds,
            "kinds": args.kinds or "all",
            "preset": args.preset,
            "activation_ranges": args.ranges,
            "quantize_seconds": quantize_s,
            "ignored_scopes": {n: VARIANTS[n] for n in names},
        },
        "summary": summary,
        "images": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    kinds = [k for k in [*KINDS, "all"] if k in summary[names[0]]["kinds"]]
    print("\n| variant | net p50 s | " + " | ".join(kinds) + " | probes |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    for name in names:
        e = summary[name]
        cells = []
        for k in kinds:
            g = e["kinds"][k]
            kept = "" if g["min_kept"] in (None, 1.0) else f" / min kept {g['min_kept']}"
            cells.append(f"{g['iou']:.4f} / {g['mae']:.4f}{kept}")
        print(
            f"| {name} | {e['net_p50_s_1024']} | "
            + " | ".join(cells)
            + f" | {e['probes_right']}/{e['probes_total']} |"
        )
    print(f"\nload {loadavg_before} -> {results['meta']['loadavg_after']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
