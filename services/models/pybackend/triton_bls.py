"""Helpers shared by the python-backend models: typed `parameters`, dtype checks
against the config, BLS calls with their errors. Importable only inside Triton's
python stub (it needs `triton_python_backend_utils`); see this package's docstring.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# Parameters the python backend itself interprets; they may sit in any config.pbtxt.
BACKEND_PARAMETERS = {"EXECUTION_ENV_PATH", "FORCE_CPU_ONLY_INPUT_TENSORS"}


class BlsError(RuntimeError):
    """A call to another model failed; `code` is the TritonError code to answer with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def parse_params(cls: type, raw: dict[str, str], model: str) -> Any:
    """An instance of the frozen dataclass `cls` from config.pbtxt strings: unknown
    keys, values of the wrong type and negative or non-finite numbers are refused."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"unknown {model} parameters {unknown}; known: {sorted(fields)}")
    values: dict[str, Any] = {}
    for key, text in raw.items():
        kind = fields[key].type
        try:
            value: Any = int(text) if kind == "int" else float(text) if kind == "float" else text
        except ValueError as exc:
            raise ValueError(f"{model} parameter {key}={text!r} is not a {kind}") from exc
        if isinstance(value, (int, float)) and (value < 0 or not math.isfinite(value)):
            raise ValueError(f"{model} parameter {key}={text!r} must be a finite number >= 0")
        values[key] = value
    return cls(**values)


def load_config(args: dict[str, str], cls: type, io: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """(model config, parsed parameters) for `initialize`; every tensor named in `io`
    must be declared with that numpy dtype (object for TYPE_STRING)."""
    config = json.loads(args["model_config"])
    raw = {
        key: value["string_value"]
        for key, value in config.get("parameters", {}).items()
        if key not in BACKEND_PARAMETERS
    }
    params = parse_params(cls, raw, config["name"])
    for name, expected in io.items():
        cfg = pb_utils.get_input_config_by_name(config, name)
        cfg = cfg or pb_utils.get_output_config_by_name(config, name)
        if cfg is None:
            raise ValueError(f"{config['name']}: config.pbtxt must declare {name}")
        dtype = np.dtype(pb_utils.triton_string_to_numpy(cfg["data_type"]))
        if dtype != np.dtype(expected):
            raise ValueError(f"{config['name']}: {name} must be {np.dtype(expected)}, not {dtype}")
    return config, params


def bls(model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
    """One call to another Triton model. Its error becomes BlsError: UNAVAILABLE when
    the model is missing or not ready (the client retries), INTERNAL otherwise."""
    request = pb_utils.InferenceRequest(
        model_name=model,
        requested_output_names=outputs,
        inputs=[pb_utils.Tensor(name, array) for name, array in inputs.items()],
        preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0),
    )
    response = request.exec()
    if response.has_error():
        message = response.error().message()
        lowered = message.lower()
        missing = "not ready" in lowered or "unknown model" in lowered or "not found" in lowered
        code = pb_utils.TritonError.UNAVAILABLE if missing else pb_utils.TritonError.INTERNAL
        raise BlsError(f"{model}: {message}", code)
    found = []
    for name in outputs:
        tensor = pb_utils.get_output_tensor_by_name(response, name)
        if tensor is None:
            raise BlsError(f"{model} returned no {name}", pb_utils.TritonError.INTERNAL)
        found.append(tensor.as_numpy())
    return found


def error_response(message: str, code: int) -> Any:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))


def input_array(request: Any, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()
