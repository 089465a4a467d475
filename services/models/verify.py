"""`lightbox models verify`: load every model of a repository in a real tritonserver
(explicit model control, one model at a time, with a timeout) and run one inference
on each, so a broken model directory fails here instead of in production.

A model counts as failed when its folder has no config.pbtxt, its load fails or times
out, or its inference errors or leaves out an output. A production model whose
weights are not installed is reported as such and is not a failure; a folder of any
other kind without its model file is.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common import models
from services.common.settings import CommonSettings
from services.common.triton import TritonProcess, TritonStartError
from services.models.contracts import CONTRACTS, HELPERS, sample_shape
from services.models.repository import ModelDir, describe, loadable_models

OK, FAILED, ABSENT = "ok", "FAILED", "not installed"
_SIDE = 64
_TRITON_NUMPY = {
    "TYPE_UINT8": np.uint8,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_BOOL": np.bool_,
}
_CLIENT_TYPES = {
    "TYPE_UINT8": "UINT8",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP16": "FP16",
    "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64",
    "TYPE_BOOL": "BOOL",
    "TYPE_STRING": "BYTES",
}
# Values that make sense for inputs the front models and pipelines name.
_SCALARS = {
    "SCALE": 2,
    "FIDELITY": 0.5,
    "WIDTH": _SIDE,
    "HEIGHT": _SIDE,
    "STEPS": 1,
    "SEED": 1,
    # wan_t2v: one frame (WAN makes 4k + 1).
    "NUM_FRAMES": 1,
}


@dataclass
class Check:
    name: str
    kind: str
    status: str
    seconds: float = 0.0
    detail: str = ""


def test_picture(h: int = _SIDE, w: int = _SIDE) -> np.ndarray:
    """uint8 HxWx3: a light gradient with a dark square in the middle."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([180 + 40 * xx / w, 190 + 30 * yy / h, np.full((h, w), 200.0)], axis=2)
    rgb[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (60, 40, 30)
    return rgb.astype(np.uint8)


def _dims(spec: dict[str, Any], batching: bool) -> list[int]:
    dims = [int(d) for d in spec.get("dims", [])]
    return ([1] if batching else []) + [_SIDE if d < 0 else d for d in dims]


def sample_inputs(model: str, config: dict[str, Any]) -> list[triton_grpc.InferInput]:
    """One plausible request for a model, from its config (and contract, if any)."""
    batching = int(config.get("max_batch_size", 0)) > 0
    contract = CONTRACTS.get(model)
    rng = np.random.default_rng(0)
    tensors = []
    for spec in config.get("input", []):
        if spec.get("optional"):
            continue
        name, dtype = spec["name"], spec["data_type"]
        shape = _dims(spec, batching)
        if contract is not None:
            c_spec = next(s for s in contract.inputs if s.name == name)
            shape = list(sample_shape(contract, c_spec))
            if batching and len(shape) == 1:
                shape = [1, 1]
            elif not batching and not spec.get("dims"):
                shape = [1]
        if dtype == "TYPE_STRING":
            array: np.ndarray = np.array(
                [b"a small object"] * int(np.prod(shape)), dtype=np.object_
            )
            array = array.reshape(shape)
        elif name in _SCALARS and int(np.prod(shape)) == 1:
            array = np.full(shape, _SCALARS[name], dtype=_TRITON_NUMPY[dtype])
        elif dtype == "TYPE_UINT8" and shape[-1:] == [3] and len(shape) == 3:
            array = test_picture(shape[0], shape[1])
        elif dtype == "TYPE_UINT8":
            array = np.zeros(shape, np.uint8)
            array[..., shape[-2] // 4 : shape[-2] // 2, shape[-1] // 4 : shape[-1] // 2] = 255
        elif dtype in ("TYPE_INT32", "TYPE_INT64"):
            array = rng.integers(0, 10, shape).astype(_TRITON_NUMPY[dtype])
        else:
            array = rng.random(shape).astype(_TRITON_NUMPY[dtype])
        tensor = triton_grpc.InferInput(name, list(array.shape), _CLIENT_TYPES[dtype])
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def _calls(dirs: dict[str, ModelDir], name: str) -> list[str]:
    """The models `name` needs loaded (a front's dependencies, a helper's front)."""
    if name in HELPERS:
        return [HELPERS[name]]
    return [d for d in models.REQUIRES.get(name, ()) if d in dirs]


def pipeline_components(dirs: dict[str, ModelDir]) -> dict[str, str]:
    """{component model: pipeline model} for the exported pipelines (SDXL, MusicGen, WAN,
    CatVTON) in `dirs`, from each pipeline's checkpoint/pipeline.json."""
    found: dict[str, str] = {}
    for name, d in dirs.items():
        meta = d.path / "checkpoint" / "pipeline.json"
        if meta.exists():
            for component in json.loads(meta.read_text()).get("components", {}).values():
                found[component] = name
    return found


def _check_one(
    client: triton_grpc.InferenceServerClient,
    name: str,
    kind: str,
    timeout: float,
    pipeline: str | None = None,
) -> Check:
    started = time.monotonic()
    try:
        client.load_model(name, client_timeout=timeout)
        if not client.is_model_ready(name, client_timeout=timeout):
            raise RuntimeError("loaded but not ready")
        if pipeline is not None:
            # A pipeline's component takes latents and embeddings whose sizes only the
            # pipeline knows; a request built from its dynamic dims (64 everywhere)
            # could ask a video transformer for a 64-batch 64^3 clip. The pipeline's
            # own check runs it with sizes that make sense.
            return Check(
                name, kind, OK, time.monotonic() - started, f"loaded; runs through {pipeline}"
            )
        config = client.get_model_config(name, as_json=True, client_timeout=timeout)["config"]
        outputs = [o["name"] for o in config.get("output", [])]
        result = client.infer(
            name,
            sample_inputs(name, config),
            outputs=[triton_grpc.InferRequestedOutput(o) for o in outputs],
            client_timeout=timeout,
        )
        missing = [o for o in outputs if result.as_numpy(o) is None]
        if missing:
            raise RuntimeError(f"no {missing} in the answer")
        shapes = ", ".join(f"{o} {list(result.as_numpy(o).shape)}" for o in outputs)
        return Check(name, kind, OK, time.monotonic() - started, shapes)
    except (InferenceServerException, RuntimeError, StopIteration, KeyError) as exc:
        message = exc.message() if isinstance(exc, InferenceServerException) else str(exc)
        return Check(name, kind, FAILED, time.monotonic() - started, (message or "")[:400])


def verify(
    repo: Path,
    timeout: float = 120.0,
    only: list[str] | None = None,
    work_dir: Path | None = None,
    numba_cache_dir: Path | None = None,
) -> list[Check]:
    """Check every model of `repo` (or those in `only`); see the module docstring."""
    checks: list[Check] = []
    dirs = describe(repo)
    for path in sorted(repo.iterdir()):
        if path.is_dir() and not path.name.startswith((".", "_")) and path.name not in dirs:
            if only is None or path.name in only:
                checks.append(Check(path.name, "?", FAILED, detail="no config.pbtxt"))
    loadable = loadable_models(repo)
    for name, d in dirs.items():
        if only is not None and name not in only:
            continue
        if name not in loadable:
            production = d.kind in ("onnx", "front", "helper", "pipeline")
            status = ABSENT if production else FAILED
            why = "weights not installed" if production else "no model file in any version folder"
            checks.append(Check(name, d.kind, status, detail=why))
    todo = [n for n in loadable if only is None or n in only]
    if not todo:
        return checks
    # What the checked models call loads first (without a check of its own).
    needed = set(todo)
    for name in reversed(loadable):
        if name in needed:
            needed.update(_calls(dirs, name))
    support = [n for n in loadable if n in needed and n not in todo]
    with tempfile.TemporaryDirectory(prefix="lightbox-verify-") as tmp:
        work = work_dir or Path(tmp)
        try:
            server = TritonProcess.start(
                repo,
                work,
                model_control="explicit",
                load_models=[],
                numba_cache_dir=numba_cache_dir or CommonSettings().numba_cache_dir,
                timeout=timeout,
            )
        except TritonStartError as exc:
            return checks + [
                Check(n, dirs[n].kind, FAILED, detail=f"tritonserver: {exc}") for n in todo
            ]
        with server:
            client = triton_grpc.InferenceServerClient(server.grpc_addr)
            try:
                for name in support:
                    try:
                        client.load_model(name, client_timeout=timeout)
                    except InferenceServerException as exc:
                        checks.append(
                            Check(name, dirs[name].kind, FAILED, detail=exc.message() or "")
                        )
                components = pipeline_components(dirs)
                for name in todo:
                    checks.append(
                        _check_one(client, name, dirs[name].kind, timeout, components.get(name))
                    )
            finally:
                client.close()
    return checks


def table(checks: list[Check]) -> str:
    rows = ["| model | kind | result | s | detail |", "|---|---|---|---|---|"]
    for c in sorted(checks, key=lambda c: c.name):
        rows.append(f"| {c.name} | {c.kind} | {c.status} | {c.seconds:.1f} | {c.detail} |")
    return "\n".join(rows)
