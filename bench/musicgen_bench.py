"""MusicGen serving benchmark and parity table, on a tiny random-weight checkpoint.

Builds the tiny MusicGen (services.models.musicgen.tiny), exports it into a temporary
model repository beside a copy of the committed pipeline model, serves it with the
pip-installed tritonserver (CPU, python backend over onnxruntime), then:

1. parity: two prompts x two durations x guidance 3 and 1 x greedy and two sampling
   seeds, through Triton and through transformers' generate() (torch.manual_seed(seed)
   before sampling): whether the codes are identical, and the max abs diff of the audio
   -> bench/results/musicgen_parity.json
2. speed: whole generations of 1 s and 4 s through Triton, through the pipeline code
   over onnxruntime in process, and through transformers' generate(); the cost per
   generated frame as the slope between the two durations -> bench/results/musicgen.json

    .venv/bin/python bench/musicgen_bench.py [--repeats N]

The tiny model makes the speed numbers a measure of the per-frame overhead (a BLS
round trip per frame, tensor copies of the growing key/value cache, numpy sampling),
not of musicgen-small's speed.
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
RESULTS = ROOT / "bench" / "results"
PROMPTS = (
    "lofi hip hop beat with soft piano and rain",
    "90s rock song with loud guitars and heavy drums",
)


def _client_infer(client: Any, prompt: str, duration: float, **extra: Any) -> Any:
    import tritonclient.grpc as triton_grpc

    def tensor(name: str, array: np.ndarray, kind: str) -> Any:
        t = triton_grpc.InferInput(name, list(array.shape), kind)
        t.set_data_from_numpy(array)
        return t

    inputs = [
        tensor("PROMPT", np.array([prompt.encode()], dtype=np.object_), "BYTES"),
        tensor("DURATION", np.array([duration], np.float32), "FP32"),
    ]
    kinds = {
        "SEED": (np.int64, "INT64"),
        "GUIDANCE_SCALE": (np.float32, "FP32"),
        "DO_SAMPLE": (np.bool_, "BOOL"),
    }
    for name, value in extra.items():
        dtype, kind = kinds[name]
        inputs.append(tensor(name, np.array([value], dtype=dtype), kind))
    return client.infer("musicgen", inputs)


def _median_seconds(run: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    import tritonclient.grpc as triton_grpc

    from services.common.triton import TritonProcess
    from services.models.musicgen.reference import Job, TransformersReference, ort_pipeline
    from services.models.musicgen.tiny import make_tiny_musicgen, write_tiny

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="musicgen-bench-") as tmp:
        root = Path(tmp)
        checkpoint = make_tiny_musicgen(root / "tiny", seed=0)
        repo = root / "repo"
        export = write_tiny(repo, seed=0)
        reference = TransformersReference(checkpoint)
        run_ort, _ = ort_pipeline(repo)
        triton = TritonProcess.start(
            repo,
            root / "work",
            numba_cache_dir=ROOT / ".lightbox" / "numba_cache",
            ready_models=["musicgen"],
        )
        client = triton_grpc.InferenceServerClient(triton.grpc_addr)
        try:
            parity = []
            for prompt in PROMPTS:
                for duration in (1.0, 3.0):
                    for guidance in (3.0, 1.0):
                        for sample, seed in ((False, 0), (True, 11), (True, 12345)):
                            job = Job(prompt, duration, guidance, seed=seed, do_sample=sample)
                            want_audio, want_codes = reference(job)
                            got = _client_infer(
                                client,
                                prompt,
                                duration,
                                SEED=seed,
                                GUIDANCE_SCALE=guidance,
                                DO_SAMPLE=sample,
                            )
                            parity.append(
                                {
                                    "prompt": prompt,
                                    "duration_s": duration,
                                    "guidance_scale": guidance,
                                    "sampling": sample,
                                    "seed": seed,
                                    "codes_identical": bool(
                                        np.array_equal(got.as_numpy("CODES"), want_codes)
                                    ),
                                    "audio_max_abs_diff": float(
                                        np.abs(got.as_numpy("AUDIO") - want_audio).max()
                                    ),
                                }
                            )
            speed: dict[str, dict[str, float]] = {}
            for duration in (1.0, 4.0):
                job = Job(PROMPTS[0], duration, 3.0, seed=5, do_sample=True)
                speed[f"{duration:g}s"] = {
                    "triton": _median_seconds(
                        lambda d=duration: _client_infer(client, PROMPTS[0], d, SEED=5),
                        args.repeats,
                    ),
                    "onnxruntime_in_process": _median_seconds(
                        lambda j=job: run_ort(j), args.repeats
                    ),
                    "transformers": _median_seconds(lambda j=job: reference(j), args.repeats),
                }
        finally:
            client.close()
            triton.stop()
    frames = (4.0 - 1.0) * 50
    per_frame = {k: (speed["4s"][k] - speed["1s"][k]) / frames * 1000 for k in speed["1s"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    host = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1}
    (RESULTS / "musicgen_parity.json").write_text(
        json.dumps(
            {
                "host": host,
                "export": export.to_dict()["components"],
                "cases": parity,
                "all_codes_identical": all(r["codes_identical"] for r in parity),
                "worst_audio_max_abs_diff": max(r["audio_max_abs_diff"] for r in parity),
            },
            indent=2,
        )
    )
    (RESULTS / "musicgen.json").write_text(
        json.dumps({"host": host, "seconds": speed, "ms_per_frame": per_frame}, indent=2)
    )
    print(f"{'prompt':<14} {'s':>3} {'cfg':>4} {'seed':>6} codes  max|diff|")
    for r in parity:
        seed = r["seed"] if r["sampling"] else "greedy"
        print(
            f"{r['prompt'][:14]:<14} {r['duration_s']:>3g} {r['guidance_scale']:>4g} "
            f"{seed!s:>6} {'same' if r['codes_identical'] else 'DIFF':<5} "
            f"{r['audio_max_abs_diff']:.2e}"
        )
    print(f"\n{'ms per frame':<24} " + " ".join(f"{k}={v:.2f}" for k, v in per_frame.items()))
    print(f"wrote {RESULTS / 'musicgen_parity.json'} and {RESULTS / 'musicgen.json'}")
    shutil.rmtree(ROOT / "bench" / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
