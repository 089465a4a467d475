"""config.pbtxt for the exported SDXL component models, rendered for a target.

cpu  python backend running onnxruntime on the CPU (ort_runner.py copied in as
     `1/model.py`); full shapes, max_batch_size 0: one request, one run. This is what
     the pip-installed tritonserver can serve (it has no onnxruntime backend).
gpu  Triton's `onnxruntime_onnx` platform with the TensorRT execution provider in FP16
     and an optimisation profile covering the generation sizes; or `tensorrt_plan`
     where `build-trt` left a `1/model.plan`. Dynamic batching (concurrent pipelines
     share UNet runs of the same size) and a GPU instance group.

Each component's signature is read from its ONNX file, so a re-export and re-render
can never disagree with the graph. The pipeline models (`sdxl`, `sdxl_inpaint`) are
committed with their own config.pbtxt and are not rendered here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from services.models.sdxl.export import COMPONENTS, ONNX_FILE

TARGETS = ("cpu", "gpu")
PLAN_FILE = "model.plan"
# The one onnxruntime runner the models tool copies into every cpu-target component.
RUNNER = Path(__file__).parents[1] / "ort_runner.py"

_TRITON_TYPES = {1: "TYPE_FP32", 10: "TYPE_FP16", 6: "TYPE_INT32", 7: "TYPE_INT64"}
_VAE = ("vae_encoder", "vae_decoder")


@dataclass(frozen=True)
class GpuProfile:
    """Shapes TensorRT optimises for, in image pixels (latents are 1/8) and batch.

    The UNet and text encoders see batch 2 per request with guidance; dynamic batching
    stacks concurrent requests up to max_batch. The VAE runs once per request, so
    its batch stays small (its activations at 1536 px are large)."""

    min_side: int = 256
    opt_side: int = 1024
    max_side: int = 1536
    max_batch: int = 8
    opt_batch: int = 2
    vae_max_batch: int = 2
    max_queue_delay_us: int = 2000
    workspace_bytes: int = 8 << 30


@dataclass(frozen=True)
class TensorSpec:
    name: str
    triton_type: str
    dims: tuple[int, ...]  # full ONNX shape, -1 where dynamic


def onnx_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of an ONNX file (weights are not loaded)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def spec(value: object) -> TensorSpec:
        tensor = value.type.tensor_type  # type: ignore[attr-defined]
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        return TensorSpec(value.name, _TRITON_TYPES[tensor.elem_type], dims)  # type: ignore[attr-defined]

    return [spec(i) for i in model.graph.input], [spec(o) for o in model.graph.output]


def _tensor_block(kind: str, specs: list[TensorSpec], drop_batch: bool) -> str:
    rows = []
    for s in specs:
        dims = s.dims[1:] if drop_batch else s.dims
        rows.append(
            f'  {{ name: "{s.name}" data_type: {s.triton_type} '
            f"dims: [ {', '.join(str(d) for d in dims)} ] }}"
        )
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def profile_shapes(
    component: str, inputs: list[TensorSpec], profile: GpuProfile, vae_scale: int
) -> dict[str, str]:
    """trt_profile_{min,opt,max}_shapes values: `name:d0xd1...,name2:...`."""
    max_batch = profile.vae_max_batch if component in _VAE else profile.max_batch
    opt_batch = 1 if component in _VAE else profile.opt_batch
    out: dict[str, list[str]] = {"min": [], "opt": [], "max": []}
    for s in inputs:
        for which, batch, side in (
            ("min", 1, profile.min_side),
            ("opt", opt_batch, profile.opt_side),
            ("max", max_batch, profile.max_side),
        ):
            dims = [batch]
            for axis, d in enumerate(s.dims[1:], start=1):
                if d != -1:
                    dims.append(d)
                elif s.name == "image":
                    dims.append(side)
                else:
                    # Latent height/width (the only other dynamic axes past batch).
                    assert axis in (2, 3), (component, s.name, axis)
                    dims.append(side // vae_scale)
            out[which].append(f"{s.name}:{'x'.join(str(d) for d in dims)}")
    return {k: ",".join(v) for k, v in out.items()}


def render_component_config(
    model_dir: Path, component: str, target: str, profile: GpuProfile, vae_scale: int
) -> str:
    """Write `model_dir/config.pbtxt` for `target` (and place or remove the cpu
    runner) from the ONNX file in `model_dir/1/`; returns the config text."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    name = model_dir.name
    version = model_dir / "1"
    onnx_path = version / ONNX_FILE
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path} is missing: export the checkpoint first")
    inputs, outputs = onnx_signature(onnx_path)
    head = (
        f"# Rendered by services.models.sdxl.configs for target {target} from "
        f"1/{ONNX_FILE}; re-rendering overwrites edits.\n"
    )
    runner = version / "model.py"
    if target == "cpu":
        shutil.copyfile(RUNNER, runner)
        text = (
            head
            + f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n\n'
            + _tensor_block("input", inputs, drop_batch=False)
            + _tensor_block("output", outputs, drop_batch=False)
            + "\n# onnxruntime already uses every core for one run; a second instance would\n"
            "# only interleave with the first.\n"
            "instance_group [ { count: 1, kind: KIND_CPU } ]\n\n"
            "parameters [\n"
            '  { key: "intra_op_threads", value: { string_value: "0" } },\n'
            '  { key: "inter_op_threads", value: { string_value: "1" } }\n'
            "]\n"
        )
    else:
        runner.unlink(missing_ok=True)
        max_batch = profile.vae_max_batch if component in _VAE else profile.max_batch
        plan = version / PLAN_FILE
        body = (
            f'name: "{name}"\n'
            + ('platform: "tensorrt_plan"\n' if plan.exists() else 'platform: "onnxruntime_onnx"\n')
            + f"max_batch_size: {max_batch}\n\n"
            + _tensor_block("input", inputs, drop_batch=True)
            + _tensor_block("output", outputs, drop_batch=True)
            + "\ninstance_group [ { count: 1, kind: KIND_GPU } ]\n"
            + f"dynamic_batching {{ max_queue_delay_microseconds: {profile.max_queue_delay_us} }}\n"
        )
        if not plan.exists():
            shapes = profile_shapes(component, inputs, profile, vae_scale)
            cache = f"/tmp/lightbox-trt-cache/{name}"
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
            body += (
                "\n# TensorRT builds FP16 engines for the profile on first load and caches\n"
                "# them; nodes it cannot take fall back to CUDA.\n"
                "optimization { execution_accelerators {\n"
                "  gpu_execution_accelerator: [ {\n"
                '      name: "tensorrt"\n'
                f"{lines}\n"
                "  } ]\n"
                "} }\n"
            )
        text = head + body
    (model_dir / "config.pbtxt").write_text(text)
    return text


def exported_pipelines(repo: Path) -> list[str]:
    """Names of the SDXL pipelines exported into `repo` (those whose
    checkpoint/pipeline.json names SDXL's components; other pipelines, like CatVTON,
    keep theirs there too)."""
    names = []
    for meta in repo.glob("*/checkpoint/pipeline.json"):
        if set(COMPONENTS) <= set(json.loads(meta.read_text()).get("components", {})):
            names.append(meta.parent.parent.name)
    return sorted(names)


def render_sdxl_configs(
    repo: Path,
    target: str,
    names: list[str] | None = None,
    profile: GpuProfile | None = None,
) -> list[Path]:
    """Render the component configs of the SDXL pipelines exported into `repo` (all of
    them, or `names`) for `target`; returns the config paths written."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    profile = profile or GpuProfile()
    written: list[Path] = []
    for name in names if names is not None else exported_pipelines(repo):
        meta_path = repo / name / "checkpoint" / "pipeline.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} is missing: export the checkpoint first")
        meta = json.loads(meta_path.read_text())
        for component in COMPONENTS:
            model_dir = repo / meta["components"][component]
            render_component_config(
                model_dir, component, target, profile, int(meta["vae_scale_factor"])
            )
            written.append(model_dir / "config.pbtxt")
    return written
