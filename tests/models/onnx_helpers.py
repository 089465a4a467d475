"""Hand-made ONNX graphs with chosen input/output signatures, for contract checks."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

DTYPES = {
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "int64": TensorProto.INT64,
    "uint8": TensorProto.UINT8,
}


def identity_model(
    path: Path,
    inputs: list[tuple[str, str, list[int | str]]],
    outputs: list[tuple[str, str, list[int | str]]],
) -> Path:
    """An ONNX file with these (name, dtype, shape) inputs and outputs; each output is
    an Identity (through a Cast when dtypes differ) of the first input."""
    first = inputs[0][0]
    nodes = []
    for name, dtype, _ in outputs:
        if dtype == inputs[0][1]:
            nodes.append(helper.make_node("Identity", [first], [name]))
        else:
            nodes.append(helper.make_node("Cast", [first], [name], to=DTYPES[dtype]))
    graph = helper.make_graph(
        nodes,
        "stand-in",
        [helper.make_tensor_value_info(n, DTYPES[d], s) for n, d, s in inputs],
        [helper.make_tensor_value_info(n, DTYPES[d], s) for n, d, s in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
