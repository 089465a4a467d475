"""config.pbtxt for the exported CatVTON component models, rendered for a target.

cpu  the python backend over onnxruntime (the same runner and config SDXL's cpu
     components get: services/models/sdxl/configs.py).
gpu  Triton's `onnxruntime_onnx` platform with the TensorRT execution provider in FP16,
     its optimisation profile fixed to the pipeline model's working size (CatVTON
     always runs at one size: the UNet sees [B, 9, 2H/8, W/8], the encoder both photos
     at H x W, the decoder the person half); dynamic batching lets concurrent try-ons
     share UNet runs. The working size is read from the pipeline model's
     config.pbtxt, so render again after changing it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from services.models.sdxl.configs import (
    GpuProfile,
    TensorSpec,
    _tensor_block,
    onnx_signature,
    render_component_config,
)

TARGETS = ("cpu", "gpu")
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class CatvtonGpuProfile:
    """Requests TensorRT optimises for: the UNet runs 2 rows per request with guidance
    and batches up to `max_requests` requests; the encoder runs 2 photos per request."""

    max_requests: int = 2
    max_queue_delay_us: int = 2000
    workspace_bytes: int = 8 << 30


def work_size(model_dir: Path) -> tuple[int, int]:
    """(width, height) the pipeline model at `model_dir` works at (CatVTON's 768 x 1024
    when the repository has no pipeline model config)."""
    config = model_dir / "config.pbtxt"
    text = config.read_text() if config.exists() else ""
    found = {
        key: int(value)
        for key, value in re.findall(
            r'key:\s*"(work_width|work_height)",\s*value:\s*{\s*string_value:\s*"(\d+)"', text
        )
    }
    return found.get("work_width", 768), found.get("work_height", 1024)


def _shapes(
    component: str, inputs: list[TensorSpec], size: tuple[int, int], profile: CatvtonGpuProfile
) -> tuple[int, dict[str, str]]:
    """(max batch, trt_profile_{min,opt,max}_shapes) for one component."""
    width, height = size
    lat_w, lat_h = width // 8, height // 8
    per_request = {"unet": 2, "vae_encoder": 2, "vae_decoder": 1}[component]
    max_batch = per_request * profile.max_requests
    spatial = {
        "sample": (2 * lat_h, lat_w),
        "timestep": (),
        "image": (height, width),
        "latent": (lat_h, lat_w),
    }
    out: dict[str, list[str]] = {"min": [], "opt": [], "max": []}
    for spec in inputs:
        fixed = [d for d in spec.dims[1:] if d != -1]
        tail = list(fixed[:1]) + list(spatial[spec.name]) if spec.name != "timestep" else []
        for which, batch in (("min", 1), ("opt", per_request), ("max", max_batch)):
            out[which].append(f"{spec.name}:{'x'.join(str(d) for d in [batch, *tail])}")
    return max_batch, {k: ",".join(v) for k, v in out.items()}


def render_component(
    model_dir: Path,
    component: str,
    target: str,
    size: tuple[int, int],
    profile: CatvtonGpuProfile,
) -> str:
    """Write `model_dir/config.pbtxt` for `target` from the ONNX file in `model_dir/1/`."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    onnx_path = model_dir / "1" / ONNX_FILE
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path} is missing: export the checkpoint first")
    if target == "cpu":
        return render_component_config(model_dir, component, "cpu", GpuProfile(), 8)
    (model_dir / "1" / "model.py").unlink(missing_ok=True)
    inputs, outputs = onnx_signature(onnx_path)
    max_batch, shapes = _shapes(component, inputs, size, profile)
    cache = f"/tmp/lightbox-trt-cache/{model_dir.name}"
    params = [
        ("precision_mode", "FP16"),
        ("max_workspace_size_bytes", str(profile.workspace_bytes)),
        ("trt_engine_cache_enable", "1"),
        ("trt_engine_cache_path", cache),
        ("trt_timing_cache_enable", "1"),
        ("trt_timing_cache_path", cache),
        ("trt_layer_norm_fp32_fallback", "1"),
        ("trt_profile_min_shapes", shapes["min"]),
        ("trt_profile_opt_shapes", shapes["opt"]),
        ("trt_profile_max_shapes", shapes["max"]),
    ]
    lines = "\n".join(f'      parameters {{ key: "{k}" value: "{v}" }}' for k, v in params)
    text = (
        f"# Rendered by services.models.catvton.configs for target gpu from 1/{ONNX_FILE} "
        f"at the working size {size[0]}x{size[1]}; re-rendering overwrites edits.\n"
        f'name: "{model_dir.name}"\nplatform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch}\n\n"
        + _tensor_block("input", inputs, drop_batch=True)
        + _tensor_block("output", outputs, drop_batch=True)
        + "\ninstance_group [ { count: 1, kind: KIND_GPU } ]\n"
        + f"dynamic_batching {{ max_queue_delay_microseconds: {profile.max_queue_delay_us} }}\n"
        + "\n# TensorRT builds an FP16 engine for the working size on first load and caches\n"
        "# it; nodes it cannot take fall back to CUDA.\n"
        "optimization { execution_accelerators {\n"
        "  gpu_execution_accelerator: [ {\n"
        '      name: "tensorrt"\n'
        f"{lines}\n"
        "  } ]\n"
        "} }\n"
    )
    (model_dir / "config.pbtxt").write_text(text)
    return text


def exported_pipelines(repo: Path) -> list[str]:
    """Pipelines exported by this module into `repo` (their pipeline.json says concat)."""
    names = []
    for meta in repo.glob("*/checkpoint/pipeline.json"):
        if json.loads(meta.read_text()).get("concat") is not None:
            names.append(meta.parent.parent.name)
    return sorted(names)


def render_catvton_configs(
    repo: Path,
    target: str,
    names: list[str] | None = None,
    profile: CatvtonGpuProfile | None = None,
) -> list[Path]:
    """Render the component configs of the CatVTON pipelines exported into `repo`."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    profile = profile or CatvtonGpuProfile()
    written: list[Path] = []
    for name in names if names is not None else exported_pipelines(repo):
        meta = json.loads((repo / name / "checkpoint" / "pipeline.json").read_text())
        size = work_size(repo / name)
        for component, model in meta["components"].items():
            render_component(repo / model, component, target, size, profile)
            written.append(repo / model / "config.pbtxt")
    return written
