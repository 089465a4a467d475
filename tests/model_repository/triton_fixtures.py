"""One real tritonserver for the whole test session, serving `model_repository/`, and
the classical matting algorithm loaded straight from its model folder.

Test modules import the fixtures they use (`from tests.model_repository.triton_fixtures
import triton_server`). pytest makes one fixture instance per importing module, so the
process itself is shared through `_SHARED` and stopped once, at the end of the session.

Cost: pymatting's numba kernels compile once per checkout (~40 s on 2 cores) into
NUMBA_CACHE below, the same cache the stack tests use; later sessions load it in ~1 s.
tritonserver is ready ~3 s after start.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from services.common.triton import MODEL_REPOSITORY, TritonProcess, warm_numba

REPO = Path(__file__).resolve().parents[2]
NUMBA_CACHE = REPO / ".lightbox" / "numba_cache"
MATTING_PY = MODEL_REPOSITORY / "matting_classical" / "1" / "matting.py"

_SHARED: dict[str, TritonProcess] = {}


def load_matting() -> ModuleType:
    """The model's algorithm module, imported from its file (the version folder `1`
    is not a package)."""
    name = "matting_classical_algorithm"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MATTING_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
    """tritonserver on free ports serving matting_classical from the real model
    repository."""
    owner = "server" not in _SHARED
    if owner:
        _SHARED["server"] = TritonProcess.start(
            MODEL_REPOSITORY,
            tmp_path_factory.mktemp("triton"),
            # Only this model: others share model_repository/ and have their own tests.
            model_control="explicit",
            load_models=["matting_classical"],
            numba_cache_dir=numba_cache,
            ready_models=["matting_classical"],
        )
    yield _SHARED["server"]
    if owner:
        _SHARED.pop("server").stop()
