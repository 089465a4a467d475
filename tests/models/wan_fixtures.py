"""A tiny random-weight WAN 2.1 checkpoint exported (services.models.wan.tiny.write_tiny)
into a temporary model repository next to a copy of the committed wan_t2v pipeline
model, and one real tritonserver serving it; shared by tests/models/test_wan_*.py.

The repository also holds `wan_t2v_unexported`, the committed pipeline model without a
checkpoint, which the server is not asked to load (explicit model control): a test
loads it to see the refusal.

Built once a session (`_SHARED`). Cost on 2 busy cores: about 3 s for the checkpoint,
5 s to export, 15 to 20 s for tritonserver to load the four models (the VAE decoder's
stub imports torch and diffusers).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common.triton import MODEL_REPOSITORY, TritonProcess

REPO = Path(__file__).resolve().parents[2]
NUMBA_CACHE = REPO / ".lightbox" / "numba_cache"
SERVED = ("wan_t2v_text_encoder", "wan_t2v_transformer", "wan_t2v_vae_decoder", "wan_t2v")
UNEXPORTED = "wan_t2v_unexported"

_SHARED: dict[str, Any] = {}


@pytest.fixture(scope="session")
def wan_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """(model repository, diffusers folder, ExportReport)."""
    import torch

    from services.models.wan.tiny import write_tiny

    if "export" not in _SHARED:
        torch.set_num_threads(1)
        root = tmp_path_factory.mktemp("wan")
        repo = root / "repo"
        report = write_tiny(repo, checkpoint_dir=root / "diffusers")
        shutil.copytree(
            MODEL_REPOSITORY / "wan_t2v",
            repo / UNEXPORTED,
            ignore=shutil.ignore_patterns("__pycache__", "checkpoint"),
        )
        config = repo / UNEXPORTED / "config.pbtxt"
        config.write_text(config.read_text().replace('name: "wan_t2v"', f'name: "{UNEXPORTED}"'))
        _SHARED["export"] = (repo, root / "diffusers", report)
    return _SHARED["export"]


@pytest.fixture(scope="session")
def wan_triton(
    tmp_path_factory: pytest.TempPathFactory, wan_export: tuple[Path, Path, Any]
) -> Iterator[TritonProcess]:
    repo, _, _ = wan_export
    owner = "triton" not in _SHARED
    if owner:
        for name in SERVED[:3]:
            # One thread per component: the test machine's cores are shared.
            config = repo / name / "config.pbtxt"
            text = config.read_text()
            text = text.replace(
                '"intra_op_threads", value: { string_value: "0" }',
                '"intra_op_threads", value: { string_value: "1" }',
            )
            text = text.replace(
                '"torch_threads", value: { string_value: "0" }',
                '"torch_threads", value: { string_value: "1" }',
            )
            config.write_text(text)
        _SHARED["triton"] = TritonProcess.start(
            repo,
            tmp_path_factory.mktemp("wan_triton"),
            model_control="explicit",
            load_models=list(SERVED),
            numba_cache_dir=NUMBA_CACHE,
            ready_models=list(SERVED),
            timeout=240,
        )
    yield _SHARED["triton"]
    if owner:
        _SHARED.pop("triton").stop()
