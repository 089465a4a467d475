"""A tiny random-weight MusicGen checkpoint (services.models.musicgen.tiny), exported
into a temporary model repository beside a copy of the committed pipeline model, and
one real tritonserver serving it; shared by the tests that import these fixtures.

Besides `musicgen`, the repository holds `musicgen_broken`: the same pipeline with its
decoder pointed at a model that does not exist, for the component-failure path; and
`musicgen_unexported`, the committed pipeline model without a checkpoint, which the
server (explicit model control) does not load at start so a test can try.
Memoised in `_SHARED`, so the session builds each once (about 3 s to build and
export, 5 s for tritonserver to load the five models on 2 cores).
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
PIPELINES = ("musicgen", "musicgen_broken")
COMPONENTS = ("musicgen_text_encoder", "musicgen_decoder", "musicgen_audio_decoder")
UNEXPORTED = "musicgen_unexported"

_SHARED: dict[str, Any] = {}


def _shared(key: str, make: Any) -> Any:
    if key not in _SHARED:
        _SHARED[key] = make()
    return _SHARED[key]


@pytest.fixture(scope="session")
def musicgen_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A transformers-format tiny MusicGen folder."""
    import torch

    from services.models.musicgen.tiny import make_tiny_musicgen

    torch.set_num_threads(1)
    return _shared(
        "checkpoint",
        lambda: make_tiny_musicgen(tmp_path_factory.mktemp("musicgen") / "tiny", seed=0),
    )


@pytest.fixture(scope="session")
def musicgen_repo(
    tmp_path_factory: pytest.TempPathFactory, musicgen_checkpoint: Path
) -> tuple[Path, Any]:
    """(model repository, ExportReport) with the tiny checkpoint exported for cpu."""
    from services.models.musicgen.export import export_musicgen

    def make() -> tuple[Path, Any]:
        repo = tmp_path_factory.mktemp("musicgen_repo")
        for name in (*PIPELINES, UNEXPORTED):
            shutil.copytree(
                MODEL_REPOSITORY / "musicgen",
                repo / name,
                ignore=shutil.ignore_patterns("__pycache__", "checkpoint"),
            )
            config = repo / name / "config.pbtxt"
            config.write_text(config.read_text().replace('name: "musicgen"', f'name: "{name}"'))
        report = export_musicgen(musicgen_checkpoint, repo)
        shutil.copytree(repo / "musicgen" / "checkpoint", repo / "musicgen_broken" / "checkpoint")
        meta_path = repo / "musicgen_broken" / "checkpoint" / "pipeline.json"
        meta = json.loads(meta_path.read_text())
        meta["components"]["decoder"] = "musicgen_decoder_not_deployed"
        meta_path.write_text(json.dumps(meta))
        return repo, report

    return _shared("repo", make)


@pytest.fixture(scope="session")
def musicgen_triton(
    tmp_path_factory: pytest.TempPathFactory, musicgen_repo: tuple[Path, Any]
) -> Iterator[TritonProcess]:
    """tritonserver serving the exported repository, both exported pipelines ready."""
    repo, _ = musicgen_repo
    owner = "triton" not in _SHARED
    if owner:
        _SHARED["triton"] = TritonProcess.start(
            repo,
            tmp_path_factory.mktemp("musicgen_triton"),
            model_control="explicit",
            load_models=[*COMPONENTS, *PIPELINES],
            numba_cache_dir=NUMBA_CACHE,
            ready_models=list(PIPELINES),
            timeout=120,
        )
    yield _SHARED["triton"]
    if owner:
        _SHARED.pop("triton").stop()
