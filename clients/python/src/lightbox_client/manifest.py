"""The run's manifest, `DIR/manifest.jsonl`: a header line with the run's settings,
then one line per change of an item (`sku/variant`), appended and flushed at once.
Reading it replays the lines (the last one of an item wins), so a crash or Ctrl-C
loses at most the line being written, and a re-run knows what is done, what was
submitted (and is only polled again), and what is still to send."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NAME = "manifest.jsonl"
FORMAT = 1


@dataclass
class Entry:
    sku: str
    variant: str
    status: str = "pending"  # pending, submitted, queued, processing, or a terminal one
    key: str = ""  # the idempotency key it was submitted under
    job_id: str | None = None
    batch_id: str | None = None
    output: str | None = None  # relative to DIR
    width: int | None = None
    height: int | None = None
    error: dict[str, str] | None = None
    # Whether the error is final (the server's verdict) or a re-run should try again.
    final: bool = False
    credits_used: float = 0.0
    # The server's QA verdict on the output: {"needs_review", "reasons": [codes]}.
    qa: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.sku}/{self.variant}"


@dataclass
class Manifest:
    path: Path
    settings: dict[str, Any]
    entries: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: Path, settings: dict[str, Any]) -> Manifest:
        """Reads the manifest in `folder`, or starts one. A manifest written for other
        settings (another profile version or operation) is refused: its files would be
        mixed with this run's."""
        path = folder / NAME
        manifest = cls(path, settings)
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(json.dumps({"manifest": FORMAT, "settings": settings}) + "\n")
            return manifest
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0]) if lines else {}
        if header.get("settings") != settings:
            raise ManifestMismatch(path, header.get("settings"), settings)
        for line in lines[1:]:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line being written when the run stopped
            entry = Entry(**data)
            manifest.entries[entry.name] = entry
        return manifest

    def entry(self, sku: str, variant: str) -> Entry:
        return self.entries.get(f"{sku}/{variant}") or Entry(sku, variant)

    def record(self, entry: Entry) -> None:
        self.entries[entry.name] = entry
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
            # Flushed, not fsynced: a crash of this process loses nothing, and 10,000
            # items do not wait on the disk 30,000 times.
            f.flush()


class ManifestMismatch(Exception):
    def __init__(self, path: Path, found: Any, wanted: dict[str, Any]) -> None:
        super().__init__(
            f"{path} belongs to another run ({json.dumps(found)}); this run is "
            f"{json.dumps(wanted)}. Use another --out folder."
        )
