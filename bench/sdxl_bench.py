"""SDXL serving benchmark and parity table, on tiny random-weight checkpoints.

Builds the tiny SDXL and SDXL-inpainting checkpoints, exports them with
services.models.sdxl into a temporary model repository beside copies of the
committed pipeline models, serves it with the pip-installed tritonserver (CPU,
python backend over onnxruntime), then:

1. parity: every PARITY_CASES row (scheduler x mode) through Triton and through
   diffusers' own pipeline, max abs diff of the [0, 1] images
   -> bench/results/sdxl_parity.json
2. speed: one UNet step (batch 2, guidance) in torch, in onnxruntime in-process, and
   as a Triton call of the component model; whole-pipeline time through Triton vs
   diffusers at two sizes, and the per-step time as the slope between two step
   counts (so encode/decode drop out) -> bench/results/sdxl.json

    .venv/bin/python bench/sdxl_bench.py [--repeats N] [--sizes 256 512]

The tiny models make every number an overhead measurement (BLS hops, gRPC,
numpy scheduler, tensor copies) rather than SDXL speed: a real UNet step is seconds
on a CPU and tens of milliseconds on a GPU, against which these fixed costs shrink.
No GPU was available where these results were produced; the `gpu` render target and
build-trt were not exercised.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.common.triton import MODEL_REPOSITORY, TritonProcess  # noqa: E402
from services.models.sdxl.export import export_sdxl  # noqa: E402
from services.models.sdxl.reference import (  # noqa: E402
    PARITY_CASES,
    PARITY_PROMPT,
    DiffusersReference,
    Job,
    OrtComponents,
    parity_job,
    run_triton,
)
from services.models.sdxl.tiny import make_tiny_sdxl  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NUMBA_CACHE = ROOT / ".lightbox" / "numba_cache"
PARITY_TOLERANCE = 1e-3
MODE_MODELS = {"txt2img": "sdxl", "inpaint": "sdxl_inpaint", "inpaint_4ch": "sdxl_inpaint4ch"}


def _median_ms(fn: Any, repeats: int) -> float:
    fn()  # warm: first-call allocations, lazy init
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _pipeline_model(repo: Path, name: str, template: str) -> None:
    shutil.copytree(
        MODEL_REPOSITORY / template, repo / name, ignore=shutil.ignore_patterns("__pycache__")
    )
    config = repo / name / "config.pbtxt"
    config.write_text(config.read_text().replace(f'name: "{template}"', f'name: "{name}"'))


def build(work: Path) -> tuple[dict[str, Path], Path]:
    checkpoints = {
        "base": make_tiny_sdxl(work / "base", inpaint=False, seed=0),
        "inpaint": make_tiny_sdxl(work / "inpaint", inpaint=True, seed=1),
    }
    repo = work / "repo"
    for name, template in (
        ("sdxl", "sdxl"),
        ("sdxl_inpaint", "sdxl_inpaint"),
        ("sdxl_inpaint4ch", "sdxl_inpaint"),
    ):
        _pipeline_model(repo, name, template)
    export_sdxl(checkpoints["base"], repo)
    export_sdxl(checkpoints["inpaint"], repo)
    export_sdxl(checkpoints["base"], repo, name="sdxl_inpaint4ch")
    return checkpoints, repo


def parity(client: Any, references: dict[str, DiffusersReference]) -> list[dict[str, Any]]:
    rows = []
    for case in PARITY_CASES:
        job = parity_job(case)
        expected = references[case.mode](job)
        got, got_u8 = run_triton(client, MODE_MODELS[case.mode], job, case.mode != "txt2img")
        expected_u8 = (expected * 255).round().astype(np.uint8)
        rows.append(
            {
                "scheduler": case.scheduler,
                "mode": case.mode,
                "steps": case.steps,
                "guidance_scale": case.guidance_scale,
                "strength": case.strength,
                "negative_prompt": case.negative_prompt,
                "max_abs_diff": float(np.abs(got - expected).max()),
                "uint8_max_diff": int(np.abs(got_u8.astype(int) - expected_u8).max()),
            }
        )
        print(
            f"  {case.mode:<12} {case.scheduler:<17} steps={case.steps} cfg={case.guidance_scale}"
            f" strength={case.strength}  max|diff|={rows[-1]['max_abs_diff']:.2e}"
        )
    return rows


def unet_step(
    checkpoints: dict[str, Path], repo: Path, client: Any, size: int, repeats: int
) -> dict[str, float]:
    """One guided UNet evaluation (batch 2) at `size` px, three ways."""
    import torch
    import tritonclient.grpc as triton_grpc
    from diffusers import UNet2DConditionModel

    lat = size // 8
    rng = np.random.default_rng(0)
    feed = {
        "sample": rng.standard_normal((2, 4, lat, lat), dtype=np.float32),
        "timestep": np.full((2,), 500.0, np.float32),
        "encoder_hidden_states": rng.standard_normal((2, 77, 80), dtype=np.float32),
        "text_embeds": rng.standard_normal((2, 40), dtype=np.float32),
        "time_ids": np.array([[size, size, 0, 0, size, size]] * 2, np.float32),
    }
    unet = UNet2DConditionModel.from_pretrained(checkpoints["base"] / "unet").eval()
    tensors = {k: torch.from_numpy(v) for k, v in feed.items()}

    def torch_step() -> None:
        with torch.no_grad():
            unet(
                tensors["sample"],
                tensors["timestep"],
                encoder_hidden_states=tensors["encoder_hidden_states"],
                added_cond_kwargs={
                    "text_embeds": tensors["text_embeds"],
                    "time_ids": tensors["time_ids"],
                },
            )

    ort = OrtComponents(repo, {"unet": "sdxl_unet"})
    inputs = []
    for name, value in feed.items():
        t = triton_grpc.InferInput(name, list(value.shape), "FP32")
        t.set_data_from_numpy(value)
        inputs.append(t)

    def triton_step() -> None:
        client.infer("sdxl_unet", inputs, outputs=[triton_grpc.InferRequestedOutput("out_sample")])

    return {
        "torch_ms": _median_ms(torch_step, repeats),
        "onnxruntime_ms": _median_ms(lambda: ort("unet", feed), repeats),
        "triton_component_ms": _median_ms(triton_step, repeats),
    }


def pipeline_times(
    client: Any, reference: DiffusersReference, size: int, repeats: int, steps: tuple[int, int]
) -> dict[str, Any]:
    out: dict[str, Any] = {"size": size}
    for n in steps:
        job = Job(PARITY_PROMPT, "blurry", size, size, n, 5.0, 1, "euler")
        out[f"diffusers_{n}_steps_ms"] = _median_ms(lambda job=job: reference(job), repeats)
        out[f"triton_{n}_steps_ms"] = _median_ms(
            lambda job=job: run_triton(client, "sdxl", job, inpaint=False), repeats
        )
    lo, hi = steps
    for who in ("diffusers", "triton"):
        slope = (out[f"{who}_{hi}_steps_ms"] - out[f"{who}_{lo}_steps_ms"]) / (hi - lo)
        out[f"{who}_per_step_ms"] = slope
    out["pipeline_overhead_ratio"] = out[f"triton_{hi}_steps_ms"] / out[f"diffusers_{hi}_steps_ms"]
    out["per_step_overhead_ratio"] = out["triton_per_step_ms"] / out["diffusers_per_step_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()
    import diffusers
    import onnxruntime
    import torch

    with tempfile.TemporaryDirectory(prefix="sdxl-bench-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        checkpoints, repo = build(work)
        export_s = time.monotonic() - t0
        print(f"tiny checkpoints built and exported in {export_s:.1f} s")
        with TritonProcess.start(
            repo,
            work / "triton",
            numba_cache_dir=NUMBA_CACHE,
            ready_models=list(MODE_MODELS.values()),
            timeout=300,
        ) as triton:
            import tritonclient.grpc as triton_grpc

            client = triton_grpc.InferenceServerClient(triton.grpc_addr)
            references = {
                "txt2img": DiffusersReference(checkpoints["base"], inpaint=False),
                "inpaint": DiffusersReference(checkpoints["inpaint"], inpaint=True),
                "inpaint_4ch": DiffusersReference(checkpoints["base"], inpaint=True),
            }
            print("parity (Triton vs diffusers, [0, 1] images):")
            rows = parity(client, references)
            print("speed:")
            steps = (4, 12)
            speed = []
            for size in args.sizes:
                entry = {
                    "size": size,
                    "unet_step": unet_step(checkpoints, repo, client, size, args.repeats),
                }
                entry.update(
                    pipeline_times(client, references["txt2img"], size, args.repeats, steps)
                )
                speed.append(entry)
                u = entry["unet_step"]
                hi = steps[1]
                print(
                    f"  {size}px  UNet step: torch {u['torch_ms']:.1f} ms, onnxruntime "
                    f"{u['onnxruntime_ms']:.1f} ms, Triton component "
                    f"{u['triton_component_ms']:.1f} ms"
                )
                print(
                    f"         per pipeline step: diffusers {entry['diffusers_per_step_ms']:.1f}"
                    f" ms, Triton {entry['triton_per_step_ms']:.1f} ms; {hi}-step pipeline:"
                    f" diffusers {entry[f'diffusers_{hi}_steps_ms']:.0f} ms, Triton"
                    f" {entry[f'triton_{hi}_steps_ms']:.0f} ms"
                    f" (x{entry['pipeline_overhead_ratio']:.2f})"
                )
            client.close()
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "onnxruntime": onnxruntime.__version__,
        "device": "CPU only: no GPU was available in this session; the gpu target and "
        "build-trt are untested here",
        "models": "tiny random-weight SDXL (UNet 32/64 channels, 2 blocks; CLIP 32 and 48 "
        "wide, 3 layers; 4-block VAE 8-16 channels) built by services.models.sdxl.tiny",
        "note": "tiny models make these overhead numbers (BLS, gRPC, numpy scheduler, "
        "copies), not SDXL speed; other engineers' jobs shared the 2 CPU cores",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    worst = max(r["max_abs_diff"] for r in rows)
    (RESULTS / "sdxl_parity.json").write_text(
        json.dumps(
            {
                "meta": {
                    **meta,
                    "tolerance": PARITY_TOLERANCE,
                    "compared": "IMAGE_FLOAT from the Triton pipeline model vs diffusers "
                    "output_type='np', same weights, seed, scheduler and steps, 96x64",
                    "max_abs_diff": worst,
                    "all_within_tolerance": worst <= PARITY_TOLERANCE,
                },
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    (RESULTS / "sdxl.json").write_text(
        json.dumps(
            {"meta": {**meta, "export_s": export_s, "repeats": args.repeats}, "results": speed},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS / 'sdxl_parity.json'} and {RESULTS / 'sdxl.json'}")


if __name__ == "__main__":
    main()
