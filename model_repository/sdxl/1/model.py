"""Triton python-backend model that runs the SDXL pipeline (sdxl_pipeline.py) over the
exported component models with BLS.

Serves `sdxl` (text to image) and, imported from sdxl_inpaint/1/model.py, `sdxl_inpaint`;
config.pbtxt `mode` says which. The checkpoint it drives is what
`lightbox models export sdxl DIFFUSERS_DIR` wrote to `<this model>/checkpoint/`
(pipeline.json names the component models); without it the model does not load,
which the worker reads as "not deployed".

Errors are per request: a bad value gets INVALID_ARG; a component that is not loaded
(or is being reloaded) gets UNAVAILABLE, which the worker retries; anything else
INTERNAL. Only the request that hit it fails.
"""

from __future__ import annotations

import json
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

from sdxl_pipeline import (  # noqa: E402
    COMPONENT_IO,
    MAX_SEED,
    Checkpoint,
    GenerationRequest,
    PipelineParams,
    RequestError,
    SdxlPipeline,
    parse_params,
    settle,
    to_uint8,
)

_BACKEND_PARAMETERS = {"EXECUTION_ENV_PATH", "FORCE_CPU_ONLY_INPUT_TENSORS"}
_EXPORT_HINT = "export a checkpoint with `lightbox models export sdxl DIFFUSERS_DIR`"


class ComponentError(RuntimeError):
    """A BLS call to a component model failed."""

    def __init__(self, message: str, unavailable: bool) -> None:
        super().__init__(message)
        self.unavailable = unavailable


class TritonPythonModel:
    params: PipelineParams
    pipeline: SdxlPipeline

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.name = config["name"]
        raw = {
            key: value["string_value"]
            for key, value in config.get("parameters", {}).items()
            if key not in _BACKEND_PARAMETERS
        }
        self.params = parse_params(raw)
        checkpoint_dir = Path(args["model_repository"]) / "checkpoint"
        if not (checkpoint_dir / "pipeline.json").exists():
            raise RuntimeError(
                f"{self.name}: no exported checkpoint in {checkpoint_dir}; {_EXPORT_HINT}"
            )
        checkpoint = Checkpoint.load(checkpoint_dir)
        self.pipeline = SdxlPipeline(checkpoint, self.params, self._call_component)
        self.components = checkpoint.components
        for name in ("IMAGE", "IMAGE_FLOAT", "SEED"):
            if pb_utils.get_output_config_by_name(config, name) is None:
                raise ValueError(f"{self.name}: config.pbtxt must declare output {name}")

    def _call_component(
        self, component: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        model = self.components[component]
        output_names = list(COMPONENT_IO[component][1])
        request = pb_utils.InferenceRequest(
            model_name=model,
            requested_output_names=output_names,
            inputs=[pb_utils.Tensor(name, array) for name, array in inputs.items()],
            # Components on a GPU would otherwise hand back device tensors, which
            # as_numpy() cannot read.
            preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0),
        )
        response = request.exec()
        if response.has_error():
            error = response.error()
            code = error.code() if hasattr(error, "code") else None
            message = error.message()
            unavailable = (
                code
                in (
                    pb_utils.TritonError.UNAVAILABLE,
                    pb_utils.TritonError.NOT_FOUND,
                )
                or "not ready" in message
                or "unknown model" in message.lower()
            )
            raise ComponentError(f"{model}: {message}", unavailable=unavailable)
        out: dict[str, np.ndarray] = {}
        for name in output_names:
            tensor = pb_utils.get_output_tensor_by_name(response, name)
            if tensor is None:
                raise ComponentError(f"{model} returned no {name}", unavailable=False)
            out[name] = tensor.as_numpy()
        return out

    def _scalar(self, request: Any, name: str) -> Any:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            return None
        array = tensor.as_numpy()
        if array.size != 1:
            raise RequestError(name, f"must hold one value, got shape {list(array.shape)}")
        value = array.reshape(-1)[0]
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RequestError(name, "is not UTF-8 text") from exc
        return value.item()

    def _array(self, request: Any, name: str) -> np.ndarray | None:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return None if tensor is None else tensor.as_numpy()

    def _parse(self, request: Any) -> GenerationRequest:
        prompt = self._scalar(request, "PROMPT")
        if prompt is None:
            raise RequestError("PROMPT", "required")
        return GenerationRequest(
            prompt=prompt,
            negative_prompt=self._scalar(request, "NEGATIVE_PROMPT"),
            width=self._scalar(request, "WIDTH"),
            height=self._scalar(request, "HEIGHT"),
            steps=self._scalar(request, "STEPS"),
            guidance_scale=self._scalar(request, "GUIDANCE_SCALE"),
            seed=self._scalar(request, "SEED"),
            scheduler=self._scalar(request, "SCHEDULER"),
            strength=self._scalar(request, "STRENGTH"),
            image=self._array(request, "INIT_IMAGE"),
            mask=self._array(request, "MASK"),
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            settled = settle(
                self._parse(request),
                self.params,
                self.pipeline.ckpt.vae_scale_factor,
                lambda: secrets.randbelow(MAX_SEED + 1),
            )
            image = self.pipeline(settled)
        except RequestError as exc:
            return _error(str(exc), pb_utils.TritonError.INVALID_ARG)
        except ComponentError as exc:
            code = (
                pb_utils.TritonError.UNAVAILABLE
                if exc.unavailable
                else pb_utils.TritonError.INTERNAL
            )
            return _error(f"{self.name}: component {exc}", code)
        except Exception as exc:  # one failed request must not take the others down
            pb_utils.Logger.log_error(f"{self.name} failed: {traceback.format_exc()}")
            return _error(
                f"{self.name} failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL
            )
        outputs = [
            pb_utils.Tensor("IMAGE", to_uint8(image)),
            pb_utils.Tensor("SEED", np.array([settled.seed], dtype=np.int64)),
        ]
        if "IMAGE_FLOAT" in _requested(request):
            outputs.append(pb_utils.Tensor("IMAGE_FLOAT", image))
        return pb_utils.InferenceResponse(output_tensors=outputs)


def _requested(request: Any) -> set[str]:
    names = request.requested_output_names()
    # An empty list means "all outputs" in Triton.
    return set(names) if names else {"IMAGE", "IMAGE_FLOAT", "SEED"}


def _error(message: str, code: Any) -> Any:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
