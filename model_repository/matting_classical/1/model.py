"""Triton python-backend wrapper around `matting.estimate_alpha`.

IMAGE uint8 [H, W, 3] RGB in, ALPHA uint8 [H, W] out. A request whose image cannot be
matted gets its own INVALID_ARG error response; the other requests of the batch are
unaffected and the model keeps serving.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# The stub does not put the version directory on sys.path; matting.py lives beside us.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from matting import (  # noqa: E402
    MattingInputError,
    MattingParams,
    estimate_alpha,
    parse_params,
)

# Parameters the python backend itself interprets; they may sit in any config.pbtxt.
_BACKEND_PARAMETERS = {"EXECUTION_ENV_PATH", "FORCE_CPU_ONLY_INPUT_TENSORS"}


class TritonPythonModel:
    params: MattingParams
    image_dtype: np.dtype[Any]
    alpha_dtype: np.dtype[Any]

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        raw = {
            key: value["string_value"]
            for key, value in config.get("parameters", {}).items()
            if key not in _BACKEND_PARAMETERS
        }
        self.params = parse_params(raw)
        image_cfg = pb_utils.get_input_config_by_name(config, "IMAGE")
        alpha_cfg = pb_utils.get_output_config_by_name(config, "ALPHA")
        if image_cfg is None or alpha_cfg is None:
            raise ValueError("config.pbtxt must declare input IMAGE and output ALPHA")
        self.image_dtype = np.dtype(pb_utils.triton_string_to_numpy(image_cfg["data_type"]))
        self.alpha_dtype = np.dtype(pb_utils.triton_string_to_numpy(alpha_cfg["data_type"]))
        if self.image_dtype != np.uint8 or self.alpha_dtype != np.uint8:
            raise ValueError(
                f"matting_classical works on uint8 in and out; config says "
                f"IMAGE {self.image_dtype}, ALPHA {self.alpha_dtype}"
            )
        # Loads pymatting (numba kernels from NUMBA_CACHE_DIR) now rather than on the
        # first request, so readiness means a request will not stall on a compile.
        import pymatting  # noqa: F401

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        try:
            alpha = estimate_alpha(image, self.params)
        except MattingInputError as exc:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
            )
        except Exception as exc:  # one bad request must not take the batch down
            pb_utils.Logger.log_error(f"matting_classical failed: {traceback.format_exc()}")
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(
                    f"matting failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL
                )
            )
        out = pb_utils.Tensor("ALPHA", alpha.astype(self.alpha_dtype, copy=False))
        return pb_utils.InferenceResponse(output_tensors=[out])
