"""The ESRGAN (RRDN) converter and its provisioning (services/models/rrdn.py): toy models
of the architecture against a numpy evaluation, refusals naming the layer, a package laid
out like the real one fetched and installed, the package's own example as a check, and
the real provisioned model against the original TensorFlow.js runtime (Node.js,
`@tensorflow/tfjs`)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest

from services.common.settings import CommonSettings
from services.models import cli, packages, rrdn
from services.samples.photos import load_photo
from tests.models.package_fixtures import (
    calls,
    fake_npm,
    path_without_npm,
    sri,
    write_tarball,
)

TFJS = "@tensorflow/tfjs@4.22.0"
REFERENCE_JS = Path(__file__).with_name("tfjs_reference.js")
# The converted graph against TensorFlow.js's CPU kernels (measured: 6e-7).
TFJS_TOLERANCE = 1e-4


def _convert(model: dict[str, Any], weights: dict[str, np.ndarray], path: Path) -> Path:
    onnx.save(rrdn.convert(model, weights)[0], str(path))
    return path


@pytest.mark.parametrize("scale", [2, 4])
def test_a_toy_rrdn_converts_and_matches_the_layers_model(scale: int, tmp_path: Path) -> None:
    model, weights = rrdn.tiny_layers_model(scale, seed=scale, c=3, d=2, t=2)
    path = _convert(model, weights, tmp_path / "m.onnx")
    check = rrdn.check_conversion(model, weights, path)
    assert check.max_abs_diff < 1e-5
    # Any size, any batch: the graph has no fixed spatial size.
    sess = rrdn.session(path)
    x = rrdn.test_input(3, 7, 11, seed=5)
    y = sess.run(["output"], {"input": x.transpose(0, 3, 1, 2)})[0]
    assert y.shape == (3, 3, 7 * scale, 11 * scale)
    ref = rrdn.reference_forward(model, weights, x).transpose(0, 3, 1, 2)
    assert np.abs(y - ref).max() < 1e-5


def test_the_pixel_shuffle_is_tensorflows_depth_to_space() -> None:
    # Channel (i*s + j)*C + c of input pixel (h, w) lands at (h*s + i, w*s + j), channel c.
    x = np.arange(2 * 3 * 12, dtype=np.float32).reshape(1, 2, 3, 12)
    y = rrdn._depth_to_space_nhwc(x, 2)
    assert y.shape == (1, 4, 6, 3)
    assert y[0, 1, 0, 2] == x[0, 0, 0, (1 * 2 + 0) * 3 + 2]
    assert y[0, 3, 5, 1] == x[0, 1, 2, (1 * 2 + 1) * 3 + 1]


def _edit(model: dict[str, Any], name: str, **config: Any) -> dict[str, Any]:
    edited = copy.deepcopy(model)
    for layer in edited["modelTopology"]["model_config"]["config"]["layers"]:
        if layer["name"] == name:
            layer["config"].update(config)
            if "class_name" in config:
                layer["class_name"] = config.pop("class_name")
    return edited


@pytest.mark.parametrize(
    ("layer", "edit", "says"),
    [
        ("F_1_1_1", {"strides": [2, 2]}, "F_1_1_1: Conv2D with unsupported ['strides']"),
        ("F_1_1_1", {"activation": "relu"}, "F_1_1_1: Conv2D with unsupported ['activation']"),
        ("F_1_1_1_Relu", {"activation": "tanh"}, "F_1_1_1_Relu: activation 'tanh'"),
        ("RDB_Concat_1_1_1", {"axis": 1}, "RDB_Concat_1_1_1: Concatenate on axis 1"),
        ("GRL", {"class_name": "Multiply"}, "GRL: class Multiply is not one"),
    ],
)
def test_layers_the_converter_does_not_know_are_refused_by_name(
    layer: str, edit: dict[str, Any], says: str
) -> None:
    model, weights = rrdn.tiny_layers_model(4)
    with pytest.raises(rrdn.ConversionError, match=says.replace("[", r"\[").replace("]", r"\]")):
        rrdn.convert(_edit(model, layer, **edit), weights)


def test_a_missing_or_extra_weight_is_refused() -> None:
    model, weights = rrdn.tiny_layers_model(2)
    short = {k: v for k, v in weights.items() if k != "LFF_1_1/bias"}
    with pytest.raises(rrdn.ConversionError, match="LFF_1_1/bias is not in the manifest"):
        rrdn.convert(model, short)
    extra = dict(weights, **{"ghost/kernel": np.zeros(3, np.float32)})
    with pytest.raises(rrdn.ConversionError, match="weights no layer reads"):
        rrdn.convert(model, extra)


# --- provisioning a package of two models -------------------------------------------

PACKAGE = "@lightbox-test/tiny-esrgan"
VERSION = "0.2.0"


def _package(tmp: Path, broken_example: bool = False) -> Path:
    """A tarball laid out like @upscalerjs/esrgan-thick: models/x{2,4}/model.json and a
    shard, assets/fixture.png and assets/samples/<s>x/result.png made by toy models."""
    files: dict[str, bytes] = {
        "package/package.json": json.dumps({"name": PACKAGE, "version": VERSION}).encode(),
        "package/LICENSE": b"MIT License (test copy)\n",
        "package/README.md": b"# tiny esrgan\n",
    }
    photo = cv2.resize(load_photo("coffee").rgb, (24, 16), interpolation=cv2.INTER_AREA)
    files["package/assets/fixture.png"] = cv2.imencode(".png", photo[..., ::-1])[1].tobytes()
    for scale in (2, 4):
        model, weights = rrdn.tiny_layers_model(scale, seed=scale)
        folder = tmp / f"x{scale}"
        rrdn.write_layers_model(model, weights, folder)
        for f in folder.iterdir():
            files[f"package/models/x{scale}/{f.name}"] = f.read_bytes()
        out = rrdn.upscale_whole(rrdn.session(_convert(model, weights, tmp / "e.onnx")), photo)
        if broken_example:
            out = np.ascontiguousarray(out[:, ::-1])
        png = cv2.imencode(".png", out[..., ::-1])[1].tobytes()
        files[f"package/assets/samples/{scale}x/result.png"] = png
    return write_tarball(tmp / "tiny-esrgan.tgz", files)


@pytest.fixture
def esrgan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    tarball = _package(tmp_path)
    table = {
        "rrdn": replace(
            packages.PACKAGED["rrdn"],
            package=PACKAGE,
            version=VERSION,
            integrity=sri(tarball.read_bytes()),
        )
    }
    monkeypatch.setattr(packages, "PACKAGED", table)
    log = tmp_path / "npm-calls.jsonl"
    fake_npm(tmp_path / "bin", log, tarball=tarball)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{path_without_npm()}")
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    repo.mkdir()
    return {"tarball": tarball, "log": log, "repo": repo, "cache": cache}


def test_fetch_rrdn_installs_the_4x_model_with_its_provenance(
    esrgan: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fetch", "rrdn", "--repo", str(esrgan["repo"]), "--cache-dir", str(esrgan["cache"])]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert len(calls(esrgan["log"])) == 1
    installed = esrgan["repo"] / "upscale_rrdn_onnx" / "1" / "model.onnx"
    assert installed.is_file()
    prov = packages.read_provenance(esrgan["repo"], "upscale_rrdn_onnx")
    assert prov is not None and prov["package"] == PACKAGE
    assert prov["source"]["resource"] == "models/x4/model.json"
    assert prov["source"]["shards"] == 1 and prov["source"]["weights"] == 20
    assert "reproduces the published output within 0 level" in prov["conversion"]["example"]
    assert prov["licence_texts"]["LICENSE"].startswith("MIT License")
    sess = rrdn.session(installed)
    x = np.zeros((1, 3, 5, 6), np.float32)
    assert sess.run(["output"], {"input": x})[0].shape == (1, 3, 20, 24)
    assert cli.main(argv) == 0
    assert len(calls(esrgan["log"])) == 1
    out = capsys.readouterr().out
    assert "from the cache" in out and "licence  package: MIT" in out


def test_a_package_whose_example_the_model_does_not_reproduce_is_refused(
    esrgan: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "bad").mkdir()
    bad = _package(tmp_path / "bad", broken_example=True)
    p = replace(packages.PACKAGED["rrdn"], integrity=sri(bad.read_bytes()))
    packages.PACKAGED["rrdn"] = p
    with pytest.raises(rrdn.ConversionError, match="differs from the published output"):
        packages.provision("rrdn", esrgan["repo"], esrgan["cache"], tarball=bad)
    assert not (esrgan["repo"] / "upscale_rrdn_onnx").exists()


def test_a_missing_shard_is_refused(tmp_path: Path) -> None:
    model, weights = rrdn.tiny_layers_model(2)
    pkg = tmp_path / "package"
    rrdn.write_layers_model(model, weights, pkg / "models" / "x2")
    source = rrdn.LayersModel("models/x2/model.json")
    (pkg / "models" / "x2" / "group1-shard1of1.bin").write_bytes(b"\0" * 12)
    with pytest.raises(packages.ProvisionError, match="shards hold 12 bytes"):
        source.assemble(pkg, tmp_path / "s.zip")
    (pkg / "models" / "x2" / "group1-shard1of1.bin").unlink()
    with pytest.raises(packages.ProvisionError, match="shard 'group1-shard1of1.bin' is missing"):
        source.assemble(pkg, tmp_path / "s.zip")


# --- the real models against the original runtime ------------------------------------


def _tfjs(cache: Path) -> Path:
    """node_modules with the pure-JavaScript TensorFlow.js, installed once into the
    cache with npm (it needs no native download)."""
    prefix = cache / "node" / TFJS.replace("@tensorflow/", "").replace("@", "-")
    modules = prefix / "node_modules"
    if (modules / "@tensorflow" / "tfjs" / "package.json").is_file():
        return modules
    if shutil.which("npm") is None or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("Node.js and npm are needed for the TensorFlow.js parity test")
        pytest.skip("Node.js/npm are not installed")
    prefix.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--prefix",
            str(prefix),
            TFJS,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"npm install {TFJS} failed: {done.stderr[-2000:]}")
        pytest.skip(f"npm install {TFJS} failed (offline?): {done.stderr[-300:]}")
    return modules


def test_the_provisioned_model_matches_tensorflow_js(tmp_path: Path) -> None:
    """The converted ONNX file `make test` provisioned against the package's original
    model run by TensorFlow.js, on random and real inputs."""
    scale = 4
    cache = CommonSettings().cache_dir
    assert cache is not None
    p = packages.PACKAGED["rrdn"]
    entry = packages.cache_entry(cache, p)
    if packages.read_cache(entry, p) is None:
        if os.environ.get("CI"):
            pytest.fail(f"rrdn is not in the cache {entry} (`make models` fills it)")
        pytest.skip("rrdn is not in the cache: `lightbox models fetch rrdn`")
    modules = _tfjs(cache)
    # The model as the package lays it out, from the cached source (one shard).
    folder = tmp_path / "model"
    folder.mkdir()
    with zipfile.ZipFile(entry / p.source.filename) as z:
        model = json.loads(z.read(rrdn.MODEL_JSON))
        (folder / "weights.bin").write_bytes(z.read("weights.bin"))
    for group in model["weightsManifest"]:
        group["paths"] = []
    model["weightsManifest"][0]["paths"] = ["weights.bin"]
    (folder / "model.json").write_text(json.dumps(model))
    photo = load_photo("astronaut").rgb
    inputs = {
        # Small: TensorFlow.js's JavaScript kernels take seconds per hundred pixels.
        "random": np.random.default_rng(scale).random((1, 8, 9, 3), dtype=np.float32),
        "photo": (photo[190:200, 210:222].astype(np.float32) / 255.0)[None],
    }
    argv = ["node", str(REFERENCE_JS), str(folder)]
    for name, x in inputs.items():
        x.tofile(tmp_path / f"{name}.in")
        argv += [
            str(tmp_path / f"{name}.in"),
            str(x.shape[1]),
            str(x.shape[2]),
            str(tmp_path / f"{name}.out"),
        ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sess = rrdn.session(entry / packages.ONNX_FILE)
    for name, x in inputs.items():
        h, w = x.shape[1:3]
        ref = np.fromfile(tmp_path / f"{name}.out", np.float32).reshape(1, h * scale, w * scale, 3)
        got = sess.run(["output"], {"input": x.transpose(0, 3, 1, 2)})[0].transpose(0, 2, 3, 1)
        diff = float(np.abs(got - ref).max())
        assert diff <= TFJS_TOLERANCE, f"{name}: max |onnx - tfjs| = {diff:.2e}"
