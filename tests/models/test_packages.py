"""Provisioning models that registry packages ship (services/models/packages.py), with a
tiny stand-in package and a fake `npm` on PATH: what is installed and recorded, what is
refused, the cache, the opt-out, and what the stack and `models list` then say."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from services.models import cli, packages
from services.models.install import sha256_of
from services.stack import model_lines
from tests.models.package_fixtures import (
    LICENCE,
    PACKAGE,
    THIRD_PARTY,
    VERSION,
    calls,
    fake_npm,
    fp16_isnet_like,
    package_files,
    packaged_model,
    path_without_npm,
    write_tarball,
)

READY_ISNET = {"matting_isnet", "matting_isnet_onnx", "matting_classical"}


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("tiny")
    model = fp16_isnet_like(d / "m.onnx", size=1024).read_bytes()
    return package_files(model, chunk=200)


@pytest.fixture
def tiny(
    tmp_path: Path, tiny_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    """A tarball of the tiny package pinned as PACKAGED["tiny"], a fake npm serving it
    first on PATH, an empty model repository and cache."""
    tarball = write_tarball(tmp_path / "tiny.tgz", tiny_files)
    monkeypatch.setitem(packages.PACKAGED, "tiny", packaged_model(tarball))
    log = tmp_path / "npm-calls.jsonl"
    fake_npm(tmp_path / "bin", log, tarball=tarball)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{path_without_npm()}")
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    repo.mkdir()
    return {"tarball": tarball, "log": log, "repo": repo, "cache": cache, "tmp": tmp_path}


def _provision(t: dict[str, Path], **kw: object) -> packages.Provisioned:
    return packages.provision("tiny", t["repo"], t["cache"], **kw)  # type: ignore[arg-type]


def test_fetch_installs_the_converted_model_with_its_provenance(tiny: dict[str, Path]) -> None:
    done = _provision(tiny)
    assert done.source == "npm" and done.installed
    argv = calls(tiny["log"])
    assert len(argv) == 1
    assert argv[0][:3] == ["pack", f"{PACKAGE}@{VERSION}", "--json"]
    assert argv[0][3] == "--pack-destination"
    model_dir = tiny["repo"] / "matting_isnet_onnx"
    installed = model_dir / "1" / "model.onnx"
    assert 'name: "matting_isnet_onnx"' in (model_dir / "config.pbtxt").read_text()
    prov = json.loads((model_dir / "provenance.json").read_text())
    assert prov["package"] == PACKAGE and prov["version"] == VERSION
    assert prov["integrity"] == packages.PACKAGED["tiny"].integrity
    assert prov["npm_reported_integrity"] == prov["integrity"]
    assert prov["tarball"]["sha256"] == hashlib.sha256(tiny["tarball"].read_bytes()).hexdigest()
    assert prov["installed"]["sha256"] == sha256_of(installed)
    assert prov["source"]["chunks"] > 3 and prov["source"]["resource"] == "/models/medium"
    assert prov["conversion"]["max_abs_diff"] < 1e-3
    assert prov["licence_texts"] == {"LICENSE.md": LICENCE, "ThirdPartyLicenses.json": THIRD_PARTY}
    assert prov["licence"]["package"].startswith("AGPL-3.0")
    assert prov["licence"]["model"].startswith("MIT")
    assert prov["target"] == "cpu"
    # The cache holds the same file, outside the repository.
    entry = packages.cache_entry(tiny["cache"], packages.PACKAGED["tiny"])
    assert sha256_of(entry / "model.onnx") == prov["installed"]["sha256"]


def test_a_cached_model_is_installed_without_npm(tiny: dict[str, Path]) -> None:
    first = _provision(tiny)
    again = _provision(tiny)
    assert again.source == "cache" and not again.installed
    other_repo = tiny["tmp"] / "repo2"
    other_repo.mkdir()
    third = packages.provision("tiny", other_repo, tiny["cache"], target="gpu")
    assert third.source == "cache" and third.installed
    assert (
        'platform: "onnxruntime_onnx"'
        in (other_repo / "matting_isnet_onnx" / "config.pbtxt").read_text()
    )
    assert len(calls(tiny["log"])) == 1
    assert third.provenance["installed"] == first.provenance["installed"]


def test_a_corrupt_cache_is_fetched_again(tiny: dict[str, Path]) -> None:
    _provision(tiny)
    entry = packages.cache_entry(tiny["cache"], packages.PACKAGED["tiny"])
    cached = entry / "model.onnx"
    data = bytearray(cached.read_bytes())
    data[-10] ^= 0xFF
    cached.unlink()  # the repository's hard link keeps the good bytes
    cached.write_bytes(bytes(data))
    done = _provision(tiny)
    assert done.source == "npm"
    assert len(calls(tiny["log"])) == 2
    assert sha256_of(cached) == done.provenance["installed"]["sha256"]


def test_a_tarball_with_another_integrity_is_refused(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = replace(packages.PACKAGED["tiny"], integrity="sha512-" + "A" * 86 + "==")
    monkeypatch.setitem(packages.PACKAGED, "tiny", pinned)
    with pytest.raises(packages.ProvisionError, match="sha512 integrity is .*refused"):
        _provision(tiny)
    assert not (tiny["repo"] / "matting_isnet_onnx").exists()
    assert not packages.cache_entry(tiny["cache"], pinned).exists()


def test_npm_reporting_another_integrity_is_refused(tiny: dict[str, Path]) -> None:
    fake_npm(
        tiny["tmp"] / "bin", tiny["log"], tarball=tiny["tarball"], reported_integrity="sha512-x"
    )
    with pytest.raises(packages.ProvisionError, match="npm reports integrity sha512-x"):
        _provision(tiny)
    assert not (tiny["repo"] / "matting_isnet_onnx").exists()


def _tampered(tiny_files: dict[str, bytes], tmp: Path, edit: str) -> Path:
    files = dict(tiny_files)
    resources = json.loads(files["package/dist/resources.json"])
    chunks = resources["/models/medium"]["chunks"]
    if edit == "chunk":
        name = f"package/dist/{chunks[2]['hash']}"
        files[name] = b"\0" + files[name][1:]
    elif edit == "size":
        resources["/models/medium"]["size"] += 1
    elif edit == "gap":
        chunks[1]["offsets"][0] += 1
    files["package/dist/resources.json"] = json.dumps(resources).encode()
    return write_tarball(tmp / f"{edit}.tgz", files)


def test_a_chunk_with_a_wrong_sha256_is_refused(
    tiny: dict[str, Path], tiny_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = _tampered(tiny_files, tiny["tmp"], "chunk")
    # Pinned to the tampered tarball, so the integrity passes and the chunk check is what
    # refuses it (as it would a package republished with a corrupt chunk).
    monkeypatch.setitem(packages.PACKAGED, "tiny", packaged_model(bad))
    chunk = json.loads(tiny_files["package/dist/resources.json"])["/models/medium"]["chunks"][2]
    with pytest.raises(packages.ProvisionError) as err:
        _provision(tiny, tarball=bad)
    assert f"chunk 2 of /models/medium ({chunk['hash']}) has sha256" in str(err.value)
    assert "refused" in str(err.value)
    assert not (tiny["repo"] / "matting_isnet_onnx").exists()


@pytest.mark.parametrize(("edit", "says"), [("size", "the chunks make"), ("gap", "covers")])
def test_chunk_offsets_and_total_size_are_checked(
    tiny: dict[str, Path],
    tiny_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    edit: str,
    says: str,
) -> None:
    bad = _tampered(tiny_files, tiny["tmp"], edit)
    monkeypatch.setitem(packages.PACKAGED, "tiny", packaged_model(bad))
    with pytest.raises(packages.ProvisionError, match=says):
        _provision(tiny, tarball=bad)


def _evil_tarball(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("package/package.json")
        data = b"{}"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        if kind == "traversal":
            evil = tarfile.TarInfo("package/../../escaped.txt")
            evil.size = 4
            tar.addfile(evil, io.BytesIO(b"evil"))
        elif kind == "absolute":
            evil = tarfile.TarInfo("/tmp/lightbox-absolute-escape.txt")
            evil.size = 4
            tar.addfile(evil, io.BytesIO(b"evil"))
        else:
            link = tarfile.TarInfo("package/dist/link")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            tar.addfile(link)
    return path


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("traversal", "points outside the package"),
        ("absolute", "points outside the package"),
        ("symlink", "is a link or device"),
    ],
)
def test_unsafe_tarballs_are_refused(tmp_path: Path, kind: str, says: str) -> None:
    tarball = _evil_tarball(tmp_path / "evil.tgz", kind)
    dest = tmp_path / "a" / "b"
    dest.mkdir(parents=True)
    with pytest.raises(packages.ProvisionError, match=says):
        packages.safe_extract(tarball, dest)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "a" / "escaped.txt").exists()
    assert not Path("/tmp/lightbox-absolute-escape.txt").exists()
    assert list(dest.iterdir()) == []  # checked before anything was written


def test_npm_missing_is_a_clear_error(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_without_npm())
    with pytest.raises(packages.RegistryUnavailable, match="npm is not installed"):
        _provision(tiny)


def test_unreachable_registry_is_a_clear_error_and_exit_code(
    tiny: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_npm(
        tiny["tmp"] / "bin",
        tiny["log"],
        tarball=None,
        fail="npm error code ENOTFOUND\nnpm error network request failed",
    )
    with pytest.raises(packages.RegistryUnavailable, match="ENOTFOUND"):
        _provision(tiny)
    code = cli.main(
        ["fetch", "tiny", "--repo", str(tiny["repo"]), "--cache-dir", str(tiny["cache"])]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_UNREACHABLE == 3
    assert "the registry may be unreachable" in err
    assert "lightbox models fetch tiny --from-tarball" in err
    assert "lightbox models install matting_isnet FILE.onnx" in err
    assert not (tiny["repo"] / "matting_isnet_onnx").exists()


def test_from_tarball_needs_no_npm(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", path_without_npm())
    code = cli.main(
        [
            "fetch",
            "tiny",
            "--from-tarball",
            str(tiny["tarball"]),
            "--repo",
            str(tiny["repo"]),
            "--cache-dir",
            str(tiny["cache"]),
        ]
    )
    assert code == 0, capsys.readouterr().err
    prov = packages.read_provenance(tiny["repo"], "matting_isnet_onnx")
    assert prov is not None and prov["fetched_with"].startswith("--from-tarball ")
    assert calls(tiny["log"]) == []


def _only_tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packages, "PACKAGED", {"tiny": packages.PACKAGED["tiny"]})


def test_a_failed_provisioning_leaves_the_stack_on_classical_and_says_so(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_tiny(monkeypatch)
    fake_npm(tiny["tmp"] / "bin", tiny["log"], tarball=None, fail="npm error code ETIMEDOUT")
    outcomes = packages.provision_all(tiny["repo"], tiny["cache"], enabled=True)
    assert outcomes["tiny"]["status"] == "failed" and outcomes["tiny"]["unreachable"]
    assert packages.read_status(tiny["repo"])["tiny"]["status"] == "failed"
    lines = "\n".join(model_lines(tiny["repo"], {"matting_classical"}))
    assert "Matting:  classical  (no learned matting model)" in lines
    assert "!! matting_isnet is NOT installed" in lines
    assert "ETIMEDOUT" in lines
    assert "lightbox models fetch tiny --from-tarball" in lines
    assert "lightbox models install matting_isnet FILE.onnx" in lines


def test_the_banner_names_the_engine_and_licences_once_provisioned(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_tiny(monkeypatch)
    outcomes = packages.provision_all(tiny["repo"], tiny["cache"], enabled=True)
    assert outcomes["tiny"]["status"] == "installed"
    lines = model_lines(tiny["repo"], READY_ISNET)
    assert lines[0] == "  Matting:  isnet"
    assert any(
        f"{PACKAGE}@{VERSION} (licences: package AGPL-3.0, model MIT)" in line for line in lines
    )
    assert not any("!!" in line for line in lines)
    not_loaded = "\n".join(model_lines(tiny["repo"], {"matting_classical"}))
    assert "installed but not ready in Triton" in not_loaded


def test_strict_provisioning_fails_with_the_unreachable_code(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_tiny(monkeypatch)
    monkeypatch.setenv("PATH", path_without_npm())
    argv = ["provision", "--repo", str(tiny["repo"]), "--cache-dir", str(tiny["cache"])]
    monkeypatch.setenv("LIGHTBOX_PROVISION_MODELS", "1")
    assert cli.main(argv) == 0  # make run: goes on, the stack says why
    assert cli.main([*argv, "--strict"]) == cli.EXIT_UNREACHABLE  # make test under CI


def test_opting_out_fetches_nothing_and_removes_a_provisioned_copy(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_tiny(monkeypatch)
    _provision(tiny)
    assert (tiny["repo"] / "matting_isnet_onnx").exists()
    monkeypatch.setenv("LIGHTBOX_PROVISION_MODELS", "0")
    argv = ["provision", "--repo", str(tiny["repo"]), "--cache-dir", str(tiny["cache"])]
    assert cli.main([*argv, "--strict"]) == 0
    assert len(calls(tiny["log"])) == 1  # only the first, explicit fetch
    assert not (tiny["repo"] / "matting_isnet_onnx").exists()
    status = packages.read_status(tiny["repo"])["tiny"]
    assert status["status"] == "skipped" and "LIGHTBOX_PROVISION_MODELS=0" in status["message"]
    lines = "\n".join(model_lines(tiny["repo"], {"matting_classical"}))
    assert "opted out" in lines


def test_opting_out_keeps_a_model_installed_by_hand(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_tiny(monkeypatch)
    _provision(tiny)
    (tiny["repo"] / "matting_isnet_onnx" / "provenance.json").unlink()
    packages.provision_all(tiny["repo"], tiny["cache"], enabled=False)
    assert (tiny["repo"] / "matting_isnet_onnx" / "1" / "model.onnx").exists()
    lines = "\n".join(model_lines(tiny["repo"], READY_ISNET))
    assert "matting_isnet_onnx: installed by hand" in lines


def test_models_list_json_shows_provenance_and_why_missing(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["list", "--repo", str(tiny["repo"]), "--json", "--triton", "127.0.0.1:9"]
    fake_npm(tiny["tmp"] / "bin", tiny["log"], tarball=None, fail="npm error code E503")
    _only_tiny(monkeypatch)
    packages.provision_all(tiny["repo"], tiny["cache"], enabled=True)
    capsys.readouterr()
    assert cli.main(argv) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    missing = rows["matting_isnet_onnx"]["origin"]
    assert missing["provisioned"] is False
    assert "E503" in missing["last_provisioning"]
    assert any("--from-tarball" in line for line in missing["by_hand"])
    assert missing["licence"]["model"].startswith("MIT")

    fake_npm(tiny["tmp"] / "bin", tiny["log"], tarball=tiny["tarball"])
    done = _provision(tiny)
    assert cli.main(argv) == 0
    row = {r["model"]: r for r in json.loads(capsys.readouterr().out)}["matting_isnet_onnx"]
    assert row["installed"].startswith("sha256 ")
    origin = row["origin"]
    assert origin["provisioned"] is True
    assert (origin["package"], origin["version"]) == (PACKAGE, VERSION)
    assert origin["integrity"] == packages.PACKAGED["tiny"].integrity
    assert origin["sha256"] == done.provenance["installed"]["sha256"]
    assert origin["licence"]["package"].startswith("AGPL-3.0")
    assert "dynamic N, H, W" in origin["conversion"]
    assert cli.main([a for a in argv if a != "--json"]) == 0
    text = capsys.readouterr().out
    assert f"matting_isnet_onnx: {PACKAGE}@{VERSION}" in text
    assert "licence   package AGPL-3.0" in text
