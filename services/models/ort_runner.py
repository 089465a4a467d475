"""Generic Triton python-backend model serving the `model.onnx` beside it on the CPU,
with onnxruntime or OpenVINO: the `cpu` render target's stand-in for Triton's
onnxruntime backend, which the tritonserver in the nvidia-pytriton wheel does not ship.

`lightbox models render --target cpu` copies this file to `<model>/1/model.py` of every
installed ONNX model. Input and output names and dtypes come from config.pbtxt and are
checked against the ONNX graph at load.

Dynamic batching: with max_batch_size > 0, Triton hands `execute` every request it
gathered; requests whose inputs have the same shape past the batch axis run as one
onnxruntime call (concatenated along axis 0) and the outputs are split back. A graph
whose batch axis is fixed at 1 runs each request on its own. A run that fails is retried
request by request, so one malformed request gets its own INVALID_ARG response and the
others are served.

A config input of dims [1] fed to a graph input of rank 1 (a per-sample scalar such as
CodeFormer's fidelity weight) is passed as [N]; outputs likewise.

Parameters (config.pbtxt, all optional): runtime (`onnxruntime`, the default, or
`openvino`), intra_op_threads (0 = the runtime's default, one per core),
inter_op_threads (default 1; onnxruntime only), precision (OpenVINO only: `auto` runs
bfloat16 where the CPU has native bf16 (AVX512_BF16, AMX), float32 elsewhere; `f32` or
`bf16` forces one). A contract chooses its runtime from measurements
(services/models/contracts.py `cpu_runtime`): OpenVINO's bf16 kernels ran ISNet 2.3x
faster than onnxruntime at float32 on these CPUs, within 0.003 of its output.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_PARAMS: dict[str, int | str] = {
    "runtime": "onnxruntime",
    "intra_op_threads": 0,
    "inter_op_threads": 1,
    "precision": "auto",
}
_RUNTIMES = ("onnxruntime", "openvino")
_PRECISIONS = ("auto", "f32", "bf16")
# Parameters the python backend itself interprets; they may sit in any config.pbtxt.
_BACKEND_PARAMETERS = {"EXECUTION_ENV_PATH", "FORCE_CPU_ONLY_INPUT_TENSORS"}
# Words in onnxruntime's errors that mean the request, not the model, is at fault.
_BAD_INPUT = ("invalid_argument", "invalid", "shape", "dimension", "broadcast")


class RequestError(ValueError):
    """A request the graph cannot take (shape, dtype); answered with INVALID_ARG."""


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
        params = {k: type(default)(raw.get(k, default)) for k, default in _PARAMS.items()}
        if params["runtime"] not in _RUNTIMES or params["precision"] not in _PRECISIONS:
            raise ValueError(
                f"{self.name}: runtime must be one of {_RUNTIMES} and precision one of "
                f"{_PRECISIONS}, not {params['runtime']!r} / {params['precision']!r}"
            )
        self.batching = int(config.get("max_batch_size", 0)) > 0
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        if params["runtime"] == "openvino":
            self.session = _OpenVinoSession(
                path, int(params["intra_op_threads"]), str(params["precision"])
            )
            pb_utils.Logger.log_info(
                f"{self.name}: OpenVINO on the CPU at {self.session.precision}"
            )
        else:
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(params["intra_op_threads"])
            options.inter_op_num_threads = int(params["inter_op_threads"])
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
        graph_inputs = {i.name: i for i in self.session.get_inputs()}
        graph_outputs = {o.name: o for o in self.session.get_outputs()}
        if set(self.inputs) != set(graph_inputs) or not set(self.outputs) <= set(graph_outputs):
            raise ValueError(
                f"{self.name}: config.pbtxt declares inputs {sorted(self.inputs)} and outputs "
                f"{sorted(self.outputs)}, {path} has {sorted(graph_inputs)} -> "
                f"{sorted(graph_outputs)}; re-render the config"
            )
        self.input_rank = {n: len(graph_inputs[n].shape) for n in self.inputs}
        self.output_rank = {n: len(graph_outputs[n].shape) for n in self.outputs}
        # A graph whose batch axis is a fixed 1 cannot take stacked requests.
        first = next(iter(graph_inputs.values())).shape
        self.stackable = self.batching and not (first and first[0] == 1)
        self.output_names = list(self.outputs)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        feeds: list[dict[str, np.ndarray] | None] = []
        for i, request in enumerate(requests):
            try:
                feeds.append(self._feed(request))
            except RequestError as exc:
                feeds.append(None)
                responses[i] = _error(str(exc), pb_utils.TritonError.INVALID_ARG)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, feed in enumerate(feeds):
            if feed is None:
                continue
            key = tuple((n, a.shape[1:]) for n, a in feed.items()) if self.stackable else (i,)
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            batch = [feeds[i] for i in members]
            try:
                outs = self._run(batch)  # type: ignore[arg-type]
            except Exception:
                if len(members) == 1:
                    responses[members[0]] = self._failed(members[0])
                    continue
                for i in members:  # find the request that broke the run
                    try:
                        responses[i] = self._respond(self._run([feeds[i]])[0])  # type: ignore[list-item]
                    except Exception:
                        responses[i] = self._failed(i)
                continue
            for i, out in zip(members, outs, strict=True):
                responses[i] = self._respond(out)
        return responses

    def _feed(self, request: Any) -> dict[str, np.ndarray]:
        feed = {}
        for name, dtype in self.inputs.items():
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise RequestError(f"{self.name}: input {name} is missing")
            array = tensor.as_numpy()
            if array.dtype != dtype:
                raise RequestError(f"{self.name}: input {name} must be {dtype}, got {array.dtype}")
            if array.ndim == self.input_rank[name] + 1 and array.shape[-1] == 1:
                array = array[..., 0]
            feed[name] = array
        return feed

    def _run(self, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """One onnxruntime call over the stacked feeds; the outputs split per feed."""
        if len(feeds) == 1:
            stacked = feeds[0]
        else:
            stacked = {n: np.concatenate([f[n] for f in feeds], axis=0) for n in self.inputs}
        results = self.session.run(self.output_names, stacked)
        sizes = [next(iter(f.values())).shape[0] for f in feeds] if self.batching else [0]
        if len(feeds) == 1:
            return [dict(zip(self.output_names, results, strict=True))]
        bounds = np.cumsum(sizes)[:-1]
        per_output = [np.split(r, bounds, axis=0) for r in results]
        return [
            {n: per_output[k][j] for k, n in enumerate(self.output_names)}
            for j in range(len(feeds))
        ]

    def _respond(self, out: dict[str, np.ndarray]) -> Any:
        tensors = []
        for name, dtype in self.outputs.items():
            array = out[name]
            if self.batching and array.ndim == 1:
                array = array[:, None]
            tensors.append(
                pb_utils.Tensor(name, np.ascontiguousarray(array.astype(dtype, copy=False)))
            )
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _failed(self, index: int) -> Any:
        message = traceback.format_exc(limit=1).strip().splitlines()[-1]
        # onnxruntime rejects malformed inputs with INVALID_ARGUMENT when it checks them
        # up front, or with FAIL from the kernel that meets the mismatched sizes.
        if any(k in message.lower() for k in _BAD_INPUT):
            return _error(f"{self.name}: {message}", pb_utils.TritonError.INVALID_ARG)
        pb_utils.Logger.log_error(f"{self.name} failed: {traceback.format_exc()}")
        return _error(f"{self.name} failed: {message}", pb_utils.TritonError.INTERNAL)


class _Port:
    def __init__(self, name: str, shape: list[Any]) -> None:
        self.name = name
        self.shape = shape


class _OpenVinoSession:
    """The part of onnxruntime's InferenceSession this runner uses, over an OpenVINO
    model compiled for the CPU (dynamic shapes kept as in the ONNX file)."""

    def __init__(self, path: Path, threads: int, precision: str) -> None:
        import openvino as ov

        core = ov.Core()
        if precision == "auto":
            capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            precision = "bf16" if "BF16" in capabilities else "f32"
        self.precision = precision
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        model = core.read_model(str(path))
        self._compiled = core.compile_model(model, "CPU", config)
        self._request = self._compiled.create_infer_request()

        def ports(items: Any) -> list[_Port]:
            out = []
            for port in items:
                shape = port.get_partial_shape()
                dims = [d.get_length() if d.is_static else None for d in shape]
                out.append(_Port(port.get_any_name(), dims))
            return out

        self._inputs = ports(self._compiled.inputs)
        self._outputs = ports(self._compiled.outputs)

    def get_inputs(self) -> list[_Port]:
        return self._inputs

    def get_outputs(self) -> list[_Port]:
        return self._outputs

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self._request.infer(feeds)
        by_name = {port.get_any_name(): value for port, value in results.items()}
        return [np.array(by_name[name], copy=True) for name in output_names]


def _error(message: str, code: int) -> Any:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
