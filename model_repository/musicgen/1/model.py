"""Triton python-backend model that runs MusicGen (musicgen_pipeline.py) over the
exported component models with BLS.

The checkpoint it drives is what `lightbox models export musicgen CHECKPOINT_DIR`
wrote to `<this model>/checkpoint/` (pipeline.json names the component models);
without it the model does not load, which the worker reads as "not deployed".

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

# The stub does not put the version directory on sys.path; the pipeline lives beside
# this file.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from musicgen_pipeline import (  # noqa: E402
    COMPONENT_IO,
    MAX_SEED,
    Checkpoint,
    GenerationRequest,
    MusicgenPipeline,
    PipelineParams,
    RequestError,
    settle,
)

from services.models.pybackend.triton_bls import (  # noqa: E402
    BlsError,
    bls,
    error_response,
    input_array,
    load_config,
)

_EXPORT_HINT = "export a checkpoint with `lightbox models export musicgen CHECKPOINT_DIR`"
_IO = {
    "PROMPT": np.object_,
    "DURATION": np.float32,
    "SEED": np.int64,
    "GUIDANCE_SCALE": np.float32,
    "TOP_K": np.int32,
    "DO_SAMPLE": np.bool_,
    "AUDIO": np.float32,
    "SAMPLE_RATE": np.int32,
    "CODES": np.int64,
}
_OUTPUTS = ("AUDIO", "SAMPLE_RATE", "SEED", "CODES")


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config, params = load_config(args, PipelineParams, _IO)
        self.name = config["name"]
        self.params = params.validate()
        checkpoint_dir = Path(args["model_repository"]) / "checkpoint"
        if not (checkpoint_dir / "pipeline.json").exists():
            raise RuntimeError(
                f"{self.name}: no exported checkpoint in {checkpoint_dir}; {_EXPORT_HINT}"
            )
        self.checkpoint = Checkpoint.load(checkpoint_dir)
        self.pipeline = MusicgenPipeline(self.checkpoint, self._call_component)

    def _call_component(
        self, component: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        names = list(COMPONENT_IO[component][1])
        found = bls(self.checkpoint.components[component], inputs, names)
        return dict(zip(names, found, strict=True))

    def _scalar(self, request: Any, name: str) -> Any:
        array = input_array(request, name)
        if array is None:
            return None
        if array.size != 1:
            raise RequestError(name, f"must hold one value, got shape {list(array.shape)}")
        value = array.reshape(-1)[0]
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RequestError(name, "is not UTF-8 text") from exc
        return value.item()

    def _parse(self, request: Any) -> GenerationRequest:
        prompt = self._scalar(request, "PROMPT")
        if prompt is None:
            raise RequestError("PROMPT", "required")
        return GenerationRequest(
            prompt=prompt,
            duration_s=self._scalar(request, "DURATION"),
            seed=self._scalar(request, "SEED"),
            guidance_scale=self._scalar(request, "GUIDANCE_SCALE"),
            top_k=self._scalar(request, "TOP_K"),
            do_sample=self._scalar(request, "DO_SAMPLE"),
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            settled = settle(
                self._parse(request),
                self.params,
                self.checkpoint,
                lambda: secrets.randbelow(MAX_SEED + 1),
            )
            audio, codes = self.pipeline(settled, self.params.max_prompt_tokens)
        except RequestError as exc:
            return error_response(str(exc), pb_utils.TritonError.INVALID_ARG)
        except BlsError as exc:
            return error_response(f"{self.name}: component {exc}", exc.code)
        except Exception as exc:  # one failed request must not take the others down
            pb_utils.Logger.log_error(f"{self.name} failed: {traceback.format_exc()}")
            return error_response(
                f"{self.name} failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL
            )
        values = {
            "AUDIO": audio,
            "SAMPLE_RATE": np.array([self.checkpoint.sampling_rate], dtype=np.int32),
            "SEED": np.array([settled.seed], dtype=np.int64),
            "CODES": codes,
        }
        wanted = request.requested_output_names() or _OUTPUTS
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(n, values[n]) for n in _OUTPUTS if n in wanted]
        )
