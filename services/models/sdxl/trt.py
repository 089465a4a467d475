"""TensorRT plans for the exported SDXL components, built on the GPU host that will
serve them (a plan is tied to the GPU model and TensorRT version).

For each component of each exported pipeline, `build_sdxl_plans` parses
`1/model.onnx` (external data included), builds an FP16 engine with one optimisation
profile spanning the GpuProfile shapes (the same ranges the onnxruntime+TensorRT
config declares), writes `1/model.plan`, and re-renders the configs for the gpu
target, which then use the `tensorrt_plan` platform for every component with a plan.

On a host without an NVIDIA GPU and the TensorRT Python package it raises
NoGpuError before touching anything; the command line turns that into exit code 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.models.sdxl.configs import (
    PLAN_FILE,
    GpuProfile,
    onnx_signature,
    profile_shapes,
    render_sdxl_configs,
)
from services.models.sdxl.export import COMPONENTS, ONNX_FILE


class NoGpuError(RuntimeError):
    """This host cannot build TensorRT plans."""


@dataclass
class PlanReport:
    built: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def gpu_problem() -> str | None:
    """Why this host cannot build plans, or None when it can."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver on this host (nvidia-smi not found)"
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    if probe.returncode != 0 or "GPU" not in probe.stdout:
        return f"nvidia-smi lists no GPU ({(probe.stderr or probe.stdout).strip()[:200]})"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the TensorRT Python package is not installed (pip install tensorrt)"
    return None


def _parse_shape(spec: str) -> dict[str, tuple[int, ...]]:
    """'a:1x77,b:2x4x8x8' -> {'a': (1, 77), 'b': (2, 4, 8, 8)}."""
    out = {}
    for item in spec.split(","):
        name, dims = item.rsplit(":", 1)
        out[name] = tuple(int(d) for d in dims.split("x"))
    return out


def build_plan(
    onnx_path: Path, plan_path: Path, component: str, profile: GpuProfile, vae_scale: int
) -> None:
    """One FP16 engine with one optimisation profile, serialised to `plan_path`."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Explicit batch is the only mode in TensorRT 10; older versions need the flag.
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, profile.workspace_bytes)
    config.set_flag(trt.BuilderFlag.FP16)
    inputs, _ = onnx_signature(onnx_path)
    shapes = profile_shapes(component, inputs, profile, vae_scale)
    lo, opt, hi = (_parse_shape(shapes[k]) for k in ("min", "opt", "max"))
    opt_profile = builder.create_optimization_profile()
    for spec in inputs:
        opt_profile.set_shape(spec.name, lo[spec.name], opt[spec.name], hi[spec.name])
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {onnx_path}")
    tmp = plan_path.with_suffix(".plan.tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(plan_path)


def build_sdxl_plans(
    repo: Path, names: list[str] | None = None, profile: GpuProfile | None = None
) -> PlanReport:
    """Build `1/model.plan` for every component of the exported pipelines in `repo`
    (all, or `names`) and re-render their configs for the gpu target."""
    problem = gpu_problem()
    if problem is not None:
        raise NoGpuError(f"build-trt needs a GPU host with TensorRT: {problem}")
    from services.models.sdxl.configs import exported_pipelines

    profile = profile or GpuProfile()
    names = names if names is not None else exported_pipelines(repo)
    report = PlanReport()
    for name in names:
        meta = json.loads((repo / name / "checkpoint" / "pipeline.json").read_text())
        for component in COMPONENTS:
            model = meta["components"][component]
            version = repo / model / "1"
            t0 = time.monotonic()
            build_plan(
                version / ONNX_FILE,
                version / PLAN_FILE,
                component,
                profile,
                int(meta["vae_scale_factor"]),
            )
            report.built.append(model)
            report.seconds[model] = round(time.monotonic() - t0, 1)
    render_sdxl_configs(repo, "gpu", names=names, profile=profile)
    return report
