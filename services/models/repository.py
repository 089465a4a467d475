"""What is in a Triton model repository: which models are installed, and which can
load.

The embedded stack starts tritonserver in explicit model-control mode and loads
exactly `loadable_models(repo)`, so a production model whose weights are absent is
simply not loaded (instead of failing its load, or loading a front model that would
fail every request):

- a contract's ONNX model (`<front>_onnx`) loads when `1/model.onnx` (or `model.plan`)
  is there;
- a front model loads when every model it calls (models.REQUIRES) loads, and its
  ensemble helpers (contracts.HELPERS) with it;
- an ensemble loads when all its steps do;
- the SDXL pipeline models load when their export left checkpoint/pipeline.json and
  their component models load;
- any other model loads when a version folder holds its model file (a python model
  that serves a `model.onnx` it does not have does not).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from services.common import models
from services.models.contracts import CONTRACTS, HELPERS, ONNX_FILE, PLAN_FILE

_ENSEMBLE = re.compile(r'platform\s*:\s*"ensemble"')
_STEP = re.compile(r'model_name\s*:\s*"([^"]+)"')
# Pipeline models: committed python-backend loops that load only once a checkpoint is
# exported into their checkpoint/ folder.
PIPELINES = (models.SDXL, models.SDXL_INPAINT, models.MUSICGEN, models.WAN_T2V, models.CATVTON)
_MODEL_FILES = ("model.py", ONNX_FILE, PLAN_FILE, "model.savedmodel", "model.pt")


@dataclass(frozen=True)
class ModelDir:
    name: str
    path: Path
    # "onnx" (a contract's file), "front", "helper", "ensemble", "pipeline" (a BLS
    # pipeline over exported components: sdxl, musicgen, wan_t2v, catvton), "other"
    kind: str
    installed: bool  # its own files are there (not counting what it calls)


def model_dirs(repo: Path) -> dict[str, Path]:
    """Every folder of `repo` with a config.pbtxt, by name."""
    if not repo.is_dir():
        raise FileNotFoundError(f"{repo} is not a model repository folder")
    return {
        d.name: d for d in sorted(repo.iterdir()) if d.is_dir() and (d / "config.pbtxt").exists()
    }


def _versions(path: Path) -> list[Path]:
    return [v for v in sorted(path.iterdir()) if v.is_dir() and v.name.isdigit()]


def _has_model_file(path: Path) -> bool:
    for version in _versions(path):
        present = [f for f in _MODEL_FILES if (version / f).exists()]
        if not present:
            continue
        if present == ["model.py"] and '"model.onnx"' in (version / "model.py").read_text(
            errors="replace"
        ):
            continue  # an onnxruntime runner without its model
        return True
    return False


def _pipeline_components(path: Path) -> list[str] | None:
    """The component models an exported pipeline (SDXL, MusicGen, WAN, CatVTON) calls,
    from its checkpoint/pipeline.json; None when not exported."""
    meta = path / "checkpoint" / "pipeline.json"
    if not meta.exists():
        return None
    return list(json.loads(meta.read_text()).get("components", {}).values())


def describe(repo: Path) -> dict[str, ModelDir]:
    out: dict[str, ModelDir] = {}
    for name, path in model_dirs(repo).items():
        config = (path / "config.pbtxt").read_text(errors="replace")
        if name in CONTRACTS:
            kind = "onnx"
            installed = any(
                (v / f).exists() for v in _versions(path) for f in (ONNX_FILE, PLAN_FILE)
            )
        elif name in PIPELINES or (path / "checkpoint").exists():
            kind, installed = "pipeline", _pipeline_components(path) is not None
        elif name in models.REQUIRES:
            kind, installed = "front", True
        elif name in HELPERS:
            kind, installed = "helper", True
        elif _ENSEMBLE.search(config):
            kind, installed = "ensemble", True
        else:
            kind, installed = "other", _has_model_file(path)
        out[name] = ModelDir(name, path, kind, installed)
    return out


def loadable_models(repo: Path) -> list[str]:
    """Names of the models in `repo` that can load now, in an order where every model
    comes after the models it calls."""
    dirs = describe(repo)
    memo: dict[str, bool] = {}

    def deps(name: str) -> list[str]:
        d = dirs[name]
        if d.kind == "front":
            return list(models.REQUIRES[name])
        if d.kind == "helper":
            return [HELPERS[name]]
        if d.kind == "ensemble":
            text = (d.path / "config.pbtxt").read_text(errors="replace")
            return sorted(set(_STEP.findall(text)) - {name})
        if d.kind == "pipeline":
            return _pipeline_components(d.path) or list(models.REQUIRES.get(name, ()))
        return []

    def ok(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in memo:
            return memo[name]
        if name not in dirs or name in seen:
            return False
        d = dirs[name]
        result = d.installed and all(ok(s, seen | {name}) for s in deps(name))
        memo[name] = result
        return result

    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or not ok(name):
            return
        for dep in deps(name):
            if dirs[dep].kind != "helper":  # a helper waits for the front it serves
                visit(dep)
        order.append(name)

    for name in dirs:
        visit(name)
    return order
