"""Triton python-backend step `matting_birefnet_post` (see birefnet_post.py): LOGITS
float32 [1, 1, S, S] + IMAGE uint8 [H, W, 3] in, ALPHA uint8 [H, W] out."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from services.models.pybackend.triton_bls import error_response, input_array, load_config

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from birefnet_post import MattingInputError, PostParams, postprocess  # noqa: E402

_IO = {"LOGITS": np.float32, "IMAGE": np.uint8, "ALPHA": np.uint8}


class TritonPythonModel:
    params: PostParams

    def initialize(self, args: dict[str, str]) -> None:
        _, self.params = load_config(args, PostParams, _IO)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                alpha = postprocess(
                    input_array(request, "LOGITS"), input_array(request, "IMAGE"), self.params
                )
            except MattingInputError as exc:
                responses.append(error_response(str(exc), pb_utils.TritonError.INVALID_ARG))
                continue
            except Exception as exc:
                pb_utils.Logger.log_error(f"matting_birefnet_post: {traceback.format_exc()}")
                responses.append(
                    error_response(f"matting failed: {exc}", pb_utils.TritonError.INTERNAL)
                )
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("ALPHA", alpha)]))
        return responses
