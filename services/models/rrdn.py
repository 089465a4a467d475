"""ESRGAN super-resolution as the npm package `@upscalerjs/esrgan-thick` ships it
(TensorFlow.js layers models of idealo's RRDN), turned into the ONNX file Lightbox
serves as `upscale_rrdn_onnx` (the package's 4x model; the converter takes any of its
scales).

A layers model is `model.json` (a Keras functional topology plus a `weightsManifest`
naming every weight with its shape and dtype, in the order the shards hold them) and
its binary shards. The topology uses six layer classes, each mapped here to ONNX:

| Keras (NHWC)                         | ONNX (NCHW)                                   |
|--------------------------------------|-----------------------------------------------|
| InputLayer [None, None, None, 3]     | graph input `input` float32 [N, 3, H, W]      |
| Conv2D, "same", stride 1, linear     | Conv, symmetric pads k//2, kernel HWIO->OIHW  |
| Activation relu                      | Relu                                          |
| Concatenate axis 3 (or -1)           | Concat axis 1                                 |
| Add                                  | Add (or Sum for more than two)                |
| MultiplyBeta (the package's, x 0.2)  | Mul by a 0.2 constant                         |
| PixelShuffle{s}x (tf.depthToSpace)   | DepthToSpace blocksize s, mode DCR            |

TensorFlow's depth-to-space in NHWC reads channel (i*s + j)*C + c into output pixel
(h*s + i, w*s + j) channel c; ONNX DepthToSpace in DCR mode does the same in NCHW, so no
channel reshuffle is needed. Input and output are RGB in [0, 1] (the package's
`inputRange`/`outputRange`); the output is not clipped by the model (the tiled front
clips). Anything else in a topology (another layer class, a non-linear Conv activation,
strides, dilation) is refused with the layer's name rather than guessed.

`reference_forward` evaluates the same topology directly in NHWC with numpy, from the
Keras config and weights: an independent path used to check each conversion (the parity
against the package's own TensorFlow.js runtime is in tests/models/test_rrdn.py and
bench/upscale_bench.py, which run the original model under Node.js).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT = "input"
OUTPUT = "output"
BETA = 0.2  # MultiplyBeta's constant in the package's dist/ code
MODEL_JSON = "model.json"  # member of the assembled source holding the topology
EXAMPLE_IN, EXAMPLE_OUT = "example/input.png", "example/output.png"
# The package's published example output against ours, in 8-bit levels: the largest
# difference allowed (rounding), and the mean (measured: max 1, mean 2e-5).
EXAMPLE_MAX_LEVELS = 2
EXAMPLE_MEAN_LEVELS = 0.01
# Largest |onnx - numpy reference| accepted on [0, 1] outputs (float32 rounding over
# ~150 convolutions: measured ~1e-6).
TOLERANCE = 1e-4
OPSET = 17
KNOWN = {"InputLayer", "Conv2D", "Activation", "Concatenate", "Add", "MultiplyBeta"}


class ConversionError(ValueError):
    """The layers model is not one this converter knows (the message names the layer)."""


# --- the package's layout: model.json + shards -> one checked source file -----------


@dataclass(frozen=True)
class LayersModel:
    """A TensorFlow.js layers model inside a package (`models/x4/model.json` and the
    shards its weightsManifest lists). `assemble` checks every shard is there and that
    their bytes add up to the weights the manifest declares, and writes one zip file
    (`model.json` + `weights.bin`, the shards concatenated in manifest order)."""

    path: str  # model.json inside the package
    # The package's own published example, when it ships one: a low-resolution photo
    # and the model's output for it (UpscalerJS's assets/fixture.png and
    # assets/samples/<s>x/result.png). Kept in the source; `prepare` checks the
    # converted model reproduces the output.
    example_input: str = ""
    example_output: str = ""
    filename: str = "source.zip"

    @property
    def resource(self) -> str:
        return self.path

    def assemble(self, package: Path, out: Path) -> dict[str, Any]:
        from services.models.packages import ProvisionError

        model_path = package / self.path
        if not model_path.is_file():
            raise ProvisionError(f"the package has no {self.path}")
        text = model_path.read_bytes()
        try:
            manifest = json.loads(text)
            groups = manifest["weightsManifest"]
            specs = [w for g in groups for w in g["weights"]]
            paths = [p for g in groups for p in g["paths"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProvisionError(
                f"{self.path} is not a TensorFlow.js layers model: {exc}"
            ) from None
        want = 0
        for w in specs:
            if w.get("dtype") != "float32" or "quantization" in w:
                raise ProvisionError(
                    f"{self.path}: weight {w.get('name')} is {w.get('dtype')}"
                    f"{' quantised' if 'quantization' in w else ''}; only float32 is read"
                )
            want += 4 * int(np.prod(w["shape"], dtype=np.int64))
        blob = io.BytesIO()
        digest = hashlib.sha256(text)
        for name in paths:
            shard = model_path.parent / name
            if "/" in name or not shard.is_file():
                raise ProvisionError(f"{self.path}: shard {name!r} is missing")
            data = shard.read_bytes()
            digest.update(data)
            blob.write(data)
        if blob.tell() != want:
            raise ProvisionError(
                f"{self.path}: the {len(paths)} shards hold {blob.tell()} bytes; the manifest's "
                f"{len(specs)} float32 weights need {want}"
            )
        examples = {}
        for member, name in ((EXAMPLE_IN, self.example_input), (EXAMPLE_OUT, self.example_output)):
            if name:
                if not (package / name).is_file():
                    raise ProvisionError(f"the package has no {name}")
                examples[member] = (package / name).read_bytes()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            z.writestr(MODEL_JSON, text)
            z.writestr("weights.bin", blob.getvalue())
            for member, data in examples.items():
                z.writestr(member, data)
        return {
            "resource": self.path,
            "shards": len(paths),
            "weights": len(specs),
            "bytes": want,
            "sha256": digest.hexdigest(),  # model.json then the shards, in manifest order
        }


def read_source(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The topology (model.json) and the weights by name from an assembled source."""
    with zipfile.ZipFile(path) as z:
        model = json.loads(z.read(MODEL_JSON))
        data = z.read("weights.bin")
    weights: dict[str, np.ndarray] = {}
    offset = 0
    for group in model["weightsManifest"]:
        for w in group["weights"]:
            n = int(np.prod(w["shape"], dtype=np.int64))
            weights[w["name"]] = (
                np.frombuffer(data, np.float32, n, offset).reshape(w["shape"]).copy()
            )
            offset += 4 * n
    return model, weights


# --- the topology ------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    kind: str
    name: str
    inputs: tuple[str, ...]
    config: dict[str, Any]


def layers_of(model: dict[str, Any]) -> tuple[list[Layer], str, str, int]:
    """The layers in graph order, the input and output layer names, and the pixel
    shuffle's scale. Raises ConversionError for anything this converter does not know."""
    try:
        config = model["modelTopology"]["model_config"]["config"]
        raw = config["layers"]
        (input_name,) = [x[0] for x in config["input_layers"]]
        (output_name,) = [x[0] for x in config["output_layers"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConversionError(
            f"not a single-input, single-output functional model: {exc}"
        ) from None
    layers: list[Layer] = []
    scale = 0
    for item in raw:
        kind, name, cfg = item["class_name"], item["name"], item.get("config", {})
        nodes = item.get("inbound_nodes", [])
        if len(nodes) > 1:
            raise ConversionError(f"layer {name} is shared ({len(nodes)} call sites)")
        inputs = tuple(str(x[0]) for x in nodes[0]) if nodes else ()
        if kind.startswith("PixelShuffle"):
            scale = int(cfg.get("scale") or kind.removeprefix("PixelShuffle").removesuffix("x"))
            if kind != f"PixelShuffle{scale}x":
                raise ConversionError(f"layer {name}: {kind} with scale {scale}")
            kind = "PixelShuffle"
        elif kind not in KNOWN:
            raise ConversionError(f"layer {name}: class {kind} is not one this converter knows")
        if kind == "Conv2D":
            bad = {
                "padding": cfg.get("padding") != "same",
                "strides": list(cfg.get("strides", [1, 1])) != [1, 1],
                "dilation_rate": list(cfg.get("dilation_rate", [1, 1])) != [1, 1],
                "activation": cfg.get("activation", "linear") != "linear",
                "data_format": cfg.get("data_format", "channels_last") != "channels_last",
                "kernel_size": any(k % 2 == 0 for k in cfg.get("kernel_size", [3, 3])),
                "groups": int(cfg.get("groups", 1)) != 1,
            }
            if any(bad.values()):
                raise ConversionError(
                    f"layer {name}: Conv2D with unsupported {[k for k, v in bad.items() if v]}"
                )
        if kind == "Activation" and cfg.get("activation") != "relu":
            raise ConversionError(f"layer {name}: activation {cfg.get('activation')!r}")
        if kind == "Concatenate" and cfg.get("axis") not in (3, -1):
            raise ConversionError(f"layer {name}: Concatenate on axis {cfg.get('axis')}")
        layers.append(Layer(kind, name, inputs, cfg))
    if scale == 0:
        raise ConversionError("the model has no PixelShuffle layer; its scale is unknown")
    return layers, input_name, output_name, scale


def _weight(weights: dict[str, np.ndarray], layer: Layer, which: str) -> np.ndarray:
    key = f"{layer.name}/{which}"
    if key not in weights:
        raise ConversionError(f"layer {layer.name}: weight {key} is not in the manifest")
    return weights[key]


# --- to ONNX -----------------------------------------------------------------------


@dataclass
class ConversionReport:
    layers: dict[str, int]
    scale: int
    parameters: int
    nodes: int

    def summary(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.layers.items()))
        return (
            f"TensorFlow.js layers model ({counts}) -> ONNX opset {OPSET}, NCHW float32, "
            f"{self.parameters:,} parameters, x{self.scale}, dynamic N, H, W; "
            f"{self.nodes} nodes"
        )


def convert(
    model: dict[str, Any], weights: dict[str, np.ndarray]
) -> tuple[onnx.ModelProto, ConversionReport]:
    layers, input_name, output_name, scale = layers_of(model)
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = [numpy_helper.from_array(np.array(BETA, np.float32), "beta")]
    names: dict[str, str] = {}  # Keras layer -> ONNX tensor
    counts: dict[str, int] = {}
    params = 0
    used: set[str] = set()
    for layer in layers:
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        if layer.kind == "InputLayer":
            shape = layer.config.get("batch_input_shape")
            if shape is not None and list(shape)[1:] not in ([None, None, 3], [None, None, None]):
                raise ConversionError(f"input {layer.name} has shape {shape}")
            names[layer.name] = INPUT
            continue
        try:
            args = [names[i] for i in layer.inputs]
        except KeyError as exc:
            raise ConversionError(f"layer {layer.name} reads {exc} before it is made") from None
        out = OUTPUT if layer.name == output_name else layer.name
        if layer.kind == "Conv2D":
            kernel = _weight(weights, layer, "kernel")
            kh, kw = kernel.shape[:2]
            w_name, b_name = f"{layer.name}/W", f"{layer.name}/B"
            inits.append(
                numpy_helper.from_array(
                    np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), np.float32), w_name
                )
            )
            conv_in = [args[0], w_name]
            params += kernel.size
            used.add(f"{layer.name}/kernel")
            if layer.config.get("use_bias", True):
                bias = _weight(weights, layer, "bias")
                inits.append(numpy_helper.from_array(bias.astype(np.float32), b_name))
                conv_in.append(b_name)
                params += bias.size
                used.add(f"{layer.name}/bias")
            nodes.append(
                helper.make_node(
                    "Conv",
                    conv_in,
                    [out],
                    name=layer.name,
                    kernel_shape=[kh, kw],
                    pads=[kh // 2, kw // 2, kh // 2, kw // 2],
                    strides=[1, 1],
                )
            )
        elif layer.kind == "Activation":
            nodes.append(helper.make_node("Relu", args, [out], name=layer.name))
        elif layer.kind == "Concatenate":
            nodes.append(helper.make_node("Concat", args, [out], name=layer.name, axis=1))
        elif layer.kind == "Add":
            op = "Add" if len(args) == 2 else "Sum"
            nodes.append(helper.make_node(op, args, [out], name=layer.name))
        elif layer.kind == "MultiplyBeta":
            nodes.append(helper.make_node("Mul", [args[0], "beta"], [out], name=layer.name))
        elif layer.kind == "PixelShuffle":
            nodes.append(
                helper.make_node(
                    "DepthToSpace", args, [out], name=layer.name, blocksize=scale, mode="DCR"
                )
            )
        names[layer.name] = out
    unused = sorted(set(weights) - used)
    if unused:
        raise ConversionError(f"weights no layer reads: {unused[:5]}")
    graph = helper.make_graph(
        nodes,
        "rrdn",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [
            helper.make_tensor_value_info(
                OUTPUT, TensorProto.FLOAT, ["N", 3, f"{scale}H", f"{scale}W"]
            )
        ],
        initializer=inits,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="lightbox services.models.rrdn",
    )
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    return onnx_model, ConversionReport(counts, scale, params, len(nodes))


# --- an independent evaluation, for the checks --------------------------------------


def _conv_nhwc(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """'same' convolution of x [N, H, W, Ci] with an HWIO kernel, by shifted matmuls."""
    kh, kw, _, co = kernel.shape
    ph, pw = kh // 2, kw // 2
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    out = np.zeros((n, h, w, co), np.float32)
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i : i + h, j : j + w, :] @ kernel[i, j]
    if bias is not None:
        out += bias
    return out


def _depth_to_space_nhwc(x: np.ndarray, s: int) -> np.ndarray:
    n, h, w, c = x.shape
    co = c // (s * s)
    return x.reshape(n, h, w, s, s, co).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * s, w * s, co)


def reference_forward(
    model: dict[str, Any], weights: dict[str, np.ndarray], x_nhwc: np.ndarray
) -> np.ndarray:
    """The layers model evaluated in NHWC with numpy, following the Keras semantics of
    each layer (float32 [N, H, W, 3] in [0, 1] -> [N, sH, sW, 3])."""
    layers, _, output_name, scale = layers_of(model)
    values: dict[str, np.ndarray] = {}
    for layer in layers:
        if layer.kind == "InputLayer":
            values[layer.name] = x_nhwc.astype(np.float32)
            continue
        args = [values[i] for i in layer.inputs]
        if layer.kind == "Conv2D":
            bias = _weight(weights, layer, "bias") if layer.config.get("use_bias", True) else None
            y = _conv_nhwc(args[0], _weight(weights, layer, "kernel"), bias)
        elif layer.kind == "Activation":
            y = np.maximum(args[0], 0)
        elif layer.kind == "Concatenate":
            y = np.concatenate(args, axis=3)
        elif layer.kind == "Add":
            y = np.sum(args, axis=0)
        elif layer.kind == "MultiplyBeta":
            y = args[0] * np.float32(BETA)
        else:
            y = _depth_to_space_nhwc(args[0], scale)
        values[layer.name] = y
    return values[output_name]


# --- checks and the packages.py hook ------------------------------------------------


def session(path: Path | bytes, threads: int = 0):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        str(path) if isinstance(path, Path) else path, options, providers=["CPUExecutionProvider"]
    )


@dataclass
class CheckReport:
    shapes: list[list[int]]
    max_abs_diff: float
    seconds: float

    def summary(self) -> str:
        return (
            f"against a numpy evaluation of the layers model on inputs "
            f"{', '.join('x'.join(map(str, s)) for s in self.shapes)}: max |diff| "
            f"{self.max_abs_diff:.1e} (limit {TOLERANCE:.0e}); {self.seconds:.1f} s"
        )


def test_input(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """NHWC float32 in [0, 1] with edges and texture (a bright square on noise)."""
    rng = np.random.default_rng(seed)
    x = 0.3 + 0.2 * rng.random((n, h, w, 3), dtype=np.float32)
    x[:, h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] += 0.4
    return np.clip(x, 0, 1).astype(np.float32)


def check_conversion(
    model: dict[str, Any], weights: dict[str, np.ndarray], converted: Path
) -> CheckReport:
    """The ONNX file against `reference_forward` on two small inputs (batch 2 and a
    non-square one); raises ConversionError past TOLERANCE or on a wrong shape."""
    t0 = time.perf_counter()
    sess = session(converted)
    scale = layers_of(model)[3]
    worst, shapes = 0.0, []
    for n, h, w, seed in ((2, 12, 12, 0), (1, 9, 14, 1)):
        x = test_input(n, h, w, seed)
        got = sess.run([OUTPUT], {INPUT: x.transpose(0, 3, 1, 2)})[0]
        if got.shape != (n, 3, h * scale, w * scale):
            raise ConversionError(f"for {n}x3x{h}x{w} the model answered {list(got.shape)}")
        ref = reference_forward(model, weights, x).transpose(0, 3, 1, 2)
        worst = max(worst, float(np.abs(got.astype(np.float64) - ref).max()))
        shapes.append([n, 3, h, w])
    if not worst <= TOLERANCE:
        raise ConversionError(
            f"the ONNX model differs from the layers model by {worst:.2e} (limit {TOLERANCE:.0e})"
        )
    return CheckReport(shapes, worst, time.perf_counter() - t0)


def _png(data: bytes) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3:
        raise ConversionError("the package's example is not a colour PNG")
    return np.ascontiguousarray(cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB))


def upscale_whole(sess: Any, rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB through the ONNX model in one piece, rounded the way the package does
    (clip to [0, 1], x 255, nearest)."""
    x = (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    y = sess.run([OUTPUT], {INPUT: x})[0][0].transpose(1, 2, 0)
    return (np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def check_example(source: Path, converted: Path) -> str | None:
    """The converted model on the package's own example photo against the output the
    package publishes for it; None when the source carries no example. Raises
    ConversionError past EXAMPLE_MAX_LEVELS / EXAMPLE_MEAN_LEVELS."""
    with zipfile.ZipFile(source) as z:
        names = set(z.namelist())
        if not {EXAMPLE_IN, EXAMPLE_OUT} <= names:
            return None
        given, published = _png(z.read(EXAMPLE_IN)), _png(z.read(EXAMPLE_OUT))
    ours = upscale_whole(session(converted), given)
    if ours.shape != published.shape:
        raise ConversionError(
            f"on the package's example ({given.shape[1]}x{given.shape[0]}) the model gives "
            f"{ours.shape[1]}x{ours.shape[0]}; the package published {published.shape[1]}x"
            f"{published.shape[0]}"
        )
    diff = np.abs(ours.astype(np.int16) - published.astype(np.int16))
    worst, mean = int(diff.max()), float(diff.mean())
    if worst > EXAMPLE_MAX_LEVELS or mean > EXAMPLE_MEAN_LEVELS:
        raise ConversionError(
            f"on the package's example the model differs from the published output by up to "
            f"{worst} levels (mean {mean:.3f}; limits {EXAMPLE_MAX_LEVELS}, {EXAMPLE_MEAN_LEVELS})"
        )
    return (
        f"on the package's own example ({given.shape[1]}x{given.shape[0]} -> "
        f"{ours.shape[1]}x{ours.shape[0]}) it reproduces the published output within "
        f"{worst} level(s) (mean {mean:.1e})"
    )


def prepare(source: Path, out: Path) -> dict[str, object]:
    """packages.py's converter for the RRDN models: build the ONNX file from the
    assembled layers model, check it against a numpy evaluation of the layers model and
    against the package's own published example, and return the report kept in the
    provenance."""
    model, weights = read_source(source)
    onnx_model, report = convert(model, weights)
    onnx.save(onnx_model, str(out))
    check = check_conversion(model, weights, out)
    example = check_example(source, out)
    return {
        "summary": report.summary(),
        "check": check.summary() + (f"; {example}" if example else ""),
        "steps": asdict(report),
        "max_abs_diff": check.max_abs_diff,
        "tolerance": TOLERANCE,
        "example": example,
    }


# --- tiny random-weight models of the same architecture, for tests ------------------


def tiny_layers_model(
    scale: int, seed: int = 0, *, c: int = 2, d: int = 1, g: int = 4, g0: int = 8, t: int = 2
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """An RRDN layers model (model.json dict, weights by name) with the package's layer
    names and wiring at toy sizes (C convolutions per dense block, D blocks per RRDB,
    T RRDBs, G growth, G0 features) and seeded random weights: what the test stand-ins
    and the converter's tests are made from."""
    rng = np.random.default_rng(seed)
    layers: list[dict[str, Any]] = []
    weights: dict[str, np.ndarray] = {}
    specs: list[dict[str, Any]] = []
    betas = iter(range(10**6))

    def add(kind: str, name: str, inputs: list[str], **config: Any) -> str:
        nodes = [[[i, 0, 0, {}] for i in inputs]] if inputs else []
        layers.append(
            {
                "class_name": kind,
                "name": name,
                "config": {"name": name, **config},
                "inbound_nodes": nodes,
            }
        )
        return name

    def conv(name: str, src: str, cin: int, cout: int) -> str:
        for part, shape, std in (
            ("kernel", (3, 3, cin, cout), (2.0 / (9 * cin)) ** 0.5),
            ("bias", (cout,), 0.01),
        ):
            weights[f"{name}/{part}"] = (rng.standard_normal(shape) * std).astype(np.float32)
            specs.append({"name": f"{name}/{part}", "shape": list(shape), "dtype": "float32"})
        return add(
            "Conv2D",
            name,
            [src],
            filters=cout,
            kernel_size=[3, 3],
            strides=[1, 1],
            padding="same",
            data_format="channels_last",
            dilation_rate=[1, 1],
            activation="linear",
            use_bias=True,
        )

    def beta(src: str) -> str:
        k = next(betas)
        return add("MultiplyBeta", f"multiply_beta{'_' + str(k) if k else ''}", [src])

    x = add("InputLayer", "LR_input", [], batch_input_shape=[None, None, None, 3])
    pre = conv("Pre_blocks_conv", x, 3, g0)
    rrdb_in = pre
    for ti in range(1, t + 1):
        rdb_in = rrdb_in
        for di in range(1, d + 1):
            cat, width = rdb_in, g0
            for ci in range(1, c + 1):
                f = conv(f"F_{ti}_{di}_{ci}", cat, width, g)
                f = add("Activation", f"F_{ti}_{di}_{ci}_Relu", [f], activation="relu")
                cat = add("Concatenate", f"RDB_Concat_{ti}_{di}_{ci}", [cat, f], axis=3)
                width += g
            lff = conv(f"LFF_{ti}_{di}", cat, width, g0)
            rdb_in = add("Add", f"LRL_{ti}_{di}", [rdb_in, beta(lff)])
        rrdb_in = add("Add", f"RRDB_{ti}_out", [rrdb_in, beta(rdb_in)])
    post = conv("post_blocks_conv", rrdb_in, g0, g0)
    grl = add("Add", "GRL", [post, pre])
    shuffle_in = conv("PreShuffle", grl, g0, 3 * scale * scale)
    shuffled = add(f"PixelShuffle{scale}x", "pixel_shuffle", [shuffle_in], scale=scale)
    conv("SR", shuffled, 3, 3)
    model = {
        "format": "layers-model",
        "modelTopology": {
            "model_config": {
                "class_name": "Functional",
                "config": {
                    "name": "tiny_rrdn",
                    "layers": layers,
                    "input_layers": [["LR_input", 0, 0]],
                    "output_layers": [["SR", 0, 0]],
                },
            }
        },
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": specs}],
    }
    return model, weights


def write_layers_model(model: dict[str, Any], weights: dict[str, np.ndarray], folder: Path) -> None:
    """`model.json` and its one shard in `folder`, laid out as the package ships them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_JSON).write_text(json.dumps(model))
    (folder / model["weightsManifest"][0]["paths"][0]).write_bytes(
        b"".join(weights[w["name"]].tobytes() for w in model["weightsManifest"][0]["weights"])
    )
