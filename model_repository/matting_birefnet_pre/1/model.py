"""Triton python-backend step `matting_birefnet_pre` (see birefnet_pre.py): IMAGE uint8
[H, W, 3] in, INPUT_IMAGE float32 [1, 3, S, S] out; a bad image gets INVALID_ARG."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from services.models.pybackend.triton_bls import error_response, input_array, load_config

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from birefnet_pre import MattingInputError, PreParams, preprocess  # noqa: E402

_IO = {"IMAGE": np.uint8, "INPUT_IMAGE": np.float32}


class TritonPythonModel:
    params: PreParams

    def initialize(self, args: dict[str, str]) -> None:
        config, self.params = load_config(args, PreParams, _IO)
        dims = pb_utils.get_output_config_by_name(config, "INPUT_IMAGE")["dims"]
        if [int(d) for d in dims] != [1, 3, self.params.work_size, self.params.work_size]:
            raise ValueError(f"INPUT_IMAGE dims {dims} disagree with work_size")

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                x = preprocess(input_array(request, "IMAGE"), self.params)
            except MattingInputError as exc:
                responses.append(error_response(str(exc), pb_utils.TritonError.INVALID_ARG))
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("INPUT_IMAGE", x)]))
        return responses
