"""config.pbtxt for the exported WAN 2.1 component models, rendered for a target.

cpu  text encoder and transformer: python backend running onnxruntime on the CPU (the
     shared ort_runner.py copied in as `1/model.py`; the pip tritonserver has no
     onnxruntime backend). VAE decoder: its torch python model on the CPU.
gpu  transformer: Triton's `onnxruntime_onnx` platform with the TensorRT execution
     provider in FP16 and a profile from one 480p frame up to 720p at 10 s (both
     guidance branches in one batch); text encoder: onnxruntime on CUDA in float32
     (T5-family encoders overflow float16); VAE decoder: torch on the instance's GPU.

One request is one run everywhere (max_batch_size 0): a video request already carries
its guidance batch, and requests of different lengths and sizes cannot share a run.
Signatures are read from the ONNX files, so a re-export and re-render always agree.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from services.models.sdxl.configs import RUNNER, TensorSpec, onnx_signature
from services.models.wan.export import NAME, ONNX_COMPONENTS, ONNX_FILE

TARGETS = ("cpu", "gpu")


@dataclass(frozen=True)
class GpuProfile:
    """TensorRT shapes of the transformer, in latent units: frames (4k+1 video frames
    -> k+1 latent frames), height and width (pixels / 8); batch 2 with guidance."""

    min_frames: int = 1
    opt_frames: int = 13  # 3 s at 16 fps
    max_frames: int = 41  # 10 s
    min_side: int = 2
    opt_hw: tuple[int, int] = (60, 104)  # 480p
    max_hw: tuple[int, int] = (160, 160)  # 720p, either orientation
    tokens: int = 512
    workspace_bytes: int = 16 << 30


def _block(kind: str, specs: list[TensorSpec]) -> str:
    rows = []
    for s in specs:
        dims = s.dims
        rows.append(
            f'  {{ name: "{s.name}" data_type: {s.triton_type} '
            f"dims: [ {', '.join(str(d) for d in dims)} ] }}"
        )
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _profile(profile: GpuProfile, channels: int, text_dim: int) -> dict[str, str]:
    shapes = {
        "min": (1, profile.min_frames, profile.min_side, profile.min_side),
        "opt": (2, profile.opt_frames, *profile.opt_hw),
        "max": (2, profile.max_frames, *profile.max_hw),
    }
    out = {}
    for which, (b, f, h, w) in shapes.items():
        out[which] = (
            f"sample:{b}x{channels}x{f}x{h}x{w},timestep:{b},"
            f"encoder_hidden_states:{b}x{profile.tokens}x{text_dim}"
        )
    return out


def render_component(
    repo: Path, name: str, component: str, target: str, meta: dict, profile: GpuProfile
) -> Path:
    """Write `<repo>/<name>_<component>/config.pbtxt` for `target`; returns its path."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    model = f"{name}_{component}"
    model_dir = repo / model
    head = (
        f"# Rendered by services.models.wan.configs for target {target}; "
        "re-rendering overwrites edits.\n"
    )
    if component == "vae_decoder":
        if not (model_dir / "1" / "vae").is_dir():
            raise FileNotFoundError(
                f"{model_dir / '1' / 'vae'} is missing: export the checkpoint first"
            )
        kind = "KIND_GPU" if target == "gpu" else "KIND_CPU"
        text = (
            head
            + f'name: "{model}"\nbackend: "python"\nmax_batch_size: 0\n\n'
            + "input [\n"
            + f'  {{ name: "latent" data_type: TYPE_FP32 '
            f"dims: [ 1, {meta['latent_channels']}, -1, -1, -1 ] }}\n"
            + "]\noutput [\n"
            + '  { name: "video" data_type: TYPE_FP32 dims: [ 1, 3, -1, -1, -1 ] }\n'
            + "]\n\n"
            + f"instance_group [ {{ count: 1, kind: {kind} }} ]\n\n"
            + "# torch threads on the CPU (0: torch's default, one per core).\n"
            + 'parameters [ { key: "torch_threads", value: { string_value: "0" } } ]\n'
        )
        (model_dir / "config.pbtxt").write_text(text)
        return model_dir / "config.pbtxt"
    onnx_path = model_dir / "1" / ONNX_FILE
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path} is missing: export the checkpoint first")
    inputs, outputs = onnx_signature(onnx_path)
    runner = model_dir / "1" / "model.py"
    signature = _block("input", inputs) + _block("output", outputs)
    if target == "cpu":
        shutil.copyfile(RUNNER, runner)
        text = (
            head
            + f'name: "{model}"\nbackend: "python"\nmax_batch_size: 0\n\n'
            + signature
            + "\n# onnxruntime already uses every core for one run.\n"
            "instance_group [ { count: 1, kind: KIND_CPU } ]\n\n"
            "parameters [\n"
            '  { key: "intra_op_threads", value: { string_value: "0" } },\n'
            '  { key: "inter_op_threads", value: { string_value: "1" } }\n'
            "]\n"
        )
    else:
        runner.unlink(missing_ok=True)
        text = (
            head
            + f'name: "{model}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n\n'
            + signature
            + "\ninstance_group [ { count: 1, kind: KIND_GPU } ]\n"
        )
        if component == "transformer":
            shapes = _profile(profile, int(meta["latent_channels"]), int(meta["text_dim"]))
            cache = f"/tmp/lightbox-trt-cache/{model}"
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
            text += (
                "\n# TensorRT builds an FP16 engine for the profile on first load and caches it;\n"
                "# nodes it cannot take fall back to CUDA.\n"
                "optimization { execution_accelerators {\n"
                "  gpu_execution_accelerator: [ {\n"
                '      name: "tensorrt"\n'
                f"{lines}\n"
                "  } ]\n"
                "} }\n"
            )
        else:
            text += "# onnxruntime's CUDA provider in float32: UMT5 activations overflow float16.\n"
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir / "config.pbtxt"


def exported_pipelines(repo: Path) -> list[str]:
    """Names of the WAN pipelines exported into `repo`."""
    found = []
    for meta in repo.glob("*/checkpoint/pipeline.json"):
        if "patch_size" in json.loads(meta.read_text()):
            found.append(meta.parent.parent.name)
    return sorted(found)


def render_wan_configs(
    repo: Path, target: str, names: list[str] | None = None, profile: GpuProfile | None = None
) -> list[Path]:
    """Render the component configs of the WAN pipelines exported into `repo` (all of
    them, or `names`) for `target`; returns the config paths written."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    profile = profile or GpuProfile()
    written = []
    for name in names if names is not None else exported_pipelines(repo):
        meta_path = repo / name / "checkpoint" / "pipeline.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} is missing: export the checkpoint first")
        meta = json.loads(meta_path.read_text())
        for component in (*ONNX_COMPONENTS, "vae_decoder"):
            written.append(render_component(repo, name, component, target, meta, profile))
    return written


__all__ = ["NAME", "GpuProfile", "render_wan_configs"]
