"""The whole stack, started once per database backend for the stack tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.settings import CommonSettings
from services.common.triton import MODEL_REPOSITORY
from services.stack import Stack
from tests.conftest import NUMBA_CACHE, free_port_block

# `make test` provisions ISNet into the checkout's model repository (`make models`; a
# failure there fails CI), so the stacks here match with it; a developer who opted out
# (LIGHTBOX_PROVISION_MODELS=0) gets the classical engine, with its fallback note.
ISNET_INSTALLED = (MODEL_REPOSITORY / "matting_isnet_onnx" / "1" / "model.onnx").exists()
MATTING_ENGINE = "isnet" if ISNET_INSTALLED else "classical"
# Likewise the RRDN super-resolution model; without it Lanczos serves.
RRDN_INSTALLED = (MODEL_REPOSITORY / "upscale_rrdn_onnx" / "1" / "model.onnx").exists()
UPSCALE_ENGINE = "rrdn" if RRDN_INSTALLED else "lanczos"


def expected_upscale(engines: dict[str, str]) -> bool:
    """Whether a job's `engines` name the upscale engine this checkout should serve,
    with the fallback note exactly when Lanczos served."""
    if RRDN_INSTALLED:
        return engines == {"upscale": "rrdn"}
    note = engines.get("upscale_fallback", "")
    return engines.get("upscale") == "lanczos" and "lightbox models fetch rrdn" in note


def expected_matting(engines: dict[str, str]) -> bool:
    """Whether a job's `engines` name the matting engine this checkout should serve,
    with the fallback note exactly when the classical engine served for want of ISNet."""
    if ISNET_INSTALLED:
        return engines.get("matting") == "isnet" and "matting_fallback" not in engines
    note = engines.get("matting_fallback", "")
    return engines.get("matting") == "classical" and "lightbox models fetch isnet" in note


@dataclass
class RunningStack:
    stack: Stack
    key: str
    home: Path

    @property
    def url(self) -> str:
        return self.stack.base_url

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", **extra}


def start_stack(
    home: Path, database_url: str = "", model_repository: Path = MODEL_REPOSITORY
) -> RunningStack:
    settings = CommonSettings(
        home=home,
        http_port=free_port_block(),
        database_url=database_url,
        numba_cache_dir=NUMBA_CACHE,
    )
    stack = Stack(
        settings=settings,
        log_path=home / "stack.log",
        model_repository=model_repository,
        # Every test of the session shares this stack and the address 127.0.0.1: the
        # browser's page loads and the clients' downloads of signed links alone pass
        # the default 600 keyless requests a minute. The anonymous limit itself is
        # tested on a stack of its own (test_api_limits).
        extra_env={"LIGHTBOX_ANONYMOUS_RATE_LIMIT_PER_MINUTE": "60000"},
    )
    key = stack.prepare()
    stack.start()
    try:
        stack.wait_ready(timeout=240)
    except Exception:
        stack.stop()
        log = (home / "stack.log").read_text(errors="replace")[-6000:]
        raise RuntimeError(f"stack did not start; log tail:\n{log}") from None
    return RunningStack(stack, key, home)


@pytest.fixture(scope="session")
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("stack-sqlite"))
    yield running
    running.stack.stop()


@pytest.fixture(scope="session")
def pg_stack(
    tmp_path_factory: pytest.TempPathFactory, pg_database_factory
) -> Iterator[RunningStack]:
    running = start_stack(
        tmp_path_factory.mktemp("stack-pg"), pg_database_factory("lightbox_stack")
    )
    yield running
    running.stack.stop()


@pytest.fixture(params=["sqlite", "pg"])
def stack(request: pytest.FixtureRequest) -> RunningStack:
    return request.getfixturevalue(f"{request.param}_stack")


@pytest.fixture(scope="session")
def generative_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One stack serving every generative pipeline with tiny random-weight models:
    SDXL and SDXL inpainting, MusicGen, WAN 2.1 and CatVTON, exported into a copy of
    the model repository (shared by test_generative_e2e and test_media_e2e: one
    start instead of two)."""
    from services.models.catvton.tiny import write_tiny as write_catvton
    from services.models.musicgen.tiny import write_tiny as write_musicgen
    from services.models.sdxl.export import export_sdxl
    from services.models.sdxl.tiny import make_tiny_sdxl
    from services.models.wan.tiny import write_tiny as write_wan

    root = tmp_path_factory.mktemp("generative")
    repo = root / "model_repository"
    shutil.copytree(MODEL_REPOSITORY, repo, ignore=shutil.ignore_patterns("__pycache__"))
    for name, inpaint in (("sdxl", False), ("sdxl_inpaint", True)):
        checkpoint = make_tiny_sdxl(root / f"ckpt_{name}", inpaint=inpaint, seed=3)
        assert export_sdxl(checkpoint, repo).ok
    assert write_musicgen(repo, seed=1).ok
    assert write_catvton(repo, seed=2).ok
    assert write_wan(repo, seed=3).ok
    running = start_stack(root / "home", model_repository=repo)
    yield running
    running.stack.stop()
