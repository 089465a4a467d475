"""`lightbox models install`: checksum, contract check naming the tensor, what lands in
the repository, and that a refusal leaves the repository as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.models import cli
from services.models.install import ContractError, InstallError, install, sha256_of
from tests.model_repository.triton_fixtures import TEST_MODELS, test_models  # noqa: F401
from tests.models.onnx_helpers import identity_model


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


def test_install_puts_the_file_config_and_record_in_place(
    repo: Path,
    test_models: dict[str, Path],  # noqa: F811
) -> None:
    source = test_models["upscale_realesrgan_onnx"]
    report = install("upscale_realesrgan", source, repo, sha256=sha256_of(source))
    folder = repo / "upscale_realesrgan_onnx"
    assert (folder / "1" / "model.onnx").read_bytes() == source.read_bytes()
    assert (folder / "1" / "model.py").exists()  # the cpu runner
    config = (folder / "config.pbtxt").read_text()
    assert 'name: "upscale_realesrgan_onnx"' in config and 'backend: "python"' in config
    record = json.loads((folder / "installed.json").read_text())
    assert record["sha256"] == report.sha256 == sha256_of(source)
    assert record["front"] == "upscale_realesrgan"
    assert record["inputs"] == ["input float32 [N, 3, H, W]"]


def test_a_wrong_checksum_installs_nothing(repo: Path, test_models: dict[str, Path]) -> None:  # noqa: F811
    with pytest.raises(InstallError, match="sha256 is .*, expected 00ff"):
        install("upscale_realesrgan", test_models["upscale_realesrgan_onnx"], repo, sha256="00ff")
    assert list(repo.iterdir()) == []


def test_a_wrong_signature_is_refused_naming_the_tensor(
    repo: Path,
    test_models: dict[str, Path],  # noqa: F811
) -> None:
    # LaMa's file offered as the upscaler: its inputs are image and mask.
    with pytest.raises(ContractError, match="upscale_realesrgan_onnx: input 'input' is missing"):
        install("upscale_realesrgan", test_models["inpaint_lama_onnx"], repo)
    assert [p.name for p in repo.iterdir()] == []


def test_a_refused_reinstall_keeps_the_installed_model(
    repo: Path,
    test_models: dict[str, Path],  # noqa: F811
) -> None:
    good = test_models["upscale_realesrgan_onnx"]
    install("upscale_realesrgan", good, repo)
    with pytest.raises(ContractError):
        install("upscale_realesrgan", test_models["face_codeformer_onnx"], repo)
    assert (repo / "upscale_realesrgan_onnx" / "1" / "model.onnx").read_bytes() == good.read_bytes()
    assert sorted(p.name for p in repo.iterdir()) == ["upscale_realesrgan_onnx"]


def test_rename_maps_a_published_files_names_onto_the_contract(repo: Path, tmp_path: Path) -> None:
    published = identity_model(
        tmp_path / "x4.onnx",
        [("x", "float32", ["N", 3, "h", "w"])],
        [("y", "float32", ["N", 3, "h", "w"])],
    )
    with pytest.raises(ContractError, match="input 'input' is missing"):
        install("upscale_realesrgan", published, repo)
    report = install("upscale_realesrgan", published, repo, rename={"x": "input", "y": "output"})
    assert report.inputs == ["input float32 [N, 3, h, w]"]
    with pytest.raises(InstallError, match="no input or output named"):
        install("upscale_realesrgan", published, repo, rename={"nope": "input"})


def test_clipseg_needs_its_tokenizer(repo: Path, test_models: dict[str, Path]) -> None:  # noqa: F811
    with pytest.raises(InstallError, match="--tokenizer DIR with vocab.json"):
        install("segment_clipseg", test_models["segment_clipseg_onnx"], repo)
    install(
        "segment_clipseg",
        test_models["segment_clipseg_onnx"],
        repo,
        tokenizer=TEST_MODELS / "tokenizer",
    )
    assert (repo / "segment_clipseg_onnx" / "tokenizer" / "merges.txt").exists()


def test_command_line_exit_codes_and_messages(
    repo: Path,
    test_models: dict[str, Path],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    lama = str(test_models["inpaint_lama_onnx"])
    assert cli.main(["install", "face_codeformer", lama, "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "install refused: face_codeformer_onnx: input 'input' is missing" in err
    assert cli.main(["install", "nope", lama, "--repo", str(repo)]) == 2
    assert cli.main(["install", "inpaint_lama", lama, "--repo", str(repo)]) == 0
    assert "installed inpaint_lama_onnx" in capsys.readouterr().out
