"""Triton python-backend model `wan_t2v`: WAN 2.1 text to video (wan_pipeline.py) over
the exported component models with BLS.

The checkpoint it drives is what `lightbox models export wan DIFFUSERS_DIR` wrote to
`<this model>/checkpoint/`; without it the model does not load (the reason is logged),
which the worker reads as "not deployed" and answers 503 model_unavailable.

Errors are per request: a bad value gets INVALID_ARG naming the input; a component
that is not loaded gets UNAVAILABLE (the worker retries); anything else INTERNAL.
"""

from __future__ import annotations

import secrets
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# The stub does not put the version directory on sys.path; the pipeline modules live
# beside this file.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from wan_pipeline import (  # noqa: E402
    COMPONENT_IO,
    MAX_SEED,
    Checkpoint,
    PipelineParams,
    RequestError,
    WanPipeline,
    check_params,
    request_from,
    settle,
    to_uint8,
)

from services.models.pybackend.triton_bls import (  # noqa: E402
    BlsError,
    bls,
    error_response,
    input_array,
    load_config,
)

_EXPORT_HINT = "export a checkpoint with `lightbox models export wan DIFFUSERS_DIR`"
_IO = {
    "PROMPT": np.object_,
    "NEGATIVE_PROMPT": np.object_,
    "WIDTH": np.int32,
    "HEIGHT": np.int32,
    "NUM_FRAMES": np.int32,
    "STEPS": np.int32,
    "GUIDANCE_SCALE": np.float32,
    "SEED": np.int64,
    "VIDEO": np.uint8,
    "VIDEO_FLOAT": np.float32,
}
_INPUTS = (
    "PROMPT",
    "NEGATIVE_PROMPT",
    "WIDTH",
    "HEIGHT",
    "NUM_FRAMES",
    "STEPS",
    "GUIDANCE_SCALE",
    "SEED",
)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config, params = load_config(args, PipelineParams, _IO)
        self.name = config["name"]
        self.params = check_params(params)
        checkpoint_dir = Path(args["model_repository"]) / "checkpoint"
        if not (checkpoint_dir / "pipeline.json").exists():
            message = f"{self.name}: no exported checkpoint in {checkpoint_dir}; {_EXPORT_HINT}"
            pb_utils.Logger.log_error(message)
            raise RuntimeError(message)
        self.checkpoint = Checkpoint.load(checkpoint_dir)
        self.pipeline = WanPipeline(self.checkpoint, self._call_component)

    def _call_component(
        self, component: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        outputs = list(COMPONENT_IO[component][1])
        found = bls(self.checkpoint.components[component], inputs, outputs)
        return dict(zip(outputs, found, strict=True))

    def _values(self, request: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in _INPUTS:
            array = input_array(request, name)
            if array is None:
                continue
            if array.size != 1:
                raise RequestError(name, f"must hold one value, got shape {list(array.shape)}")
            value = array.reshape(-1)[0]
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise RequestError(name, "is not UTF-8 text") from exc
            else:
                value = value.item()
            values[name] = value
        return values

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            settled = settle(
                request_from(self._values(request)),
                self.params,
                self.checkpoint,
                lambda: secrets.randbelow(MAX_SEED + 1),
            )
            video = self.pipeline(settled)
        except RequestError as exc:
            return error_response(str(exc), pb_utils.TritonError.INVALID_ARG)
        except BlsError as exc:
            return error_response(f"{self.name}: component {exc}", exc.code)
        except Exception as exc:  # one failed request must not take the others down
            pb_utils.Logger.log_error(f"{self.name} failed: {traceback.format_exc()}")
            return error_response(
                f"{self.name} failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL
            )
        outputs = [
            pb_utils.Tensor("VIDEO", to_uint8(video)),
            pb_utils.Tensor("SEED", np.array([settled.seed], dtype=np.int64)),
        ]
        requested = set(request.requested_output_names() or ("VIDEO", "VIDEO_FLOAT", "SEED"))
        if "VIDEO_FLOAT" in requested:
            outputs.append(pb_utils.Tensor("VIDEO_FLOAT", video))
        return pb_utils.InferenceResponse(output_tensors=outputs)
