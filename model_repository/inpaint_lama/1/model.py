"""Triton python-backend front of the LaMa engine (see lama.py): IMAGE uint8 [H, W, 3]
+ MASK uint8 [H, W] in, INPAINTED uint8 [H, W, 3] out; each crop is filled by the ONNX
model `inpaint_lama_onnx` over BLS."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from services.models.pybackend.triton_bls import (
    BlsError,
    bls,
    error_response,
    input_array,
    load_config,
)

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from lama import InpaintInputError, LamaParams, ModelOutputError, inpaint  # noqa: E402

ONNX_MODEL = "inpaint_lama_onnx"
_IO = {"IMAGE": np.uint8, "MASK": np.uint8, "INPAINTED": np.uint8}


class TritonPythonModel:
    params: LamaParams

    def initialize(self, args: dict[str, str]) -> None:
        _, self.params = load_config(args, LamaParams, _IO)

    def _run(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return bls(ONNX_MODEL, {"image": image, "mask": mask}, ["output"])[0]

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            out = inpaint(
                input_array(request, "IMAGE"), input_array(request, "MASK"), self._run, self.params
            )
        except InpaintInputError as exc:
            return error_response(str(exc), pb_utils.TritonError.INVALID_ARG)
        except BlsError as exc:
            return error_response(str(exc), exc.code)
        except ModelOutputError as exc:
            return error_response(str(exc), pb_utils.TritonError.INTERNAL)
        except Exception as exc:
            pb_utils.Logger.log_error(f"inpaint_lama failed: {traceback.format_exc()}")
            return error_response(f"inpaint failed: {exc}", pb_utils.TritonError.INTERNAL)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("INPAINTED", out)])
