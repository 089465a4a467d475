"""`lightbox models verify` against real tritonservers: a healthy repository passes,
and every kind of broken model folder fails it loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.models import cli
from services.models.install import install
from services.models.verify import ABSENT, FAILED, OK, verify
from tests.model_repository.triton_fixtures import (  # noqa: F401
    NUMBA_CACHE,
    copy_repository,
    numba_cache,
    test_models,
)

pytestmark = pytest.mark.usefixtures("numba_cache")

GOOD = ["upscale_lanczos", "upscale_realesrgan", "upscale_realesrgan_onnx"]


def python_model(repo: Path, name: str, body: str, config_extra: str = "") -> None:
    folder = repo / name / "1"
    folder.mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [ { name: "X", data_type: TYPE_FP32, dims: [ 2 ] } ]\n'
        'output [ { name: "Y", data_type: TYPE_FP32, dims: [ 2 ] } ]\n' + config_extra
    )
    (folder / "model.py").write_text(body)


def test_a_healthy_repository_passes(
    tmp_path: Path,
    test_models: dict[str, Path],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = copy_repository(tmp_path / "repo")
    install("upscale_realesrgan", test_models["upscale_realesrgan_onnx"], repo)
    argv = ["verify", "--repo", str(repo), "--timeout", "60"]
    assert cli.main(argv + [a for name in GOOD for a in ("--only", name)]) == 0
    table = capsys.readouterr().out
    for name in GOOD:
        assert f"| {name} |" in table
    assert "FAILED" not in table


def test_broken_model_folders_fail_loudly(
    tmp_path: Path,
    test_models: dict[str, Path],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = copy_repository(tmp_path / "repo")
    install("upscale_realesrgan", test_models["upscale_realesrgan_onnx"], repo)
    # A corrupt weights file under a valid config.
    (repo / "upscale_realesrgan_onnx" / "1" / "model.onnx").write_bytes(b"\0" * 64)
    python_model(
        repo,
        "raises_at_load",
        "class TritonPythonModel:\n"
        "    def initialize(self, args):\n"
        "        raise RuntimeError('weights folder is empty')\n",
    )
    python_model(repo, "bad_config", "", config_extra="instance_group [ { count: oops } ]\n")
    (repo / "no_model_file" / "1").mkdir(parents=True)
    (repo / "no_model_file" / "config.pbtxt").write_text(
        'name: "no_model_file"\nbackend: "python"\n'
    )
    (repo / "no_config" / "1").mkdir(parents=True)

    only = ["upscale_lanczos", "upscale_realesrgan_onnx", "raises_at_load", "bad_config"]
    only += ["no_model_file", "no_config", "inpaint_lama"]
    checks = {c.name: c for c in verify(repo, timeout=60, only=only, numba_cache_dir=NUMBA_CACHE)}
    assert checks["upscale_lanczos"].status == OK
    assert checks["inpaint_lama"].status == ABSENT  # not installed is not broken
    for name in ("upscale_realesrgan_onnx", "raises_at_load", "bad_config"):
        assert checks[name].status == FAILED, checks[name]
    assert "weights folder is empty" in checks["raises_at_load"].detail
    assert checks["no_model_file"].detail == "no model file in any version folder"
    assert checks["no_config"].detail == "no config.pbtxt"

    argv = ["verify", "--repo", str(repo), "--timeout", "60", "--only", "no_config"]
    assert cli.main(argv) == 1
    assert "verify FAILED: no_config" in capsys.readouterr().err


def test_pipeline_components_are_named_by_their_pipeline(tmp_path: Path) -> None:
    """Components of an exported pipeline (SDXL, WAN) are loaded by verify but run only
    through their pipeline model: their dynamic dims say nothing of sensible sizes."""
    import json

    from services.models.repository import describe
    from services.models.verify import pipeline_components

    for name in ("wan_t2v", "wan_t2v_transformer", "other"):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "config.pbtxt").write_text(f'name: "{name}"\n')
    (tmp_path / "wan_t2v" / "checkpoint").mkdir()
    (tmp_path / "wan_t2v" / "checkpoint" / "pipeline.json").write_text(
        json.dumps({"components": {"transformer": "wan_t2v_transformer"}})
    )
    assert pipeline_components(describe(tmp_path)) == {"wan_t2v_transformer": "wan_t2v"}
