"""The Triton python-backend front shared by every learned matting model
(`matting_isnet`, `matting_birefnet`): IMAGE uint8 [H, W, 3] RGB in, ALPHA uint8
[H, W] out (255 = subject), the same signature as `matting_classical`.

Each model's `1/model.py` only re-exports `TritonPythonModel`; what the network needs
(its ONNX model's name and tensors, input size, normalisation, activation) and how the
edge is refined come from that model's config.pbtxt `parameters`, parsed into
`matting.FrontParams` (unknown keys fail the load). The network runs in its own Triton
model over BLS, so on a GPU host it is an onnxruntime/TensorRT model that Triton
batches across requests while this front does the CPU work around it.

Errors: a request that cannot be served (not RGB, too small, too large) gets its own
INVALID_ARG; a missing network model gives UNAVAILABLE (the worker retries); anything
else INTERNAL, for that request only.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from services.models.pybackend.matting import (
    FrontParams,
    MattingInputError,
    postprocess,
    preprocess,
)
from services.models.pybackend.triton_bls import (
    BlsError,
    bls,
    error_response,
    input_array,
    load_config,
)

_IO = {"IMAGE": np.uint8, "ALPHA": np.uint8}


class TritonPythonModel:
    params: FrontParams
    name: str

    def initialize(self, args: dict[str, str]) -> None:
        _, self.params = load_config(args, FrontParams, _IO)
        self.name = json.loads(args["model_config"])["name"]

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        image = input_array(request, "IMAGE")
        p = self.params
        try:
            if image is None:
                raise MattingInputError("IMAGE is missing")
            x = preprocess(image, p)
            raw = bls(p.network_model, {p.network_input: x}, [p.network_output])[0]
            alpha = postprocess(raw, image, p)
        except MattingInputError as exc:
            return error_response(f"{self.name}: {exc}", pb_utils.TritonError.INVALID_ARG)
        except BlsError as exc:
            return error_response(str(exc), exc.code)
        except Exception as exc:  # one bad request must not take the others down
            pb_utils.Logger.log_error(f"{self.name} failed: {traceback.format_exc()}")
            return error_response(
                f"{self.name} failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL
            )
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("ALPHA", alpha)])
