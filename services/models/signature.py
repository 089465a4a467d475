"""An ONNX file's inputs and outputs, and their check against a contract.

Only the graph is read (external weight files are not loaded), so checking a
multi-gigabyte model is instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.models.contracts import Contract, TensorSpec

# ONNX TensorProto element types -> numpy dtype names.
_ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
}


class ContractError(ValueError):
    """The file does not match its contract; the message names the tensor."""


@dataclass(frozen=True)
class FileTensor:
    name: str
    dtype: str
    dims: tuple[int | str, ...]  # ints fixed, strings symbolic ("?" when unnamed)

    def pretty(self) -> str:
        return f"{self.name} {self.dtype} [{', '.join(str(d) for d in self.dims)}]"


@dataclass(frozen=True)
class Signature:
    inputs: tuple[FileTensor, ...]
    outputs: tuple[FileTensor, ...]

    def input(self, name: str) -> FileTensor:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> FileTensor:
        return next(t for t in self.outputs if t.name == name)

    @property
    def batch_fixed(self) -> bool:
        """True when the file fixes its batch axis (at 1): Triton must not batch it."""
        return any(isinstance(t.dims[0], int) for t in self.inputs if t.dims)


def read_signature(path: Path) -> Signature:
    """Inputs (initializers excluded) and outputs of the ONNX file at `path`."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ContractError(f"{path} is not a readable ONNX file: {exc}") from None
    initializers = {i.name for i in model.graph.initializer}

    def tensor(value: object) -> FileTensor:
        t = value.type.tensor_type  # type: ignore[attr-defined]
        dims: list[int | str] = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or "?")
        dtype = _ONNX_DTYPES.get(t.elem_type, f"onnx-type-{t.elem_type}")
        return FileTensor(value.name, dtype, tuple(dims))  # type: ignore[attr-defined]

    return Signature(
        tuple(tensor(i) for i in model.graph.input if i.name not in initializers),
        tuple(tensor(o) for o in model.graph.output),
    )


def _check_tensor(kind: str, spec: TensorSpec, got: FileTensor, contract: Contract) -> None:
    where = f"{contract.name}: {kind} '{spec.name}'"
    if got.dtype != spec.dtype:
        raise ContractError(
            f"{where} is {got.dtype}; the contract says {spec.pretty()} ({spec.meaning})"
        )
    if len(got.dims) != len(spec.dims) + 1:
        raise ContractError(
            f"{where} has shape {got.pretty()}; the contract says {spec.pretty()} "
            f"(rank {len(spec.dims) + 1})"
        )
    batch = got.dims[0]
    if isinstance(batch, int) and batch != 1:
        raise ContractError(
            f"{where} fixes the batch axis at {batch}; it must be 1 or symbolic "
            f"(contract {spec.pretty()})"
        )
    for axis, (want, have) in enumerate(zip(spec.dims, got.dims[1:], strict=True), start=1):
        if isinstance(want, int) and isinstance(have, int) and want != have:
            raise ContractError(
                f"{where} has size {have} on axis {axis} ({got.pretty()}); the contract "
                f"says {want} ({spec.pretty()})"
            )


def check_signature(signature: Signature, contract: Contract) -> None:
    """Raise ContractError naming the first tensor that breaks `contract`. Outputs the
    contract does not name are allowed (they are not served); inputs are not: nothing
    would feed them."""
    have_in = {t.name: t for t in signature.inputs}
    have_out = {t.name: t for t in signature.outputs}
    for spec in contract.inputs:
        if spec.name not in have_in:
            found = ", ".join(t.pretty() for t in signature.inputs) or "none"
            raise ContractError(
                f"{contract.name}: input '{spec.name}' is missing (the contract says "
                f"{spec.pretty()}); the file's inputs are: {found}. Re-export with that "
                f"name, or install with --rename FILE_NAME={spec.name}"
            )
        _check_tensor("input", spec, have_in[spec.name], contract)
    extra = sorted(set(have_in) - {s.name for s in contract.inputs})
    if extra:
        raise ContractError(
            f"{contract.name}: input '{extra[0]}' is not in the contract, which feeds only "
            f"{', '.join(s.name for s in contract.inputs)}"
        )
    for spec in contract.outputs:
        if spec.name not in have_out:
            found = ", ".join(t.pretty() for t in signature.outputs) or "none"
            raise ContractError(
                f"{contract.name}: output '{spec.name}' is missing (the contract says "
                f"{spec.pretty()}); the file's outputs are: {found}. Re-export with that "
                f"name, or install with --rename FILE_NAME={spec.name}"
            )
        _check_tensor("output", spec, have_out[spec.name], contract)
