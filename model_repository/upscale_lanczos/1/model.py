"""Triton python-backend wrapper around `lanczos.upscale`.

IMAGE uint8 [H, W, 3] RGB + SCALE int32 [1] (2 or 4) in, UPSCALED uint8
[SCALE*H, SCALE*W, 3] out. A request that cannot be served gets its own INVALID_ARG
error response; the others are unaffected.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from lanczos import LanczosParams, UpscaleInputError, parse_params, upscale  # noqa: E402

# Parameters the python backend itself interprets; they may sit in any config.pbtxt.
_BACKEND_PARAMETERS = {"EXECUTION_ENV_PATH", "FORCE_CPU_ONLY_INPUT_TENSORS"}
_IO = {"IMAGE": np.uint8, "SCALE": np.int32, "UPSCALED": np.uint8}


class TritonPythonModel:
    params: LanczosParams

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        raw = {
            key: value["string_value"]
            for key, value in config.get("parameters", {}).items()
            if key not in _BACKEND_PARAMETERS
        }
        self.params = parse_params(raw)
        self.dtypes: dict[str, np.dtype[Any]] = {}
        for name, expected in _IO.items():
            cfg = pb_utils.get_input_config_by_name(
                config, name
            ) or pb_utils.get_output_config_by_name(config, name)
            if cfg is None:
                raise ValueError(f"config.pbtxt must declare {name}")
            dtype = np.dtype(pb_utils.triton_string_to_numpy(cfg["data_type"]))
            if dtype != np.dtype(expected):
                raise ValueError(f"{name} must be {np.dtype(expected)}, config says {dtype}")
            self.dtypes[name] = dtype

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        scale = pb_utils.get_input_tensor_by_name(request, "SCALE").as_numpy().reshape(-1)
        try:
            if scale.size != 1:
                raise UpscaleInputError(f"SCALE must hold one value, got {scale.size}")
            out = upscale(image, int(scale[0]), self.params)
        except UpscaleInputError as exc:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
            )
        except Exception as exc:  # one bad request must not take the others down
            pb_utils.Logger.log_error(f"upscale_lanczos failed: {traceback.format_exc()}")
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(
                    f"upscale failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL
                )
            )
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("UPSCALED", out)])
