"""Triton python-backend front of face restoration (see restore.py): IMAGE uint8
[H, W, 3] + FIDELITY float32 [1] in, RESTORED uint8 [H, W, 3] and FACES int32 [1]
(how many faces were restored) out. Faces come from `face_detector` and are restored by
the ONNX model `face_codeformer_onnx`, both over BLS."""

from __future__ import annotations

import re
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

from restore import ModelOutputError, RestoreInputError, RestoreParams, restore  # noqa: E402

DETECTOR = "face_detector"
ONNX_MODEL = "face_codeformer_onnx"
_IO = {"IMAGE": np.uint8, "FIDELITY": np.float32, "RESTORED": np.uint8, "FACES": np.int32}


class TritonPythonModel:
    params: RestoreParams

    def initialize(self, args: dict[str, str]) -> None:
        _, self.params = load_config(args, RestoreParams, _IO)
        onnx_config = Path(args["model_repository"]) / self.params.onnx_config
        text = onnx_config.read_text() if onnx_config.exists() else ""
        found = re.search(r"^max_batch_size\s*:\s*(\d+)", text, re.MULTILINE)
        # A batching model takes the per-sample weight as [N, 1]; one that fixes its
        # batch at 1 takes [1] and one face per call.
        self.batching = found is None or int(found.group(1)) > 0

    def _run(self, faces: np.ndarray, weight: np.ndarray) -> np.ndarray:
        if self.batching:
            return bls(ONNX_MODEL, {"input": faces, "weight": weight[:, None]}, ["output"])[0]
        return np.concatenate(
            [
                bls(
                    ONNX_MODEL, {"input": faces[i : i + 1], "weight": weight[i : i + 1]}, ["output"]
                )[0]
                for i in range(len(faces))
            ]
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            image = input_array(request, "IMAGE")
            fidelity = input_array(request, "FIDELITY").reshape(-1)
            if fidelity.size != 1:
                raise RestoreInputError(f"FIDELITY must hold one value, got {fidelity.size}")
            (faces,) = bls(DETECTOR, {"IMAGE": image}, ["FACES"])
            out, count = restore(image, faces, float(fidelity[0]), self._run, self.params)
        except RestoreInputError as exc:
            return error_response(str(exc), pb_utils.TritonError.INVALID_ARG)
        except BlsError as exc:
            return error_response(str(exc), exc.code)
        except ModelOutputError as exc:
            return error_response(str(exc), pb_utils.TritonError.INTERNAL)
        except Exception as exc:
            pb_utils.Logger.log_error(f"face_codeformer failed: {traceback.format_exc()}")
            return error_response(f"face restoration failed: {exc}", pb_utils.TritonError.INTERNAL)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("RESTORED", out),
                pb_utils.Tensor("FACES", np.array([count], np.int32)),
            ]
        )
