"""`lightbox models build-trt NAME`: a TensorRT engine (`1/model.plan`) for an installed
ONNX model, built on the GPU host that will serve it (a plan is tied to the GPU model
and the TensorRT version), with one optimisation profile spanning the contract's
sizes and batch (the same ranges the onnxruntime + TensorRT EP config declares). The
config is then re-rendered for the gpu target, which uses `tensorrt_plan`.

On a host without an NVIDIA GPU and `trtexec` it says so and changes nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from services.models.contracts import ONNX_FILE, PLAN_FILE, resolve
from services.models.render import VERSION, profile_shapes, render_config
from services.models.signature import read_signature


class NoGpuError(RuntimeError):
    """This host cannot build TensorRT plans."""


def gpu_problem() -> str | None:
    """Why this host cannot build plans, or None when it can."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver on this host (nvidia-smi not found)"
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    if probe.returncode != 0 or "GPU" not in probe.stdout:
        return f"nvidia-smi lists no GPU ({(probe.stderr or probe.stdout).strip()[:200]})"
    if shutil.which("trtexec") is None:
        return "trtexec (TensorRT) is not on PATH; run this in the Triton or TensorRT container"
    return None


def trtexec_command(name: str, repo: Path) -> list[str]:
    """The trtexec command line that builds the plan of the ONNX model `name`."""
    contract = resolve(name)
    version = repo / contract.name / VERSION
    onnx = version / ONNX_FILE
    if not onnx.exists():
        raise FileNotFoundError(f"{onnx} is missing: install the model first")
    sig = read_signature(onnx)
    max_batch = 1 if sig.batch_fixed else contract.gpu_max_batch
    shapes = profile_shapes(contract, sig, max_batch)
    return [
        "trtexec",
        f"--onnx={onnx}",
        f"--saveEngine={version / PLAN_FILE}",
        "--fp16",
        f"--minShapes={shapes['min']}",
        f"--optShapes={shapes['opt']}",
        f"--maxShapes={shapes['max']}",
        "--memPoolSize=workspace:8192",
    ]


def build_plan(name: str, repo: Path) -> float:
    """Build `<name>_onnx/1/model.plan` and render its gpu config; returns seconds."""
    problem = gpu_problem()
    if problem:
        raise NoGpuError(f"cannot build a TensorRT plan here: {problem}")
    contract = resolve(name)
    started = time.monotonic()
    subprocess.run(trtexec_command(name, repo), check=True)
    render_config(repo / contract.name, contract, "gpu")
    return time.monotonic() - started
