"""config.pbtxt for the installed ONNX models, rendered for a target.

cpu  python backend running onnxruntime on the CPU (ort_runner.py copied in as
     `1/model.py`): what the embedded stack's tritonserver (from the nvidia-pytriton
     wheel, which has no onnxruntime backend) can serve.
gpu  Triton's `onnxruntime_onnx` platform with the TensorRT execution provider at FP16
     and an optimisation profile over the contract's sizes; or `tensorrt_plan` where
     `build-trt` left a `1/model.plan`. A GPU instance group.

Both targets batch dynamically (preferred sizes and queue delay from the contract)
unless the file fixes its batch axis at 1. Tensor names, dtypes and shapes are read
from the installed file, so a re-install and re-render can never disagree with the
graph. The front models are committed with their own config.pbtxt and do not change
between targets.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from services.models.contracts import (
    CONTRACTS,
    ONNX_FILE,
    PLAN_FILE,
    Contract,
    TensorSpec,
)
from services.models.signature import FileTensor, Signature, read_signature

TARGETS = ("cpu", "gpu")
RUNNER = Path(__file__).with_name("ort_runner.py")
VERSION = "1"

_TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "float64": "TYPE_FP64",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "uint8": "TYPE_UINT8",
}
# TensorRT workspace for building engines; large enough for BiRefNet at batch 4.
_WORKSPACE_BYTES = 8 << 30


def _dims(tensor: FileTensor, batching: bool) -> list[int]:
    dims = [d if isinstance(d, int) else -1 for d in tensor.dims]
    if batching:
        dims = dims[1:]
        if not dims:
            return [1]  # one value per sample: Triton wants a dim; the runner squeezes it
    return dims


def _block(
    kind: str, specs: tuple[TensorSpec, ...], sig: list[FileTensor], batching: bool, gpu: bool
) -> str:
    rows: list[tuple[str, str]] = []
    by_name = {t.name: t for t in sig}
    for spec in specs:
        t = by_name[spec.name]
        dims = _dims(t, batching)
        row = (
            f'  {{ name: "{t.name}", data_type: {_TRITON_TYPES[t.dtype]}, '
            f"dims: [ {', '.join(str(d) for d in dims)} ]"
        )
        if gpu and batching and len(t.dims) == 1:
            row += ", reshape: { shape: [ ] }"
        rows.append((row + " }", spec.meaning))
    lines = []
    for k, (row, meaning) in enumerate(rows):
        comma = "," if k + 1 < len(rows) else ""
        lines.append(row + comma + (f"  # {meaning}" if meaning else ""))
    return f"{kind} [\n" + "\n".join(lines) + "\n]\n"


def profile_shapes(contract: Contract, sig: Signature, max_batch: int) -> dict[str, str]:
    """trt_profile_{min,opt,max}_shapes: `name:d0xd1...,name2:...` over the inputs."""
    out: dict[str, list[str]] = {"min": [], "opt": [], "max": []}
    opt_batch = max(contract.preferred_batch) if contract.preferred_batch else 1
    for spec in contract.inputs:
        t = sig.input(spec.name)
        for k, which in enumerate(("min", "opt", "max")):
            batch = (1, min(opt_batch, max_batch), max_batch)[k]
            dims = [batch]
            for want, have in zip(spec.dims, t.dims[1:], strict=True):
                if isinstance(have, int):
                    dims.append(have)
                elif isinstance(want, int):
                    dims.append(want)
                else:
                    dims.append(contract.profile[want][k])
            out[which].append(f"{t.name}:{'x'.join(str(d) for d in dims)}")
    return {k: ",".join(v) for k, v in out.items()}


def render_config(model_dir: Path, contract: Contract, target: str) -> str:
    """Write `model_dir/config.pbtxt` for `target` from the file in `model_dir/1/` (and
    place or remove the cpu runner); returns the text."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    version = model_dir / VERSION
    onnx_path = version / ONNX_FILE
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path} is missing: install the model first")
    sig = read_signature(onnx_path)
    batching = not sig.batch_fixed
    gpu = target == "gpu"
    max_batch = (contract.gpu_max_batch if gpu else contract.cpu_max_batch) if batching else 0
    plan = version / PLAN_FILE
    head = (
        f"# {contract.summary}.\n"
        f"# Rendered by `lightbox models render --target {target}` from 1/{ONNX_FILE}; "
        "re-rendering overwrites edits.\n"
        f'name: "{contract.name}"\n'
    )
    if not gpu:
        shutil.copyfile(RUNNER, version / "model.py")
        head += 'backend: "python"\n'
    else:
        (version / "model.py").unlink(missing_ok=True)
        head += 'platform: "tensorrt_plan"\n' if plan.exists() else 'platform: "onnxruntime_onnx"\n'
    body = f"max_batch_size: {max_batch}\n\n"
    body += _block("input", contract.inputs, list(sig.inputs), batching, gpu)
    body += _block("output", contract.outputs, list(sig.outputs), batching, gpu)
    if batching:
        preferred = [b for b in contract.preferred_batch if b <= max_batch]
        body += (
            "\ndynamic_batching {\n"
            + (
                f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
                if preferred
                else ""
            )
            + f"  max_queue_delay_microseconds: {contract.max_queue_delay_us}\n}}\n"
        )
    if gpu:
        body += f"\ninstance_group [ {{ count: {contract.gpu_instances}, kind: KIND_GPU }} ]\n"
        if not plan.exists():
            shapes = profile_shapes(contract, sig, max(1, max_batch))
            cache = f"/tmp/lightbox-trt-cache/{contract.name}"
            params = [
                ("precision_mode", "FP16"),
                ("max_workspace_size_bytes", str(_WORKSPACE_BYTES)),
                ("trt_engine_cache_enable", "1"),
                ("trt_engine_cache_path", cache),
                ("trt_timing_cache_enable", "1"),
                ("trt_timing_cache_path", cache),
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
    else:
        runtime = contract.cpu_runtime
        extra = (
            '  { key: "precision", value: { string_value: "auto" } },\n'
            if runtime == "openvino"
            else ""
        )
        body += (
            f"\n# {runtime} already uses every core for one run; a second instance would\n"
            "# only interleave with the first.\n"
            "instance_group [ { count: 1, kind: KIND_CPU } ]\n\n"
            "parameters [\n"
            f'  {{ key: "runtime", value: {{ string_value: "{runtime}" }} }},\n'
            + extra
            + '  { key: "intra_op_threads", value: { string_value: "0" } },\n'
            '  { key: "inter_op_threads", value: { string_value: "1" } }\n'
            "]\n"
        )
    text = head + body
    (model_dir / "config.pbtxt").write_text(text)
    return text


def render_all(repo: Path, target: str) -> list[Path]:
    """Render every installed contract model in `repo`, then the SDXL, WAN, CatVTON
    and MusicGen components (when services.models.sdxl is present and something was
    exported); returns the paths."""
    written: list[Path] = []
    for contract in CONTRACTS.values():
        model_dir = repo / contract.name
        if (model_dir / VERSION / ONNX_FILE).exists():
            render_config(model_dir, contract, target)
            written.append(model_dir / "config.pbtxt")
    try:
        from services.models.sdxl import render_sdxl_configs
        from services.models.wan import render_wan_configs
    except ImportError:
        return written
    written += render_sdxl_configs(repo, target)
    written += render_wan_configs(repo, target)
    from services.models.catvton.configs import render_catvton_configs

    written += render_catvton_configs(repo, target)
    from services.models.musicgen.configs import render_musicgen_configs

    written += render_musicgen_configs(repo, target)
    return written
