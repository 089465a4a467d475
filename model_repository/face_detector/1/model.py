"""Triton python-backend front of the YuNet face detector (see yunet.py): IMAGE uint8
[H, W, 3] in, FACES float32 [K, 15] out (x, y, w, h, 5 landmarks, score; photo
pixels); the ONNX model `face_detector_onnx` runs over BLS."""

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

from yunet import OUTPUTS, DetectInputError, DetectParams, ModelOutputError, detect  # noqa: E402

ONNX_MODEL = "face_detector_onnx"
_IO = {"IMAGE": np.uint8, "FACES": np.float32}


class TritonPythonModel:
    params: DetectParams

    def initialize(self, args: dict[str, str]) -> None:
        _, self.params = load_config(args, DetectParams, _IO)

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(OUTPUTS, bls(ONNX_MODEL, {"input": x}, OUTPUTS), strict=True))

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            faces = detect(input_array(request, "IMAGE"), self._run, self.params)
        except DetectInputError as exc:
            return error_response(str(exc), pb_utils.TritonError.INVALID_ARG)
        except BlsError as exc:
            return error_response(str(exc), exc.code)
        except ModelOutputError as exc:
            return error_response(str(exc), pb_utils.TritonError.INTERNAL)
        except Exception as exc:
            pb_utils.Logger.log_error(f"face_detector failed: {traceback.format_exc()}")
            return error_response(f"face detection failed: {exc}", pb_utils.TritonError.INTERNAL)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("FACES", faces)])
