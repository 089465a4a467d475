"""The tiled super-resolution front shared by the upscale models (upscale_realesrgan,
upscale_rrdn): tiles `IMAGE` through the ONNX model its
config.pbtxt names (`network_model`) with BLS calls (`tiling.upscale_tiled`).

IMAGE uint8 [H, W, 3] RGB + SCALE int32 [1] (2 or 4) in, UPSCALED uint8
[SCALE*H, SCALE*W, 3] out. A request that cannot be served gets its own INVALID_ARG
error response; a failed ONNX call fails only its own request (UNAVAILABLE when the
ONNX model is not loaded, so the worker retries rather than failing the job).
"""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from services.models.pybackend.tiling import (
    ModelOutputError,
    TileParams,
    UpscaleInputError,
    upscale_tiled,
)
from services.models.pybackend.triton_bls import (
    BlsError,
    bls,
    error_response,
    input_array,
    load_config,
)

_IO = {"IMAGE": np.uint8, "SCALE": np.int32, "UPSCALED": np.uint8}


class TritonPythonModel:
    params: TileParams

    def initialize(self, args: dict[str, str]) -> None:
        config, self.params = load_config(args, TileParams, _IO)
        self.name = config["name"]

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return bls(self.params.network_model, {"input": batch}, ["output"])[0]

    def _one(self, request: Any) -> Any:
        image = input_array(request, "IMAGE")
        scale = input_array(request, "SCALE").reshape(-1)
        try:
            if scale.size != 1:
                raise UpscaleInputError(f"SCALE must hold one value, got {scale.size}")
            out = upscale_tiled(image, int(scale[0]), self._run, self.params)
        except UpscaleInputError as exc:
            return error_response(str(exc), pb_utils.TritonError.INVALID_ARG)
        except BlsError as exc:
            return error_response(str(exc), exc.code)
        except ModelOutputError as exc:
            return error_response(str(exc), pb_utils.TritonError.INTERNAL)
        except Exception as exc:  # one bad request must not take the others down
            pb_utils.Logger.log_error(f"{self.name} failed: {traceback.format_exc()}")
            return error_response(
                f"upscale failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL
            )
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("UPSCALED", out)])
