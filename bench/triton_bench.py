"""Triton benchmark: the served models under load, and what serving through Triton
costs compared with calling onnxruntime directly.

Starts the real tritonserver (the nvidia-pytriton wheel's, CPU, python backend) on a
copy of model_repository/ with every production contract's tiny random-weight stand-in
installed (`lightbox models make-test-models`), plus two variants made for the
comparisons: `upscale_realesrgan_onnx_nobatch` (the same model without dynamic
batching). Then measures:

- load: for each model, a closed-loop generator over tritonclient gRPC at concurrency
  1, 4 and 8 (one client per thread): throughput and p50/p90/p99 latency;
- overhead: the same ONNX model and input through Triton vs onnxruntime in this
  process (ms and %), for a small and a large input;
- uint8 in vs float in: the uint8 front models (resize/normalise/tiling server-side)
  vs sending the float tensor to the ONNX model directly (bytes on the wire, ms);
- system shared memory: the largest float input and output through /dev/shm regions
  instead of the gRPC message;
- dynamic batching on vs off at concurrency 1/4/8;
- the classical matting engine's ms per megapixel.

It writes bench/results/triton.json, prints a markdown table, and writes
bench/perf_analyzer/: perf_analyzer command lines (commands.sh) and the input-data
JSON they use; they are run when perf_analyzer is on PATH.

    .venv/bin/python bench/triton_bench.py [--quick]

The stand-ins are tiny, so absolute numbers measure serving overhead, not model
compute; production weights on a GPU are another benchmark. Numbers from a shared
2-core CPU host are noisy: the machine's load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnxruntime as ort  # noqa: E402
import tritonclient.grpc as triton_grpc  # noqa: E402
import tritonclient.utils.shared_memory as shm  # noqa: E402

from services.common.triton import TritonProcess  # noqa: E402
from services.models.contracts import CONTRACTS, sample_shape  # noqa: E402
from services.models.install import install  # noqa: E402
from services.models.repository import loadable_models  # noqa: E402
from services.models.testmodels import make_test_models, tokenizer_dir  # noqa: E402
from services.samples.synthetic import make_sample  # noqa: E402
from tests.model_repository.triton_fixtures import copy_repository  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "triton.json"
PERF_DIR = ROOT / "bench" / "perf_analyzer"
TEST_MODELS = ROOT / ".lightbox" / "test-models"
NUMBA_CACHE = ROOT / ".lightbox" / "numba_cache"
CONCURRENCY = (1, 4, 8)
NOBATCH = "upscale_realesrgan_onnx_nobatch"
_TYPES = {
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.object_): "BYTES",
}


def picture(h: int, w: int) -> np.ndarray:
    return make_sample("mug", "plain", size=(w, h)).rgb


def holder_inputs(name: str, dims: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """A request for an ONNX contract model: batch 1, random values."""
    contract = CONTRACTS[name]
    rng = np.random.default_rng(0)
    feed = {}
    for spec in contract.inputs:
        shape = list(sample_shape(contract, spec))
        for axis, d in enumerate(spec.dims, start=1):
            if isinstance(d, str) and dims and d in dims:
                shape[axis] = dims[d]
        if spec.dtype == "int64":
            feed[spec.name] = rng.integers(0, 50, shape).astype(np.int64)
        else:
            feed[spec.name] = rng.random(shape).astype(spec.dtype)
    if "attention_mask" in feed:
        feed["attention_mask"] = np.ones_like(feed["attention_mask"])
    return feed


def wire(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors as sent: a per-sample scalar travels as [N, 1]."""
    return {
        k: (v[:, None] if v.ndim == 1 and v.dtype != np.object_ else v) for k, v in feed.items()
    }


def front_requests() -> dict[str, dict[str, np.ndarray]]:
    """One request per front and embedded model (uint8 images, 256 x 256)."""
    image = picture(256, 256)
    mask = np.zeros((256, 256), np.uint8)
    mask[96:160, 96:160] = 255
    face = np.full((256, 256, 3), 40, np.uint8)
    face[96:160, 96:160] = 230
    return {
        "matting_classical": {"IMAGE": image},
        "matting_birefnet": {"IMAGE": image},
        "upscale_lanczos": {"IMAGE": image, "SCALE": np.array([4], np.int32)},
        "upscale_realesrgan": {"IMAGE": image, "SCALE": np.array([4], np.int32)},
        "inpaint_telea": {"IMAGE": image, "MASK": mask},
        "inpaint_lama": {"IMAGE": image, "MASK": mask},
        "segment_clipseg": {"IMAGE": image, "PROMPT": np.array([b"the mug"], np.object_)},
        "face_detector": {"IMAGE": face},
        "face_codeformer": {"IMAGE": face, "FIDELITY": np.array([0.5], np.float32)},
    }


def tensors(feed: dict[str, np.ndarray]) -> list[triton_grpc.InferInput]:
    out = []
    for name, array in feed.items():
        t = triton_grpc.InferInput(name, list(array.shape), _TYPES[array.dtype])
        t.set_data_from_numpy(array)
        out.append(t)
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def load(
    addr: str, model: str, feed: dict[str, np.ndarray], concurrency: int, requests: int
) -> dict[str, Any]:
    """Closed loop: `concurrency` clients, `requests` in all; latency in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    remaining = [requests]
    errors: list[str] = []
    barrier = threading.Barrier(concurrency + 1)

    def worker() -> None:
        client = triton_grpc.InferenceServerClient(addr)
        inputs = tensors(feed)
        barrier.wait()
        try:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                t0 = time.perf_counter()
                try:
                    client.infer(model, inputs)
                except Exception as exc:  # recorded, not fatal for the sweep
                    errors.append(str(exc)[:200])
                    return
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "model": model,
        "concurrency": concurrency,
        "requests": len(latencies),
        "throughput_per_s": round(len(latencies) / wall, 2) if wall else 0.0,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p90_ms": round(percentile(latencies, 90), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "errors": errors[:3],
    }


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def paired_ms(
    a: Callable[[], object], b: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median ms of `a` and of `b`, run alternately so that the host's load (shared
    cores) drifts over both alike."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append((t1 - t0) * 1000)
        tb.append((t2 - t1) * 1000)
    return round(statistics.median(ta), 3), round(statistics.median(tb), 3)


def overhead(
    addr: str, repo: Path, name: str, feed: dict[str, np.ndarray], repeats: int
) -> dict[str, Any]:
    session = ort.InferenceSession(
        str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    outputs = [s.name for s in CONTRACTS[name].outputs]
    client = triton_grpc.InferenceServerClient(addr)
    inputs = tensors(wire(feed))
    try:
        direct, served = paired_ms(
            lambda: session.run(outputs, feed), lambda: client.infer(name, inputs), repeats
        )
    finally:
        client.close()
    return {
        "model": name,
        "input": {k: list(v.shape) for k, v in feed.items()},
        "bytes_in": int(sum(v.nbytes for v in feed.values())),
        "onnxruntime_ms": direct,
        "triton_ms": served,
        "overhead_ms": round(served - direct, 3),
        "overhead_pct": round(100 * (served - direct) / direct, 1),
    }


def shared_memory(
    addr: str, name: str, feed: dict[str, np.ndarray], repeats: int
) -> dict[str, Any]:
    """The same request with inputs and outputs in system shared memory regions."""
    client = triton_grpc.InferenceServerClient(addr)
    outputs = [s.name for s in CONTRACTS[name].outputs]
    out_shapes = {o: client.infer(name, tensors(feed)).as_numpy(o).shape for o in outputs}
    grpc_inputs = tensors(feed)
    handles = []
    try:
        client.unregister_system_shared_memory()
        inputs = []
        for k, (input_name, array) in enumerate(feed.items()):
            region = f"bench_in_{k}"
            handle = shm.create_shared_memory_region(region, f"/{region}", array.nbytes)
            handles.append(handle)
            shm.set_shared_memory_region(handle, [np.ascontiguousarray(array)])
            client.register_system_shared_memory(region, f"/{region}", array.nbytes)
            t = triton_grpc.InferInput(input_name, list(array.shape), _TYPES[array.dtype])
            t.set_shared_memory(region, array.nbytes)
            inputs.append(t)
        requested = []
        for k, o in enumerate(outputs):
            size = int(np.prod(out_shapes[o])) * 4
            region = f"bench_out_{k}"
            handles.append(shm.create_shared_memory_region(region, f"/{region}", size))
            client.register_system_shared_memory(region, f"/{region}", size)
            r = triton_grpc.InferRequestedOutput(o)
            r.set_shared_memory(region, size)
            requested.append(r)
        grpc_ms, shm_ms = paired_ms(
            lambda: client.infer(name, grpc_inputs),
            lambda: client.infer(name, inputs, outputs=requested),
            repeats,
        )
    finally:
        client.unregister_system_shared_memory()
        for handle in handles:
            shm.destroy_shared_memory_region(handle)
        client.close()
    return {
        "model": name,
        "bytes_in": int(sum(v.nbytes for v in feed.values())),
        "bytes_out": int(sum(np.prod(s) * 4 for s in out_shapes.values())),
        "grpc_ms": grpc_ms,
        "system_shm_ms": shm_ms,
        "saved_pct": round(100 * (grpc_ms - shm_ms) / grpc_ms, 1),
    }


def classical_ms_per_mp(addr: str, repeats: int) -> list[dict[str, Any]]:
    client = triton_grpc.InferenceServerClient(addr)
    rows = []
    try:
        for side in (512, 1024, 2048):
            image = make_sample("bottle", "wood", size=(side, side)).rgb
            ms = median_ms(
                lambda image=image: client.infer("matting_classical", tensors({"IMAGE": image})),
                repeats,
            )
            mp = side * side / 1e6
            rows.append(
                {
                    "size": f"{side}x{side}",
                    "megapixels": round(mp, 3),
                    "ms": ms,
                    "ms_per_mp": round(ms / mp, 1),
                }
            )
    finally:
        client.close()
    return rows


def write_perf_analyzer(fronts: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Command lines (and their input-data JSON) for NVIDIA's perf_analyzer."""
    PERF_DIR.mkdir(parents=True, exist_ok=True)
    commands = []
    # The embedded stack's Triton listens on LIGHTBOX_HTTP_PORT + 3 (8083 by default).
    base = (
        'perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" '
        "--concurrency-range 1:8:3 --measurement-interval 3000"
    )
    for model, feed in fronts.items():
        small = {}
        for k, v in feed.items():
            if v.dtype == np.uint8 and v.ndim >= 2:
                v = v[:64, :64]
            small[k] = v
        entry = {}
        for k, v in small.items():
            content = (
                [x.decode() for x in v.reshape(-1)]
                if v.dtype == np.object_
                else v.reshape(-1).tolist()
            )
            entry[k] = {"content": content, "shape": list(v.shape)}
        path = PERF_DIR / f"{model}.json"
        path.write_text(json.dumps({"data": [entry]}))
        commands.append(f"{base} -m {model} --input-data bench/perf_analyzer/{path.name}")
    for name, contract in CONTRACTS.items():
        shapes = []
        for spec in contract.inputs:
            dims = list(sample_shape(contract, spec))[1:] or [1]
            shapes.append(f"--shape {spec.name}:{','.join(map(str, dims))}")
        cmd = f"{base} -m {name} --input-data random {' '.join(shapes)}"
        commands.append(cmd)
        commands.append(cmd + " --shared-memory system")
    script = (
        "#!/bin/sh\n# Written by bench/triton_bench.py; run from the repository root.\nset -e\n"
    )
    (PERF_DIR / "commands.sh").write_text(script + "\n".join(commands) + "\n")
    return commands


def prepare_repository(work: Path) -> Path:
    repo = copy_repository(work / "repo")
    for name, path in make_test_models(TEST_MODELS).items():
        tok = tokenizer_dir(TEST_MODELS) if name == "segment_clipseg_onnx" else None
        install(name, path, repo, tokenizer=tok)
    src = repo / "upscale_realesrgan_onnx"
    dst = repo / NOBATCH
    shutil.copytree(src, dst)
    text = (
        (dst / "config.pbtxt")
        .read_text()
        .replace('name: "upscale_realesrgan_onnx"', f'name: "{NOBATCH}"')
    )
    start = text.index("dynamic_batching {")
    end = text.index("}\n", start) + 2
    (dst / "config.pbtxt").write_text(text[:start] + text[end:])
    return repo


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Host: {meta['host']}; load average before/after: "
        f"{meta['loadavg_before']} / {meta['loadavg_after']}",
        "",
        "### Load (closed loop, tritonclient gRPC)",
        "",
        _row("model", "c", "req/s", "p50 ms", "p90 ms", "p99 ms"),
        _row(*["---"] * 6),
    ]
    for r in results["load"]:
        lines.append(
            _row(
                r["model"],
                r["concurrency"],
                r["throughput_per_s"],
                r["p50_ms"],
                r["p90_ms"],
                r["p99_ms"],
            )
        )
    lines += [
        "",
        "### Triton vs onnxruntime in-process (same model, same input)",
        "",
        _row("model", "input", "ORT ms", "Triton ms", "overhead ms", "overhead %"),
        _row(*["---"] * 6),
    ]
    for r in results["overhead"]:
        shape = "; ".join(f"{k} {v}" for k, v in r["input"].items())
        lines.append(
            _row(
                r["model"],
                shape,
                r["onnxruntime_ms"],
                r["triton_ms"],
                r["overhead_ms"],
                r["overhead_pct"],
            )
        )
    lines += [
        "",
        "### uint8 in (front model) vs float in (ONNX model direct)",
        "",
        _row("case", "bytes sent", "ms"),
        _row(*["---"] * 3),
    ]
    lines += [_row(r["case"], r["bytes_in"], r["ms"]) for r in results["uint8_vs_float"]]
    lines += [
        "",
        "### System shared memory vs gRPC payload",
        "",
        _row("model", "bytes in", "bytes out", "gRPC ms", "shm ms", "saved %"),
        _row(*["---"] * 6),
    ]
    for r in results["shared_memory"]:
        lines.append(
            _row(
                r["model"],
                r["bytes_in"],
                r["bytes_out"],
                r["grpc_ms"],
                r["system_shm_ms"],
                r["saved_pct"],
            )
        )
    lines += [
        "",
        "### Dynamic batching (upscale_realesrgan_onnx, 1x3x64x64)",
        "",
        _row("c", "batching req/s", "p50 ms", "no batching req/s", "p50 ms"),
        _row(*["---"] * 5),
    ]
    for r in results["batching"]:
        on, off = r["on"], r["off"]
        lines.append(
            _row(
                r["concurrency"],
                on["throughput_per_s"],
                on["p50_ms"],
                off["throughput_per_s"],
                off["p50_ms"],
            )
        )
    lines += [
        "",
        "### Classical matting (matting_classical through Triton)",
        "",
        _row("size", "MP", "ms", "ms/MP"),
        _row(*["---"] * 4),
    ]
    lines += [
        _row(r["size"], r["megapixels"], r["ms"], r["ms_per_mp"])
        for r in results["classical_matting"]
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    args = parser.parse_args()
    n = 8 if args.quick else 24
    repeats = 5 if args.quick else 15
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lightbox-triton-bench-") as tmp:
        work = Path(tmp)
        repo = prepare_repository(work)
        names = loadable_models(repo)
        with TritonProcess.start(
            repo,
            work / "triton",
            model_control="explicit",
            load_models=names,
            numba_cache_dir=NUMBA_CACHE,
            ready_models=names,
            timeout=300,
        ) as server:
            addr = server.grpc_addr
            fronts = front_requests()
            results: dict[str, Any] = {
                "load": [],
                "overhead": [],
                "uint8_vs_float": [],
                "shared_memory": [],
                "batching": [],
            }
            for model, feed in fronts.items():
                for c in CONCURRENCY:
                    results["load"].append(load(addr, model, feed, c, n))
            for name in CONTRACTS:
                for c in CONCURRENCY:
                    results["load"].append(load(addr, name, wire(holder_inputs(name)), c, n))
            results["overhead"] = [
                overhead(
                    addr,
                    repo,
                    "upscale_realesrgan_onnx",
                    holder_inputs("upscale_realesrgan_onnx", {"H": 32, "W": 32}),
                    repeats,
                ),
                overhead(
                    addr,
                    repo,
                    "upscale_realesrgan_onnx",
                    holder_inputs("upscale_realesrgan_onnx", {"H": 256, "W": 256}),
                    repeats,
                ),
                overhead(
                    addr,
                    repo,
                    "matting_birefnet_onnx",
                    holder_inputs("matting_birefnet_onnx"),
                    repeats,
                ),
                overhead(
                    addr,
                    repo,
                    "inpaint_lama_onnx",
                    holder_inputs("inpaint_lama_onnx", {"H": 512, "W": 512}),
                    repeats,
                ),
            ]
            client = triton_grpc.InferenceServerClient(addr)
            try:
                image = picture(1024, 1024)
                cases = [
                    (
                        "matting_birefnet (uint8 1024x1024x3 in, pre/post in Triton)",
                        "matting_birefnet",
                        {"IMAGE": image},
                    ),
                    (
                        "matting_birefnet_onnx (float 1x3x1024x1024 in, logits out)",
                        "matting_birefnet_onnx",
                        holder_inputs("matting_birefnet_onnx"),
                    ),
                    (
                        "upscale_realesrgan (uint8 256x256x3 in, tiles in Triton)",
                        "upscale_realesrgan",
                        {"IMAGE": picture(256, 256), "SCALE": np.array([4], np.int32)},
                    ),
                    (
                        "upscale_realesrgan_onnx (float 1x3x256x256 in, float out)",
                        "upscale_realesrgan_onnx",
                        holder_inputs("upscale_realesrgan_onnx", {"H": 256, "W": 256}),
                    ),
                ]
                for label, model, feed in cases:
                    inputs = tensors(feed)
                    ms = median_ms(
                        lambda model=model, inputs=inputs: client.infer(model, inputs), repeats
                    )
                    results["uint8_vs_float"].append(
                        {
                            "case": label,
                            "bytes_in": int(sum(v.nbytes for v in feed.values())),
                            "ms": ms,
                        }
                    )
            finally:
                client.close()
            results["shared_memory"] = [
                shared_memory(
                    addr, "matting_birefnet_onnx", holder_inputs("matting_birefnet_onnx"), repeats
                ),
                shared_memory(
                    addr,
                    "upscale_realesrgan_onnx",
                    holder_inputs("upscale_realesrgan_onnx", {"H": 256, "W": 256}),
                    repeats,
                ),
            ]
            feed = wire(holder_inputs("upscale_realesrgan_onnx", {"H": 64, "W": 64}))
            for c in CONCURRENCY:
                on = load(addr, "upscale_realesrgan_onnx", feed, c, 4 * n)
                off = load(addr, NOBATCH, feed, c, 4 * n)
                results["batching"].append({"concurrency": c, "on": on, "off": off})
            results["classical_matting"] = classical_ms_per_mp(addr, max(3, repeats // 3))
            commands = write_perf_analyzer(fronts)
            perf_runs = []
            if shutil.which("perf_analyzer"):
                env = {**os.environ, "TRITON_GRPC": addr}
                for cmd in commands:
                    done = subprocess.run(
                        cmd,
                        shell=True,
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        env=env,
                        check=False,
                    )
                    perf_runs.append(
                        {"command": cmd, "rc": done.returncode, "tail": done.stdout[-2000:]}
                    )
            results["perf_analyzer"] = {
                "on_path": bool(shutil.which("perf_analyzer")),
                "commands": "bench/perf_analyzer/commands.sh",
                "runs": perf_runs,
            }
    results["meta"] = {
        "host": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs (shared), no GPU",
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "tritonserver": "2.51 (nvidia-pytriton 0.7.0 wheel), CPU, python backend",
        "models": "tiny random-weight stand-ins (services/models/testmodels.py)",
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.monotonic() - started, 1),
        "quick": args.quick,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwrote {RESULTS.relative_to(ROOT)} and {PERF_DIR.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
