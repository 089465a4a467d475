"""A tiny random-weight CatVTON checkpoint folder, exported once a session into a
temporary model repository (`write_tiny`, the committed `catvton` pipeline model
working at 64 x 128); shared by tests/models/test_catvton_*.py and the try-on tests.

Cost on 2 cores: about 3 s to build and export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
NUMBA_CACHE = REPO / ".lightbox" / "numba_cache"
WORK_SIZE = (64, 128)

_SHARED: dict[str, Any] = {}


@pytest.fixture(scope="session")
def catvton_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint folder, in the layout `lightbox models export catvton` reads."""
    from services.models.catvton.tiny import make_tiny_catvton

    if "folder" not in _SHARED:
        _SHARED["folder"] = make_tiny_catvton(tmp_path_factory.mktemp("catvton") / "ck", seed=0)
    return _SHARED["folder"]


@pytest.fixture(scope="session")
def catvton_repo(
    tmp_path_factory: pytest.TempPathFactory, catvton_folder: Path
) -> tuple[Path, Any]:
    """(model repository, ExportReport): the tiny checkpoint exported for the cpu target."""
    import torch

    from services.models.catvton.tiny import write_tiny

    if "repo" not in _SHARED:
        torch.set_num_threads(1)
        repo = tmp_path_factory.mktemp("catvton_repo")
        report = write_tiny(repo, work_size=WORK_SIZE, folder=catvton_folder)
        _SHARED["repo"] = (repo, report)
    return _SHARED["repo"]


def tryon_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A person photo that is not at the working size, a garment photo of another
    aspect, and a mask over the torso."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:150, 0:90].astype(np.float32)
    person = np.stack([90 + x, 60 + y * 0.8, 200 - y * 0.5], axis=-1)
    person = (person + rng.normal(0, 12, person.shape)).clip(0, 255).astype(np.uint8)
    garment = np.zeros((80, 70, 3), np.uint8)
    garment[:] = (200, 30, 40)
    garment[20:60, 15:55] = (30, 40, 200)
    mask = np.zeros((150, 90), np.uint8)
    mask[40:100, 15:75] = 255
    return person, garment, mask
