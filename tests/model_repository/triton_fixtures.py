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
import re
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

_SHARED: dict[str, TritonProcess] = {}


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
