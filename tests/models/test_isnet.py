"""The ISNet converter (services/models/isnet.py): on a tiny fp16 graph with the
package's patterns, and on the real converted model when the cache holds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from services.common.settings import CommonSettings
from services.models import isnet
from services.models.contracts import resolve
from services.models.packages import ONNX_FILE, PACKAGED, cache_entry, read_cache
from services.models.signature import check_signature, read_signature
from services.models.testmodels import make_test_models
from tests.models.package_fixtures import fp16_isnet_like


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"input": x})[0]


@pytest.fixture(scope="module")
def converted(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, isnet.ConversionReport]:
    d = tmp_path_factory.mktemp("isnet")
    src = fp16_isnet_like(d / "src.onnx", size=256)
    dst = d / "out.onnx"
    return src, dst, isnet.convert_file(src, dst)


def test_conversion_keeps_the_output(converted: tuple[Path, Path, isnet.ConversionReport]) -> None:
    src, dst, _ = converted
    x = np.random.default_rng(3).random((1, 3, 256, 256), dtype=np.float32) - 0.5
    ref, got = _run(src, x), _run(dst, x)
    assert got.shape == ref.shape == (1, 1, 256, 256)
    assert float(np.abs(got - ref).max()) < 1e-3
    assert got.std() > 0.01  # the comparison compared something


def test_conversion_is_fp32_output_only_and_resize_by_scales(
    converted: tuple[Path, Path, isnet.ConversionReport],
) -> None:
    _, dst, report = converted
    model = onnx.load(str(dst))
    g = model.graph
    assert [o.name for o in g.output] == ["output"]
    assert all(t.data_type != TensorProto.FLOAT16 for t in g.initializer)
    assert not [n for n in g.node if n.op_type == "Cast"]
    resize = next(n for n in g.node if n.op_type == "Resize")
    assert len(resize.input) == 3 and resize.input[2]
    scales = next(t for t in g.initializer if t.name == resize.input[2])
    assert list(onnx.numpy_helper.to_array(scales)) == [1.0, 1.0, 2.0, 2.0]
    # The side output's Cast and the Shape/Slice/Concat that fed the baked sizes are gone.
    assert not [n for n in g.node if n.op_type in ("Shape", "Slice", "Concat")]
    assert report.outputs_dropped == ["d1"]
    assert report.initializers_to_fp32 == 3 and report.constants_to_fp32 == 1
    assert report.resizes_to_scales == 1 and report.scales == [2.0, 2.0]
    sig = read_signature(dst)
    assert sig.input("input").dims == ("N", 3, "H", "W")
    assert sig.output("output").dims == ("N", 1, "H", "W")
    check_signature(sig, resolve("matting_isnet"))


def test_converted_model_takes_other_sizes_and_batches(
    converted: tuple[Path, Path, isnet.ConversionReport],
) -> None:
    _, dst, _ = converted
    x = np.random.default_rng(4).random((3, 3, 128, 192), dtype=np.float32)
    both = _run(dst, x)
    assert both.shape == (3, 1, 128, 192)
    np.testing.assert_allclose(both[2:], _run(dst, x[2:]), atol=1e-5)


def test_check_conversion_passes_and_reports(
    converted: tuple[Path, Path, isnet.ConversionReport],
) -> None:
    src, dst, _ = converted
    check = isnet.check_conversion(src, dst, size=256)
    assert check.max_abs_diff < 1e-3
    assert "batch 2" in check.batch_check


def test_check_conversion_refuses_a_different_model(tmp_path: Path) -> None:
    a = fp16_isnet_like(tmp_path / "a.onnx", size=256, seed=0)
    b = fp16_isnet_like(tmp_path / "b.onnx", size=256, seed=1)
    out = tmp_path / "b32.onnx"
    isnet.convert_file(b, out)
    with pytest.raises(isnet.ConversionError, match="differs from the package's"):
        isnet.check_conversion(a, out, size=256)


def test_a_graph_without_output_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["mask"])],
        "other",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    with pytest.raises(isnet.ConversionError, match="expected input 'input'"):
        isnet.convert(model)


def test_stand_in_has_the_contract_signature(tmp_path: Path) -> None:
    path = make_test_models(tmp_path, names=["matting_isnet"])["matting_isnet_onnx"]
    check_signature(read_signature(path), resolve("matting_isnet"))
    x = np.random.default_rng(0).random((2, 3, 128, 192), dtype=np.float32) - 0.5
    y = _run(path, x)
    assert y.shape == (2, 1, 128, 192)
    assert 0.0 <= y.min() and y.max() <= 1.0


def test_real_converted_model_matches_the_package_at_1024() -> None:
    """The provisioned model (from the cache `make test` fills) against the package's
    own graph at its native 1024 x 1024."""
    cache = CommonSettings().cache_dir
    assert cache is not None
    p = PACKAGED["isnet"]
    entry = cache_entry(cache, p)
    if read_cache(entry, p) is None or not (entry / p.source.filename).is_file():
        pytest.skip(f"ISNet is not in the cache ({entry}): `lightbox models fetch isnet`")
    check = isnet.check_conversion(entry / p.source.filename, entry / ONNX_FILE)
    assert check.max_abs_diff <= 1e-3
