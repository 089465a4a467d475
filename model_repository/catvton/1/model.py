"""Triton python-backend model that runs CatVTON (catvton_pipeline.py) over the
exported component models with BLS.

The checkpoint it drives is what `lightbox models export catvton DIR` wrote to
`<this model>/checkpoint/` (pipeline.json names the component models); without it the
model does not load, which the worker reads as "not deployed" (503).

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

from catvton_pipeline import (  # noqa: E402
    COMPONENT_IO,
    MAX_SEED,
    CatvtonPipeline,
    Checkpoint,
    PipelineParams,
    RequestError,
    TryOnRequest,
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

_EXPORT_HINT = "export a checkpoint with `lightbox models export catvton DIR` (docs/catvton.md)"
_IO = {
    "PERSON": np.uint8,
    "GARMENT": np.uint8,
    "MASK": np.uint8,
    "STEPS": np.int32,
    "GUIDANCE_SCALE": np.float32,
    "SEED": np.int64,
    "IMAGE": np.uint8,
    "IMAGE_FLOAT": np.float32,
}


class TritonPythonModel:
    pipeline: CatvtonPipeline

    def initialize(self, args: dict[str, str]) -> None:
        config, params = load_config(args, PipelineParams, _IO)
        self.name = config["name"]
        checkpoint_dir = Path(args["model_repository"]) / "checkpoint"
        if not (checkpoint_dir / "pipeline.json").exists():
            message = f"{self.name}: no exported checkpoint in {checkpoint_dir}; {_EXPORT_HINT}"
            pb_utils.Logger.log_error(message)
            raise RuntimeError(message)
        checkpoint = Checkpoint.load(checkpoint_dir)
        self.components = checkpoint.components
        self.pipeline = CatvtonPipeline(checkpoint, params, self._call_component)

    def _call_component(
        self, component: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        outputs = list(COMPONENT_IO[component][1])
        found = bls(self.components[component], inputs, outputs)
        return dict(zip(outputs, found, strict=True))

    @staticmethod
    def _scalar(request: Any, name: str) -> Any:
        array = input_array(request, name)
        if array is None:
            return None
        if array.size != 1:
            raise RequestError(name, f"must hold one value, got shape {list(array.shape)}")
        return array.reshape(-1)[0].item()

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            settled = settle(
                TryOnRequest(
                    person=input_array(request, "PERSON"),
                    garment=input_array(request, "GARMENT"),
                    mask=input_array(request, "MASK"),
                    steps=self._scalar(request, "STEPS"),
                    guidance_scale=self._scalar(request, "GUIDANCE_SCALE"),
                    seed=self._scalar(request, "SEED"),
                ),
                self.pipeline.params,
                lambda: secrets.randbelow(MAX_SEED + 1),
            )
            result = self.pipeline(settled)
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
            pb_utils.Tensor("IMAGE", to_uint8(result.image)),
            pb_utils.Tensor("SEED", np.array([settled.seed], dtype=np.int64)),
        ]
        if "IMAGE_FLOAT" in _requested(request):
            outputs.append(pb_utils.Tensor("IMAGE_FLOAT", result.work_image))
        return pb_utils.InferenceResponse(output_tensors=outputs)


def _requested(request: Any) -> set[str]:
    names = request.requested_output_names()
    # An empty list means "all outputs" in Triton.
    return set(names) if names else {"IMAGE", "IMAGE_FLOAT", "SEED"}
