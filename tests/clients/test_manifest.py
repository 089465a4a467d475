"""clients/python/src/lightbox_client/manifest.py, report.py and progress.py: the
manifest replays to the last state of each item and survives a torn last line; it
refuses another run's settings; the report escapes what it shows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from lightbox_client.catalog import Item
from lightbox_client.manifest import Entry, Manifest, ManifestMismatch
from lightbox_client.progress import Progress
from lightbox_client.report import write
from lightbox_client.runner import qa_summary

SETTINGS = {"profile": "shop-main@2", "operation": "product-photo", "fields": {}}


def test_replay_keeps_the_last_state_and_skips_a_torn_line(tmp_path: Path) -> None:
    m = Manifest.open(tmp_path, SETTINGS)
    m.record(Entry("A1", "main", status="queued", key="A1:main:shop-main@2", job_id="j1"))
    m.record(Entry("A1", "main", status="completed", job_id="j1", output="A1/main.jpg"))
    m.record(Entry("B2", "main", status="queued", job_id="j2"))
    with open(tmp_path / "manifest.jsonl", "a") as f:
        f.write('{"sku": "B2", "variant": "main", "sta')  # the run died mid-line
    again = Manifest.open(tmp_path, SETTINGS)
    assert again.entry("A1", "main").status == "completed"
    assert again.entry("B2", "main").job_id == "j2" and again.entry("B2", "main").status == "queued"
    assert again.entry("C3", "main").status == "pending"
    with pytest.raises(ManifestMismatch, match="another run"):
        Manifest.open(tmp_path, {**SETTINGS, "profile": "shop-main@3"})


def test_report_lists_outputs_and_failures_escaped(tmp_path: Path) -> None:
    m = Manifest.open(tmp_path, SETTINGS)
    items = [
        Item(2, "A1", "main", "/x/a.jpg", "product-page", {}),
        Item(3, "B2", "main", "/x/b.jpg", None, {}),
        Item(4, "C3", "main", "/x/c.jpg", None, {}),
    ]
    m.record(
        Entry(
            "A1",
            "main",
            "completed",
            job_id="j1",
            output="A1/main.jpg",
            final=True,
            width=300,
            height=300,
            credits_used=7.0,
            qa=qa_summary(
                {"needs_review": True, "reasons": [{"code": "edge_halo", "message": ""}]}
            ),
        )
    )
    m.record(
        Entry(
            "B2", "main", "failed", error={"error": "invalid_image", "message": "<b>"}, final=True
        )
    )
    report = write(tmp_path, items, m, {"mode": "jobs"})
    assert report["counts"] == {"completed": 1, "failed": 1, "unfinished": 1}
    assert report["credits_used"] == 7.0 and report["needs_review"] == 1
    saved = json.loads((tmp_path / "report.json").read_text())
    assert [i["status"] for i in saved["items"]] == ["completed", "failed", "unfinished"]
    page = (tmp_path / "report.html").read_text()
    assert "<img src='A1/main.jpg'" in page and page.count("<img ") == 1
    assert saved["items"][0]["qa"] == {"needs_review": True, "reasons": ["edge_halo"]}
    assert "needs review: edge_halo" in page
    assert "invalid_image: &lt;b&gt;" in page and "<b>" not in page
    assert "C3" in page and "not finished" in page


def test_progress_counts_by_status_with_an_eta() -> None:
    out = io.StringIO()
    p = Progress(4, stream=out, every=0)
    for name in "abcd":
        p.set(name, "pending", draw=False)
    p.start()
    p.set("a", "completed")
    p.set("b", "processing")
    line = p.line()
    assert line.startswith("[") and "1/4 1 completed, 1 processing, 2 pending" in line
    assert "ETA" in line
    assert out.getvalue().count("\n") >= 2  # not a terminal: whole lines
