"""Triton python-backend model that serves the `model.onnx` beside it with onnxruntime
on the CPU: the `cpu` render target's stand-in for Triton's onnxruntime backend, which
the tritonserver in the nvidia-pytriton wheel does not ship.

`render_sdxl_configs(repo, "cpu")` copies this file to `<component>/1/model.py` of
each SDXL component; its config.pbtxt lists the ONNX model's inputs and outputs with
full shapes (max_batch_size 0). Input and output names and dtypes come from that
config and are checked against the ONNX graph at load. A request the graph rejects
(wrong shape) gets its own INVALID_ARG response; the other requests still run.

Parameters (config.pbtxt, all optional): intra_op_threads (0 = onnxruntime's default,
one per core), inter_op_threads (default 1).
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_PARAMS = {"intra_op_threads": 0, "inter_op_threads": 1}
# Parameters the python backend itself interprets; they may sit in any config.pbtxt.
_BACKEND_PARAMETERS = {"EXECUTION_ENV_PATH", "FORCE_CPU_ONLY_INPUT_TENSORS"}


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.name = config["name"]
        raw = {
            k: v["string_value"]
            for k, v in config.get("parameters", {}).items()
            if k not in _BACKEND_PARAMETERS
        }
        unknown = sorted(set(raw) - set(_PARAMS))
        if unknown:
            raise ValueError(f"{self.name}: unknown parameters {unknown}; known: {sorted(_PARAMS)}")
        params = {k: int(raw.get(k, default)) for k, default in _PARAMS.items()}
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = params["intra_op_threads"]
        options.inter_op_num_threads = params["inter_op_threads"]
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {
            i["name"]: np.dtype(pb_utils.triton_string_to_numpy(i["data_type"]))
            for i in config["input"]
        }
        self.outputs = {
            o["name"]: np.dtype(pb_utils.triton_string_to_numpy(o["data_type"]))
            for o in config["output"]
        }
        graph_inputs = {i.name for i in self.session.get_inputs()}
        graph_outputs = {o.name for o in self.session.get_outputs()}
        if set(self.inputs) != graph_inputs or not set(self.outputs) <= graph_outputs:
            raise ValueError(
                f"{self.name}: config.pbtxt declares inputs {sorted(self.inputs)} and outputs "
                f"{sorted(self.outputs)}, {path} has {sorted(graph_inputs)} -> "
                f"{sorted(graph_outputs)}; re-render the config"
            )
        self.output_names = list(self.outputs)

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            feed = {
                name: pb_utils.get_input_tensor_by_name(request, name)
                .as_numpy()
                .astype(dtype, copy=False)
                for name, dtype in self.inputs.items()
            }
            results = self.session.run(self.output_names, feed)
        except (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ValueError) as exc:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"{self.name}: {exc}", pb_utils.TritonError.INVALID_ARG)
            )
        except Exception as exc:  # one failed request must not take the batch down
            pb_utils.Logger.log_error(f"{self.name} failed: {traceback.format_exc()}")
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(
                    f"{self.name}: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL
                )
            )
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(value, dtype=self.outputs[name]))
            for name, value in zip(self.output_names, results, strict=True)
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)
