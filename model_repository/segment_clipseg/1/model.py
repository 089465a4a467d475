"""Triton python-backend front of CLIPSeg (see clipseg.py): IMAGE uint8 [H, W, 3] +
PROMPT string [1] in, MASK uint8 [H, W] out (255 = the named object); the logits come
from the ONNX model `segment_clipseg_onnx` over BLS."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from services.models.pybackend.clip_tokenizer import ClipTokenizer
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

from clipseg import ClipSegParams, ModelOutputError, SegmentInputError, segment  # noqa: E402

ONNX_MODEL = "segment_clipseg_onnx"
_IO = {"IMAGE": np.uint8, "PROMPT": np.object_, "MASK": np.uint8}


class TritonPythonModel:
    params: ClipSegParams

    def initialize(self, args: dict[str, str]) -> None:
        _, self.params = load_config(args, ClipSegParams, _IO)
        folder = (Path(args["model_repository"]) / self.params.tokenizer_dir).resolve()
        self.tokenizer = ClipTokenizer.from_dir(folder)

    def _run(self, ids: np.ndarray, pixels: np.ndarray, attention: np.ndarray) -> np.ndarray:
        inputs = {"input_ids": ids, "pixel_values": pixels, "attention_mask": attention}
        return bls(ONNX_MODEL, inputs, ["logits"])[0]

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            raw = input_array(request, "PROMPT").reshape(-1)
            if raw.size != 1:
                raise SegmentInputError(f"PROMPT must hold one string, got {raw.size}")
            text = raw[0].decode("utf-8") if isinstance(raw[0], bytes) else str(raw[0])
            mask = segment(
                input_array(request, "IMAGE"), text, self.tokenizer, self._run, self.params
            )
        except (SegmentInputError, UnicodeDecodeError) as exc:
            return error_response(str(exc), pb_utils.TritonError.INVALID_ARG)
        except BlsError as exc:
            return error_response(str(exc), exc.code)
        except ModelOutputError as exc:
            return error_response(str(exc), pb_utils.TritonError.INTERNAL)
        except Exception as exc:
            pb_utils.Logger.log_error(f"segment_clipseg failed: {traceback.format_exc()}")
            return error_response(f"segmentation failed: {exc}", pb_utils.TritonError.INTERNAL)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("MASK", mask)])
