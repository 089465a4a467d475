"""Tiny stand-ins for a registry package that ships a chunked model: an fp16 graph with
ISNet's patterns, an npm-style tarball of it, and a fake `npm` that records its calls.

The graph has what the converter has to handle in the real package: a float32
interface around fp16 internals (boundary Casts, fp16 initializers and an fp16
Constant), a Resize whose target size is baked in as Concat(Slice(Shape(x)),
Constant[h, w]), a side output besides `output`, and nodes listed out of order."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from services.models.packages import PACKAGED, ChunkedResource, PackagedModel

PACKAGE = "@lightbox-test/tiny-isnet-data"
VERSION = "0.1.0"
RESOURCE = "/models/medium"
LICENCE = "# GNU Affero General Public License\n(test copy)\n"
THIRD_PARTY = json.dumps({"ISNET": {"type": "model", "license": "MIT"}})


def fp16_isnet_like(path: Path, size: int = 1024, seed: int = 0) -> Path:
    """input float32 [1,3,S,S] -> Cast fp16 -> Conv -> Relu -> MaxPool/2 -> Conv -> Resize
    back to S (sizes baked) -> Add fp16 Constant -> Sigmoid -> Cast float32 `output`
    [1,1,S,S]; side output `d1` [1,1,S/2,S/2]."""
    rng = np.random.default_rng(seed)
    f16 = np.float16
    inits = [
        numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.5).astype(f16), "w1"),
        numpy_helper.from_array((rng.standard_normal(4) * 0.1).astype(f16), "b1"),
        numpy_helper.from_array((rng.standard_normal((1, 4, 3, 3)) * 0.5).astype(f16), "w2"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([2], np.int64), "two"),
    ]
    hw = numpy_helper.from_array(np.array([size, size], np.int64), "hw")
    bias = numpy_helper.from_array(np.array([0.25], f16), "k")
    nodes = [
        helper.make_node("Cast", ["input"], ["x16"], to=TensorProto.FLOAT16, name="cast_in"),
        helper.make_node("Conv", ["x16", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Shape", ["c2"], ["shape"], name="shape"),
        helper.make_node("Slice", ["shape", "zero", "two"], ["nc"], name="slice"),
        helper.make_node("Constant", [], ["hw_c"], value=hw, name="hw_const"),
        helper.make_node("Concat", ["nc", "hw_c"], ["sizes"], axis=0, name="concat"),
        helper.make_node("Resize", ["c2", "", "", "sizes"], ["up"], mode="linear", name="resize"),
        helper.make_node("Constant", [], ["k_c"], value=bias, name="bias_const"),
        helper.make_node("Add", ["up", "k_c"], ["biased"], name="add"),
        helper.make_node("Sigmoid", ["biased"], ["prob"], name="sigmoid"),
        helper.make_node("Cast", ["prob"], ["output"], to=TensorProto.FLOAT, name="cast_out"),
        helper.make_node("Cast", ["c2"], ["d1"], to=TensorProto.FLOAT, name="cast_side"),
    ]
    # The package lists its nodes out of order; onnxruntime does not mind, ONNX tools do.
    nodes = nodes[5:] + nodes[:5]
    graph = helper.make_graph(
        nodes,
        "tiny-isnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [
            helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, size, size]),
            helper.make_tensor_value_info("d1", TensorProto.FLOAT, [1, 1, size // 2, size // 2]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def package_files(model: bytes, chunk: int = 1000) -> dict[str, bytes]:
    """The files of an @imgly-style data package holding `model` under RESOURCE."""
    chunks, index = [], []
    for start in range(0, len(model), chunk):
        piece = model[start : start + chunk]
        digest = hashlib.sha256(piece).hexdigest()
        chunks.append((digest, piece))
        index.append({"hash": digest, "offsets": [start, start + len(piece)]})
    resources = {
        "/onnxruntime-web/ort-wasm.wasm": {"chunks": [], "size": 0, "mime": "application/wasm"},
        RESOURCE: {"chunks": index, "size": len(model), "mime": "application/octet-steam"},
    }
    files = {
        "package/package.json": json.dumps({"name": PACKAGE, "version": VERSION}).encode(),
        "package/LICENSE.md": LICENCE.encode(),
        "package/ThirdPartyLicenses.json": THIRD_PARTY.encode(),
        "package/dist/resources.json": json.dumps(resources).encode(),
    }
    for digest, piece in chunks:
        files[f"package/dist/{digest}"] = piece
    return files


def write_tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            _add(tar, name, data)
    return path


def packaged_model(tarball: Path, name: str = "tiny") -> PackagedModel:
    """A PACKAGED entry for the tiny package, its integrity pinned to `tarball`."""
    return replace(
        PACKAGED["isnet"],
        name=name,
        package=PACKAGE,
        version=VERSION,
        integrity=sri(tarball.read_bytes()),
        source=ChunkedResource(RESOURCE),
    )


def fake_npm(
    bin_dir: Path,
    log: Path,
    *,
    tarball: Path | None,
    fail: str = "",
    reported_integrity: str | None = None,
) -> Path:
    """An `npm` on `bin_dir` that appends its argv to `log` (one JSON line per call), then
    copies `tarball` to --pack-destination and prints npm's JSON report, or with `fail`
    prints it to stderr and exits 1 (as npm does when the registry is unreachable)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    integrity = reported_integrity or (sri(tarball.read_bytes()) if tarball else "")
    script = f"""#!{sys.executable}
import json, shutil, sys
from pathlib import Path
with open({str(log)!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if {fail!r}:
    print({fail!r}, file=sys.stderr)
    sys.exit(1)
dest = Path(sys.argv[sys.argv.index("--pack-destination") + 1])
src = Path({str(tarball)!r})
name = "lightbox-test-tiny-isnet-data-0.1.0.tgz"
shutil.copyfile(src, dest / name)
print(json.dumps([{{"id": sys.argv[2], "filename": name, "integrity": {integrity!r}}}]))
"""
    npm = bin_dir / "npm"
    npm.write_text(script)
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    return npm


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def path_without_npm() -> str:
    """PATH with every folder holding an `npm` left out."""
    keep = [
        d for d in os.environ.get("PATH", "").split(os.pathsep) if not (Path(d) / "npm").exists()
    ]
    return os.pathsep.join(keep)
