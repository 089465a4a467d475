"""ISNet (DIS, Qin et al.) as the npm package `@imgly/background-removal-data` ships it,
turned into the ONNX file Lightbox serves as `matting_isnet_onnx`.

The package's `/models/medium` is an fp16 graph behind a float32 interface: input
`input` float32 [1, 3, 1024, 1024], twelve float32 outputs (`output` first, already a
probability: the sigmoid is inside), Cast nodes at the boundary, fp16 initializers and
Constant nodes, and 34 Resize nodes whose target sizes are baked in as constants. The
conversion (`convert`):

1. fp16 -> fp32: initializers, tensor-valued attributes (Constant nodes) and Casts to
   fp16 become float32; Casts that are then float32 -> float32 are removed. On CPU the
   fp32 graph is faster (no Cast round trips) and matches the fp16 one within 1e-3;
   the GPU target gets FP16 back from TensorRT.
2. Only `output` is kept; the side outputs and the nodes only they need are pruned.
3. Each Resize's baked `sizes` becomes the `scales` it amounts to on the static graph
   (out / in, from ONNX shape inference; all 2.0 in ISNet), so H and W can vary
   (any multiple of 64: the encoder halves the image six times) and the batch axis
   with them (the graph has no Reshape).

`check_conversion` runs both graphs on the same input and compares.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper, shape_inference

INPUT = "input"
OUTPUT = "output"
# ISNet's encoder halves the image six times; H and W must be multiples of this.
SIZE_MULTIPLE = 64
NATIVE_SIZE = 1024
# Largest |converted - original| accepted on the probability output (measured: ~7e-4,
# the fp16 graph's own rounding).
TOLERANCE = 2e-3


class ConversionError(ValueError):
    """The graph is not the one this converter knows (the message names the node)."""


@dataclass
class ConversionReport:
    nodes_before: int
    nodes_after: int
    initializers_to_fp32: int
    constants_to_fp32: int
    casts_removed: int
    resizes_to_scales: int
    scales: list[float]
    outputs_dropped: list[str]

    def summary(self) -> str:
        return (
            f"fp16 -> fp32 ({self.initializers_to_fp32} initializers, "
            f"{self.constants_to_fp32} constants, {self.casts_removed} casts removed); "
            f"kept only '{OUTPUT}' (dropped {len(self.outputs_dropped)} side outputs); "
            f"{self.resizes_to_scales} Resize sizes -> scales {sorted(set(self.scales))}; "
            f"dynamic N, H, W (multiples of {SIZE_MULTIPLE}); "
            f"{self.nodes_before} -> {self.nodes_after} nodes"
        )


def _fp32_tensor(t: TensorProto) -> TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)


def _to_fp32(graph: onnx.GraphProto) -> tuple[int, int]:
    inits = 0
    for k, t in enumerate(graph.initializer):
        if t.data_type == TensorProto.FLOAT16:
            graph.initializer[k].CopyFrom(_fp32_tensor(t))
            inits += 1
    consts = 0
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT16:
                attr.t.CopyFrom(_fp32_tensor(attr.t))
                consts += 1
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT16:
                attr.i = TensorProto.FLOAT
    for vi in (*graph.value_info, *graph.input, *graph.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    return inits, consts


def _types_and_shapes(
    model: onnx.ModelProto,
) -> tuple[dict[str, int], dict[str, list[int | None]]]:
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    types: dict[str, int] = {}
    shapes: dict[str, list[int | None]] = {}
    for vi in (*g.input, *g.value_info, *g.output):
        tt = vi.type.tensor_type
        types[vi.name] = tt.elem_type
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    for t in g.initializer:
        types[t.name] = t.data_type
        shapes[t.name] = list(t.dims)
    return types, shapes


def _constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for t in graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for node in graph.node:
        if node.op_type == "Constant" and name in node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def _resize_scales(graph: onnx.GraphProto, shapes: dict[str, list[int | None]]) -> None:
    """Replace each Resize's `sizes` by `scales` of the same effect on the static graph."""
    producer = {o: n for n in graph.node for o in n.output}
    count = 0
    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        sizes = _constant_value(graph, node.input[3])
        if sizes is None:
            concat = producer.get(node.input[3])
            if concat is None or concat.op_type != "Concat":
                raise ConversionError(
                    f"Resize {node.name!r}: its sizes come from "
                    f"{concat.op_type if concat else 'nowhere'}, not a constant or a Concat"
                )
            tail = _constant_value(graph, concat.input[-1])
            if tail is None:
                raise ConversionError(f"Resize {node.name!r}: the sizes' last part is not constant")
            sizes = tail
        in_shape = shapes.get(node.input[0])
        if not in_shape or any(d is None for d in in_shape[-len(sizes) :]):
            raise ConversionError(f"Resize {node.name!r}: the input's shape is not known")
        spatial = [int(d) for d in in_shape[-len(sizes) :]]  # type: ignore[arg-type]
        ratios = [float(s) / i for s, i in zip(sizes.tolist(), spatial, strict=True)]
        scales = np.array([1.0] * (len(in_shape) - len(ratios)) + ratios, np.float32)
        name = f"{node.name or 'resize'}_scales_{count}"
        graph.initializer.append(numpy_helper.from_array(scales, name))
        while len(node.input) < 3:
            node.input.append("")
        node.input[2] = name
        del node.input[3:]
        count += 1


def _remove_noop_casts(graph: onnx.GraphProto, types: dict[str, int]) -> int:
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    keep = []
    removed = 0
    for node in graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and types.get(node.input[0]) == to:
            src, dst = node.input[0], node.output[0]
            if dst in outputs:
                rename[src] = dst  # the producer writes the graph output directly
            else:
                rename[dst] = src
            removed += 1
            continue
        keep.append(node)

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for node in keep:
        node.input[:] = [resolve(n) for n in node.input]
        node.output[:] = [resolve(n) for n in node.output]
    del graph.node[:]
    graph.node.extend(keep)
    return removed


def _toposort(graph: onnx.GraphProto) -> None:
    """Order the nodes so each comes after its inputs' producers (the package's graph
    lists them out of order, which onnxruntime accepts and shape inference does not)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        left = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                left.append(node)
        if len(left) == len(pending):
            missing = sorted({i for n in left for i in n.input if i not in ready})[:3]
            raise ConversionError(f"the graph has a cycle or dangling inputs: {missing}")
        pending = left
    del graph.node[:]
    graph.node.extend(ordered)


def _prune(graph: onnx.GraphProto) -> None:
    used = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in used for o in node.output):
            keep.append(node)
            used.update(i for i in node.input if i)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def convert(model: onnx.ModelProto) -> tuple[onnx.ModelProto, ConversionReport]:
    """The served graph from the package's (see the module docstring); raises
    ConversionError when the graph is not ISNet's shape."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    names_in = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    names_out = [o.name for o in graph.output]
    if names_in != [INPUT] or OUTPUT not in names_out:
        raise ConversionError(
            f"expected input '{INPUT}' and an output '{OUTPUT}'; the graph has inputs "
            f"{names_in} and outputs {names_out}"
        )
    nodes_before = len(graph.node)
    _toposort(graph)
    inits, consts = _to_fp32(graph)
    del graph.value_info[:]
    types, shapes = _types_and_shapes(model)
    _resize_scales(graph, shapes)
    casts = _remove_noop_casts(graph, types)
    dropped = [o.name for o in graph.output if o.name != OUTPUT]
    kept = [o for o in graph.output if o.name == OUTPUT]
    del graph.output[:]
    graph.output.extend(kept)
    _prune(graph)
    scales = [
        float(v)
        for node in graph.node
        if node.op_type == "Resize"
        for v in (_constant_value(graph, node.input[2]) if len(node.input) > 2 else [])[2:]
    ]
    resizes = sum(1 for node in graph.node if node.op_type == "Resize")
    for value in (graph.input[0], graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            raise ConversionError(f"'{value.name}' has rank {len(dims)}, expected 4 (N, C, H, W)")
        for axis, param in ((0, "N"), (2, "H"), (3, "W")):
            dims[axis].Clear()
            dims[axis].dim_param = param
    onnx.checker.check_model(model)
    left = {
        vi.name
        for vi in shape_inference.infer_shapes(model).graph.value_info
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT16
    }
    if left:
        raise ConversionError(f"fp16 tensors remain after the conversion: {sorted(left)[:5]}")
    report = ConversionReport(
        nodes_before=nodes_before,
        nodes_after=len(graph.node),
        initializers_to_fp32=inits,
        constants_to_fp32=consts,
        casts_removed=casts,
        resizes_to_scales=resizes,
        scales=scales,
        outputs_dropped=dropped,
    )
    return model, report


def convert_file(src: Path, dst: Path) -> ConversionReport:
    model, report = convert(onnx.load(str(src)))
    onnx.save(model, str(dst))
    return report


@dataclass
class CheckReport:
    size: int
    max_abs_diff: float
    seconds_original: float
    seconds_converted: float
    batch_check: str

    def summary(self) -> str:
        return (
            f"at {self.size}x{self.size} the converted output differs from the package's by "
            f"at most {self.max_abs_diff:.1e} (limit {TOLERANCE:.0e}); one inference "
            f"{self.seconds_original:.2f} s -> {self.seconds_converted:.2f} s; {self.batch_check}"
        )


def _session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _test_image(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """A normalised input with structure (a bright disc on a noisy ground), so the
    probability spans both ends instead of sitting near 0."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (min(h, w) / 3) ** 2).astype(np.float32)
    img = 0.6 * disc[None, None] + 0.2 * rng.random((n, 3, h, w), dtype=np.float32)
    return (img - 0.5).astype(np.float32)


def check_conversion(original: Path, converted: Path, size: int = NATIVE_SIZE) -> CheckReport:
    """Run both graphs at `size` on the same input and compare `output`; then run the
    converted one at batch 2 and a smaller, non-square size, checking the shape and that
    each sample's output does not depend on its batch neighbour. Raises
    ConversionError past TOLERANCE."""
    x = _test_image(1, size, size, seed=0)
    ref_sess, new_sess = _session(original), _session(converted)
    t0 = time.perf_counter()
    ref = ref_sess.run([OUTPUT], {INPUT: x})[0]
    t1 = time.perf_counter()
    got = new_sess.run([OUTPUT], {INPUT: x})[0]
    t2 = time.perf_counter()
    if got.shape != ref.shape:
        raise ConversionError(f"output shape {got.shape} != the package's {ref.shape}")
    diff = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
    if not diff <= TOLERANCE:
        raise ConversionError(
            f"the converted model's output differs from the package's by {diff:.2e} "
            f"(limit {TOLERANCE:.0e}) at {size}x{size}"
        )
    h, w = 2 * SIZE_MULTIPLE, 3 * SIZE_MULTIPLE
    pair = _test_image(2, h, w, seed=1)
    both = new_sess.run([OUTPUT], {INPUT: pair})[0]
    one = new_sess.run([OUTPUT], {INPUT: pair[1:]})[0]
    if both.shape != (2, 1, h, w):
        raise ConversionError(
            f"at batch 2, {h}x{w} the output is {both.shape}, not (2, 1, {h}, {w})"
        )
    cross = float(np.abs(both[1:] - one).max())
    if cross > 1e-4:
        raise ConversionError(f"a sample's output depends on its batch neighbour ({cross:.1e})")
    return CheckReport(
        size=size,
        max_abs_diff=diff,
        seconds_original=t1 - t0,
        seconds_converted=t2 - t1,
        batch_check=f"batch 2 at {h}x{w} gives (2, 1, {h}, {w})",
    )


def prepare(source: Path, out: Path) -> dict[str, object]:
    """packages.py's converter for ISNet: convert `source` into `out`, check it against
    `source`, and return the report recorded in the provenance."""
    report = convert_file(source, out)
    check = check_conversion(source, out)
    return {
        "summary": report.summary(),
        "check": check.summary(),
        "steps": asdict(report),
        "max_abs_diff": check.max_abs_diff,
        "tolerance": TOLERANCE,
    }
