"""Real tritonservers for the whole test session, and the python models' algorithm
modules loaded straight from their model folders:

- `triton_server`: the committed `model_repository/` with only the embedded engines
  loaded (what a deployment without weights serves);
- `production_server`: a copy of it with every production contract's tiny
  random-weight stand-in installed (`lightbox models make-test-models`), loading what
  `loadable_models` says, as the embedded stack does.

Test modules import the fixtures they use (`from tests.model_repository.triton_fixtures
import triton_server`). pytest makes one fixture instance per importing module, so the
process itself is shared through `_SHARED` and stopped once, at the end of the session.

Cost: pymatting's numba kernels compile once per checkout (~40 s on 2 cores) into
NUMBA_CACHE below, the same cache the stack tests use; later sessions load it in ~1 s.
tritonserver is ready ~3 s after start; the production server loads its ~19 models in
~25 s on 2 cores.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from services.common.triton import MODEL_REPOSITORY, TritonProcess, warm_numba

REPO = Path(__file__).resolve().parents[2]
NUMBA_CACHE = REPO / ".lightbox" / "numba_cache"

# The weight-free engines every deployment serves.
EMBEDDED_MODELS = ("matting_classical", "upscale_lanczos", "inpaint_telea")
# Tiny stand-ins, rebuilt only when services/models/testmodels.py changes.
TEST_MODELS = REPO / ".lightbox" / "test-models"

_SHARED: dict[str, object] = {}


def load_model_module(model: str, module: str) -> ModuleType:
    """`model_repository/<model>/1/<module>.py`, imported from its file (the version
    folder `1` is not a package)."""
    name = f"{model}_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, MODEL_REPOSITORY / model / "1" / f"{module}.py"
    )
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def config_parameters(model: str, repository: Path = MODEL_REPOSITORY) -> dict[str, str]:
    """The `parameters` of `<repository>/<model>/config.pbtxt` as strings, the way the
    python backend hands them to the model."""
    text = (repository / model / "config.pbtxt").read_text()
    pairs = re.findall(r'key:\s*"([^"]+)",?\s*value:\s*{\s*string_value:\s*"([^"]*)"', text)
    return dict(pairs)


def load_matting() -> ModuleType:
    """The classical matting algorithm module."""
    return load_model_module("matting_classical", "matting")


@pytest.fixture(scope="session")
def numba_cache() -> Path:
    """A warm numba cache, also used by this process: set before pymatting is imported
    here so in-process matting loads the compiled kernels instead of compiling."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(NUMBA_CACHE))
    cache = Path(os.environ["NUMBA_CACHE_DIR"])
    warm_numba(cache)
    return cache


@pytest.fixture(scope="session")
def matting(numba_cache: Path) -> ModuleType:
    return load_matting()


@pytest.fixture(scope="session")
def triton_server(
    numba_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonProcess]:
    """tritonserver on free ports serving the embedded engines (matting_classical,
    upscale_lanczos, inpaint_telea) from the real model repository."""
    owner = "server" not in _SHARED
    if owner:
        _SHARED["server"] = TritonProcess.start(
            MODEL_REPOSITORY,
            tmp_path_factory.mktemp("triton"),
            # Only these: the production models need installed weights and have their
            # own servers (tests/models).
            model_control="explicit",
            load_models=list(EMBEDDED_MODELS),
            numba_cache_dir=numba_cache,
            ready_models=list(EMBEDDED_MODELS),
        )
    yield _SHARED["server"]
    if owner:
        _SHARED.pop("server").stop()


def copy_repository(dest: Path) -> Path:
    """The committed model repository at `dest`, without installed weights, exports or
    caches (what .gitignore leaves out)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == MODEL_REPOSITORY
        return {
            n
            for n in names
            if n == "__pycache__"
            or n.endswith((".onnx", ".plan"))
            or (top and (n.endswith("_onnx") or n.startswith(".")))
            or (top and n.startswith("sdxl_") and n != "sdxl_inpaint")
            or (top and n.startswith("wan_t2v_"))
            or n == "checkpoint"
        }

    shutil.copytree(MODEL_REPOSITORY, dest, ignore=ignore)
    return dest


@pytest.fixture(scope="session")
def test_models() -> dict[str, Path]:
    """{contract model name: tiny ONNX file} (and the CLIPSeg tokenizer beside them)."""
    from services.models.testmodels import make_test_models

    if "test_models" not in _SHARED:
        _SHARED["test_models"] = make_test_models(TEST_MODELS)
    return _SHARED["test_models"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def production_repo(test_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with every contract's stand-in installed (cpu target)."""
    from services.models.install import install
    from services.models.testmodels import tokenizer_dir

    if "production_repo" not in _SHARED:
        repo = copy_repository(tmp_path_factory.mktemp("production") / "repo")
        for name, path in test_models.items():
            tokenizer = tokenizer_dir(TEST_MODELS) if name == "segment_clipseg_onnx" else None
            install(name, path, repo, tokenizer=tokenizer)
        _SHARED["production_repo"] = repo
    return _SHARED["production_repo"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def production_server(
    production_repo: Path, numba_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonProcess]:
    """tritonserver serving `production_repo`, loading what `loadable_models` lists."""
    from services.models.repository import loadable_models

    owner = "production_server" not in _SHARED
    if owner:
        names = loadable_models(production_repo)
        _SHARED["production_server"] = TritonProcess.start(
            production_repo,
            tmp_path_factory.mktemp("triton-production"),
            model_control="explicit",
            load_models=names,
            numba_cache_dir=numba_cache,
            ready_models=names,
            timeout=240,
        )
    yield _SHARED["production_server"]  # type: ignore[misc]
    if owner:
        _SHARED.pop("production_server").stop()  # type: ignore[union-attr]
