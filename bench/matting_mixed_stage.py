"""The matting stage at 1 MP through Triton: the served bf16 ISNet against a
mixed-precision variant from bench/matting_mixed.py, side by side in one server.

One tritonserver (the pip wheel's, CPU) serves a copy of model_repository/ with ISNet
provisioned from the cache (`matting_isnet` -> `matting_isnet_onnx`, bf16) and a second
front `matting_isnet_mixed` (the same config.pbtxt but for its name and network_model)
over `matting_isnet_mixed_onnx`, the variant's ONNX file with the same rendered config.
Both fronts are called with the same 1000 x 1000 photo, in ABBA order, and each call is
timed at the client (gRPC in, front, BLS, network, refinement, gRPC out), as the worker
sees it. Only one model runs at a time, so the two never share the cores.

    .venv/bin/python bench/matting_mixed_stage.py --variant int8-no-ends --runs 20
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_identity  # noqa: E402
from services.common.settings import CommonSettings  # noqa: E402
from services.common.triton import TritonProcess  # noqa: E402
from services.samples.synthetic import make_sample  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "matting_mixed_stage.json"
NUMBA_CACHE = ROOT / ".lightbox" / "numba_cache"
SIDE = 1000


def add_variant(repo: Path, onnx_file: Path) -> None:
    """matting_isnet_mixed (front) and matting_isnet_mixed_onnx (network) beside the
    provisioned pair, configured alike."""
    src_net, dst_net = repo / "matting_isnet_onnx", repo / "matting_isnet_mixed_onnx"
    (dst_net / "1").mkdir(parents=True)
    shutil.copy(src_net / "1" / "model.py", dst_net / "1" / "model.py")
    os.symlink(onnx_file.resolve(), dst_net / "1" / "model.onnx")
    text = (src_net / "config.pbtxt").read_text()
    (dst_net / "config.pbtxt").write_text(
        text.replace('name: "matting_isnet_onnx"', 'name: "matting_isnet_mixed_onnx"')
    )
    src_front, dst_front = repo / "matting_isnet", repo / "matting_isnet_mixed"
    shutil.copytree(src_front, dst_front)
    text = (dst_front / "config.pbtxt").read_text()
    text = text.replace('name: "matting_isnet"', 'name: "matting_isnet_mixed"')
    text = re.sub(
        r'(key: "network_model", value: \{ string_value: )"matting_isnet_onnx"',
        r'\1"matting_isnet_mixed_onnx"',
        text,
    )
    (dst_front / "config.pbtxt").write_text(text)


_PARTS = ("queue", "compute_input", "compute_infer", "compute_output")


def triton_counters(client: object, models: list[str]) -> dict[str, dict[str, int]]:
    """Triton's cumulative per-model counters: successful requests and ns per part."""
    out: dict[str, dict[str, int]] = {}
    for model in models:
        stats = client.get_inference_statistics(model, as_json=True)  # type: ignore[attr-defined]
        inf = stats["model_stats"][0]["inference_stats"]
        out[model] = {"requests": int(inf["success"]["count"])}
        out[model].update({part: int(inf[part]["ns"]) for part in _PARTS})
    return out


def breakdown(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, float]]:
    """Mean ms per request of each part over the timed calls only (warm-ups left out).
    A front's compute_infer holds its BLS call to the network, so front minus network
    is the front's own work (resize, normalise, refine) plus the BLS hop."""
    out: dict[str, dict[str, float]] = {}
    for model, end in after.items():
        n = end["requests"] - before[model]["requests"]
        out[model] = {"requests": n}
        out[model].update(
            {p: round((end[p] - before[model][p]) / max(n, 1) / 1e6, 1) for p in _PARTS}
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="a bench/matting_mixed.py variant")
    parser.add_argument("--variant-file", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lightbox-isnet-mixed"))
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--preset", default="performance")
    parser.add_argument("--runs", type=int, default=20, help="calls per model (even)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    onnx_file = args.variant_file or (
        args.work / f"{args.variant}-s{args.seeds.replace(',', '_')}-{args.preset}.onnx"
    )
    if not onnx_file.is_file():
        parser.error(f"{onnx_file} is missing: run bench/matting_mixed.py first")

    import tritonclient.grpc as grpc

    from services.models.packages import provision
    from tests.model_repository.triton_fixtures import copy_repository

    rgb = make_sample("bottle", "wood", size=(SIDE, SIDE)).rgb
    models = ["matting_isnet", "matting_isnet_mixed"]
    times: dict[str, list[float]] = {m: [] for m in models}
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="lightbox-isnet-mixed-stage-") as tmp:
        work = Path(tmp)
        repo = copy_repository(work / "repo")
        provision("isnet", repo, CommonSettings().cache_dir)
        add_variant(repo, onnx_file)
        load = [*models, "matting_isnet_onnx", "matting_isnet_mixed_onnx"]
        with TritonProcess.start(
            repo,
            work / "triton",
            model_control="explicit",
            load_models=load,
            numba_cache_dir=NUMBA_CACHE,
            ready_models=load,
            timeout=600,
        ) as server:
            client = grpc.InferenceServerClient(server.grpc_addr)

            def call(model: str) -> tuple[float, np.ndarray]:
                inp = grpc.InferInput("IMAGE", list(rgb.shape), "UINT8")
                inp.set_data_from_numpy(rgb)
                t0 = time.perf_counter()
                res = client.infer(model, [inp], outputs=[grpc.InferRequestedOutput("ALPHA")])
                seconds = time.perf_counter() - t0
                return seconds, res.as_numpy("ALPHA")

            alphas = {m: call(m)[1] for m in models}  # warm-up: first calls set up
            for m in models:
                call(m)
            before = triton_counters(client, load)
            for k in range(args.runs // 2):
                for m in models if k % 2 == 0 else models[::-1]:  # A B, then B A
                    times[m].append(call(m)[0])
                for m in models[::-1] if k % 2 == 0 else models:
                    times[m].append(call(m)[0])
            stats = breakdown(before, triton_counters(client, load))
            client.close()
    differ = int((alphas[models[0]] != alphas[models[1]]).sum())
    results = {
        "meta": {
            "variant": args.variant,
            "file": str(onnx_file),
            "photo": f"bottle on wood, {SIDE} x {SIDE}",
            "loadavg_before": loadavg_before,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "cpu": cpu_identity(),
            "order": "ABBA",
            "alpha_pixels_differing": differ,
        },
        "triton_ms_per_request": stats,
        "stage": {
            m: {
                "runs": len(t),
                "p50_s": round(statistics.median(t), 3),
                "min_s": round(min(t), 3),
                "times": [round(x, 3) for x in t],
            }
            for m, t in times.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("| model | p50 s | min s | runs |\n|---|---|---|---|")
    for m, s in results["stage"].items():
        print(f"| {m} | {s['p50_s']:.3f} | {s['min_s']:.3f} | {s['runs']} |")
    for m, st in stats.items():
        print(f"  triton {m}: {st}")
    after = results["meta"]["loadavg_after"]
    print(f"alpha pixels differing: {differ}; load {loadavg_before} -> {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
