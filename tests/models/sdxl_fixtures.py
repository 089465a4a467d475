"""Tiny random-weight SDXL checkpoints, exported into a temporary model repository
next to copies of the committed pipeline models, and one real tritonserver serving
them; shared by the tests/models/test_sdxl*.py modules.

Three pipelines are exported: `sdxl` (text to image), `sdxl_inpaint` (9-channel
inpainting UNet) and `sdxl_inpaint4ch` (the text-to-image checkpoint served for
inpainting, a copy of the committed `sdxl_inpaint` model under another name). A
fourth pipeline model, `sdxl_broken`, is `sdxl` with its UNet pointed at a model that
does not exist, for the component-failure path.

Test modules import the fixtures they use. pytest makes one fixture instance per
importing module, so the expensive parts are memoised in `_SHARED` and built once a
session. Cost on 2 cores: about 5 s to build the checkpoints, 15 s to export, 10 s for
tritonserver to load the 18 models.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common.triton import MODEL_REPOSITORY, TritonProcess

REPO = Path(__file__).resolve().parents[2]
NUMBA_CACHE = REPO / ".lightbox" / "numba_cache"
PIPELINES = ("sdxl", "sdxl_inpaint", "sdxl_inpaint4ch", "sdxl_broken")
# ParityCase.mode -> (pipeline model, served as inpainting)
MODE_MODELS = {
    "txt2img": ("sdxl", False),
    "inpaint": ("sdxl_inpaint", True),
    "inpaint_4ch": ("sdxl_inpaint4ch", True),
}

_SHARED: dict[str, Any] = {}


def _shared(key: str, make: Any) -> Any:
    if key not in _SHARED:
        _SHARED[key] = make()
    return _SHARED[key]


@pytest.fixture(scope="session")
def sdxl_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"base": text-to-image folder, "inpaint": inpainting folder} (diffusers format)."""
    from services.models.sdxl.tiny import make_tiny_sdxl

    def make() -> dict[str, Path]:
        root = tmp_path_factory.mktemp("sdxl_checkpoints")
        return {
            "base": make_tiny_sdxl(root / "base", inpaint=False, seed=0),
            "inpaint": make_tiny_sdxl(root / "inpaint", inpaint=True, seed=1),
        }

    return _shared("checkpoints", make)


def _pipeline_model(repo: Path, name: str, template: str) -> None:
    shutil.copytree(
        MODEL_REPOSITORY / template, repo / name, ignore=shutil.ignore_patterns("__pycache__")
    )
    config = repo / name / "config.pbtxt"
    config.write_text(config.read_text().replace(f'name: "{template}"', f'name: "{name}"'))


@pytest.fixture(scope="session")
def sdxl_repo(
    tmp_path_factory: pytest.TempPathFactory, sdxl_checkpoints: dict[str, Path]
) -> tuple[Path, dict[str, Any]]:
    """(model repository, {pipeline name: ExportReport}) with the three pipelines
    exported for the cpu target."""
    from services.models.sdxl.export import export_sdxl

    def make() -> tuple[Path, dict[str, Any]]:
        repo = tmp_path_factory.mktemp("sdxl_repo")
        _pipeline_model(repo, "sdxl", "sdxl")
        _pipeline_model(repo, "sdxl_inpaint", "sdxl_inpaint")
        _pipeline_model(repo, "sdxl_inpaint4ch", "sdxl_inpaint")
        reports = {
            "sdxl": export_sdxl(sdxl_checkpoints["base"], repo),
            "sdxl_inpaint": export_sdxl(sdxl_checkpoints["inpaint"], repo),
            "sdxl_inpaint4ch": export_sdxl(sdxl_checkpoints["base"], repo, name="sdxl_inpaint4ch"),
        }
        _pipeline_model(repo, "sdxl_broken", "sdxl")
        shutil.copytree(repo / "sdxl" / "checkpoint", repo / "sdxl_broken" / "checkpoint")
        meta_path = repo / "sdxl_broken" / "checkpoint" / "pipeline.json"
        meta = json.loads(meta_path.read_text())
        meta["components"]["unet"] = "sdxl_unet_not_deployed"
        meta_path.write_text(json.dumps(meta))
        return repo, reports

    return _shared("repo", make)


@pytest.fixture(scope="session")
def sdxl_triton(
    tmp_path_factory: pytest.TempPathFactory, sdxl_repo: tuple[Path, dict[str, Any]]
) -> Iterator[TritonProcess]:
    """tritonserver serving the exported repository, all pipelines ready."""
    repo, _ = sdxl_repo
    owner = "triton" not in _SHARED
    if owner:
        _SHARED["triton"] = TritonProcess.start(
            repo,
            tmp_path_factory.mktemp("sdxl_triton"),
            numba_cache_dir=NUMBA_CACHE,
            ready_models=list(PIPELINES),
            timeout=240,
        )
    yield _SHARED["triton"]
    if owner:
        _SHARED.pop("triton").stop()
