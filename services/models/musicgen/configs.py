"""config.pbtxt for the exported MusicGen component models, rendered for a target.

cpu  python backend running onnxruntime on the CPU (ort_runner.py copied in as
     `1/model.py`), what the pip-installed tritonserver serves.
gpu  Triton's `onnxruntime_onnx` platform on the CUDA execution provider. The decoder's
     key/value cache grows by one position per generated frame (up to 1,503 for 30 s),
     so a TensorRT engine would need a profile over every cache length; the CUDA
     provider takes any shape. One request at a time per model, no dynamic batching:
     the pipeline model calls each component once per frame in sequence.

Signatures are read from each ONNX file, so configs cannot disagree with the graphs.
The pipeline model (`musicgen`) is committed with its own config.pbtxt.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from services.models.musicgen.export import COMPONENTS, ONNX_FILE
from services.models.sdxl.configs import RUNNER, TensorSpec, onnx_signature

TARGETS = ("cpu", "gpu")


def _block(kind: str, specs: list[TensorSpec]) -> str:
    rows = [
        f'  {{ name: "{s.name}" data_type: {s.triton_type} '
        f"dims: [ {', '.join(str(d) for d in s.dims)} ] }}"
        for s in specs
    ]
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def render_component_config(model_dir: Path, target: str) -> str:
    """Write `model_dir/config.pbtxt` for `target` from `model_dir/1/model.onnx` (and
    place or remove the cpu runner); returns the text."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    onnx_path = model_dir / "1" / ONNX_FILE
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path} is missing: export the checkpoint first")
    inputs, outputs = onnx_signature(onnx_path)
    head = (
        f"# Rendered by services.models.musicgen.configs for target {target} from "
        f"1/{ONNX_FILE}; re-rendering overwrites edits.\n"
        f'name: "{model_dir.name}"\n'
    )
    runner = model_dir / "1" / "model.py"
    if target == "cpu":
        shutil.copyfile(RUNNER, runner)
        text = (
            head
            + 'backend: "python"\nmax_batch_size: 0\n\n'
            + _block("input", inputs)
            + _block("output", outputs)
            + "\ninstance_group [ { count: 1, kind: KIND_CPU } ]\n\n"
            "parameters [\n"
            '  { key: "intra_op_threads", value: { string_value: "0" } },\n'
            '  { key: "inter_op_threads", value: { string_value: "1" } }\n'
            "]\n"
        )
    else:
        runner.unlink(missing_ok=True)
        text = (
            head
            + 'platform: "onnxruntime_onnx"\nmax_batch_size: 0\n\n'
            + _block("input", inputs)
            + _block("output", outputs)
            + "\ninstance_group [ { count: 1, kind: KIND_GPU } ]\n"
        )
    (model_dir / "config.pbtxt").write_text(text)
    return text


def exported_pipelines(repo: Path) -> list[str]:
    """Names of the MusicGen pipelines exported into `repo`."""
    found = []
    for meta in sorted(repo.glob("*/checkpoint/pipeline.json")):
        components = json.loads(meta.read_text()).get("components", {})
        if set(components) == set(COMPONENTS):
            found.append(meta.parent.parent.name)
    return found


def render_musicgen_configs(repo: Path, target: str, names: list[str] | None = None) -> list[Path]:
    """Render the component configs of the MusicGen pipelines in `repo` (all, or
    `names`) for `target`; returns the paths written."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    written: list[Path] = []
    for name in names if names is not None else exported_pipelines(repo):
        meta_path = repo / name / "checkpoint" / "pipeline.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} is missing: export the checkpoint first")
        meta = json.loads(meta_path.read_text())
        for component in COMPONENTS:
            model_dir = repo / meta["components"][component]
            render_component_config(model_dir, target)
            written.append(model_dir / "config.pbtxt")
    return written
