"""The local blob store: atomic writes under fresh keys."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from services.common import blobstore
from services.common.blobstore import LocalBlobStore, is_valid_key
from services.common.errors import NotFound


def test_put_get_delete_round_trip(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key = store.put(b"\x89PNG...", "outputs", ".png")
    assert is_valid_key(key) and key.startswith("outputs/") and key.endswith(".png")
    assert store.get(key) == b"\x89PNG..."
    assert store.exists(key)
    assert stat.S_IMODE(store.path(key).stat().st_mode) == 0o600
    # Nothing but the blob in its folder: the temp file became it.
    assert [p.name for p in store.path(key).parent.iterdir()] == [store.path(key).name]
    assert [k for k, _ in store.list("outputs")] == [key]
    assert store.delete(key) and not store.exists(key)
    with pytest.raises(NotFound):
        store.get(key)


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(_src: Any, _dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blobstore.os, "replace", disk_full)
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(OSError, match="No space"):
        store.put(b"result", "outputs", ".jpg")
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []
