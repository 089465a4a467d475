"""GET /v1/models' account of engines and of models provisioned from registry packages
(services/gateway/catalog.py), with the jobs service, Triton and the compositor
answered by stand-ins and a real model repository on disk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lightbox.v1 import jobs_pb2

from services.gateway.catalog import Catalog, PresetOut
from services.models import packages

ISNET_READY = {"matting_isnet", "matting_isnet_onnx", "matting_classical"}
PROVENANCE = {
    "package": "@imgly/background-removal-data",
    "version": "1.4.5",
    "integrity": packages.PACKAGED["isnet"].integrity,
    "tarball": {"sha256": "aa" * 32},
    "source": {"sha256": "bb" * 32, "chunks": 22},
    "installed": {"sha256": "cc" * 32},
    "fetched_with": "npm pack @imgly/background-removal-data@1.4.5",
    "fetched_at": "2026-01-01T00:00:00Z",
    "conversion": {"summary": "fp16 -> fp32; dynamic N, H, W"},
    "licence": packages.PACKAGED["isnet"].licences,
    "licence_texts": {"LICENSE.md": "# GNU Affero General Public License ..."},
}


class _Catalog(Catalog):
    def __init__(
        self, repo: Path | None, ready: set[str] | None, matting_engine: str = "auto"
    ) -> None:
        settings = SimpleNamespace(model_repository=repo, matting_engine=matting_engine)
        super().__init__(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
        self._ready_set = ready

    async def ready_models(self) -> set[str] | None:
        return self._ready_set

    async def _operation_table(self) -> list[jobs_pb2.OperationInfo]:
        return [
            jobs_pb2.OperationInfo(
                name="remove-background", credits=1, pipeline=["matting"], estimated_seconds=2
            )
        ]

    async def _preset_list(self) -> list[PresetOut] | None:
        return []


def _body(
    repo: Path | None, ready: set[str] | None, matting_engine: str = "auto"
) -> dict[str, Any]:
    return asyncio.run(_Catalog(repo, ready, matting_engine).body())


def _provisioned(repo: Path) -> None:
    model_dir = repo / "matting_isnet_onnx"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "model.onnx").write_bytes(b"onnx")
    (model_dir / "provenance.json").write_text(json.dumps(PROVENANCE))


def test_provisioned_isnet_serves_matting_with_its_provenance(tmp_path: Path) -> None:
    _provisioned(tmp_path)
    body = _body(tmp_path, ISNET_READY)
    assert body["engines"]["matting"] == "isnet"
    (stage,) = body["operations"][0]["stages"]
    assert stage["engine"] == "isnet"
    assert [e["engine"] for e in stage["engines"]] == ["birefnet", "isnet", "classical"]
    isnet = next(p for p in body["packaged"] if p["name"] == "isnet")
    assert isnet["name"] == "isnet" and isnet["front"] == "matting_isnet"
    assert isnet["installed"] and isnet["deployed"]
    assert isnet["install"] == []
    prov = isnet["provenance"]
    assert prov["package"] == "@imgly/background-removal-data" and prov["version"] == "1.4.5"
    assert prov["integrity"].startswith("sha512-")
    assert prov["sha256"] == "cc" * 32 and prov["source_sha256"] == "bb" * 32
    assert prov["licence"]["package"].startswith("AGPL-3.0")
    assert prov["licence"]["model"].startswith("MIT")
    assert "licence_texts" not in prov  # the texts stay in the repository's provenance.json
    assert next(m for m in body["models"] if m["name"] == "matting_isnet")["deployed"]


def test_missing_isnet_says_why_and_how_to_install_it(tmp_path: Path) -> None:
    packages.write_status(
        tmp_path,
        {
            "isnet": {
                "status": "failed",
                "message": "NOT provisioned (RegistryUnavailable): `npm pack ...` failed",
                "at": "2026-01-01T00:00:00Z",
            }
        },
    )
    body = _body(tmp_path, {"matting_classical"})
    assert body["engines"]["matting"] == "classical"
    (stage,) = body["operations"][0]["stages"]
    isnet_engine = next(e for e in stage["engines"] if e["engine"] == "isnet")
    assert isnet_engine["kind"] == "provisioned" and not isnet_engine["deployed"]
    assert "lightbox models fetch isnet" in isnet_engine["install"]
    isnet = next(p for p in body["packaged"] if p["name"] == "isnet")
    assert not isnet["installed"] and not isnet["deployed"] and isnet["provenance"] is None
    assert isnet["last_provisioning"]["status"] == "failed"
    assert "RegistryUnavailable" in isnet["last_provisioning"]["message"]
    assert any("--from-tarball" in c for c in isnet["install"])
    assert any("lightbox models install matting_isnet FILE.onnx" in c for c in isnet["install"])
    assert isnet["licence"]["model"].startswith("MIT")


def test_a_pinned_matting_engine_is_what_the_catalog_reports(tmp_path: Path) -> None:
    _provisioned(tmp_path)
    body = _body(tmp_path, ISNET_READY, matting_engine="classical")
    assert body["engines"]["matting"] == "classical"
    # Pinned to an engine that is not deployed: nothing serves matting.
    body = _body(tmp_path, {"matting_classical"}, matting_engine="isnet")
    assert body["engines"]["matting"] is None
    (stage,) = body["operations"][0]["stages"]
    assert stage["engine"] is None and not stage["deployed"]
    assert not body["operations"][0]["available"]


def test_installed_but_not_loaded_is_not_deployed(tmp_path: Path) -> None:
    _provisioned(tmp_path)
    body = _body(tmp_path, {"matting_classical", "matting_isnet_onnx"})
    assert body["engines"]["matting"] == "classical"
    isnet = next(p for p in body["packaged"] if p["name"] == "isnet")
    assert isnet["installed"] and not isnet["deployed"]


@pytest.mark.parametrize("repo", [None, Path("/nonexistent/lightbox-model-repository")])
def test_packaged_is_null_when_the_repository_is_not_readable(repo: Path | None) -> None:
    body = _body(repo, ISNET_READY)
    assert body["packaged"] is None
    assert body["engines"]["matting"] == "isnet"
