"""The matting benchmark runs end to end at a tiny size (the classical engine through
the real tritonserver, one sample and one real photo), so `make bench` cannot rot
unnoticed; its metrics and contact sheet do what they say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.matting_bench import edge_mae, interior_kept, iou, mae, summarise, table
from bench.matting_sheet import LABEL_HEIGHT, SheetRow, checkerboard_cutout, contact_sheet
from services.samples.photos import load_photo

REPO = Path(__file__).resolve().parents[2]


def test_matting_bench_runs_the_classical_engine_on_a_sample_and_a_photo(tmp_path: Path) -> None:
    out = tmp_path / "matting.json"
    sheets = tmp_path / "sheets"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "matting_bench.py"),
            "--engines",
            "classical",
            "--samples",
            "1",
            "--size",
            "256",
            "--photos",
            "coffee",
            "--mp-runs",
            "1",
            "--sheets",
            str(sheets),
            "--out",
            str(out),
        ],
        check=True,
        timeout=600,
        cwd=REPO,
        capture_output=True,
    )
    report = json.loads(out.read_text())
    assert report["engines"]["classical"] == {"available": True, "note": "served by classical"}
    meta = report["meta"]
    assert meta["sample_size"] == 256 and meta["isnet"] == "not asked for"
    assert meta["auto_picks"] == "classical"  # no ISNet in this run's repository
    assert len(meta["code"]["commit"]) >= 7 and isinstance(meta["code"]["uncommitted"], list)
    assert isinstance(meta["code_changed_during_run"], bool)
    assert meta["cpu"]["cpus"] >= 1 and isinstance(meta["cpu"]["isa"], list)
    summary = report["summary"]["classical"]
    overall = summary["overall"]
    assert overall["n"] == 1 and 0.0 <= overall["iou"] <= 1.0 and 0.0 <= overall["mae"] <= 1.0
    assert overall["seconds"] > 0
    assert list(summary["kinds"]) == ["plain"]
    photos = summary["photos"]
    assert photos["n"] == 1 and photos["probes_total"] == len(load_photo("coffee").probes)
    assert 0 <= photos["probes_right"] <= photos["probes_total"]
    assert photos["probe_score"] == pytest.approx(
        photos["probes_right"] / photos["probes_total"], abs=1e-3
    )
    rows = report["images"]
    assert [(r["engine"], r["kind"]) for r in rows] == [
        ("classical", "plain"),
        ("classical", "photo"),
    ]
    assert set(rows[0]) == {
        "engine",
        "image",
        "kind",
        "seconds",
        "iou",
        "mae",
        "edge_mae",
        "interior_kept",
    }
    assert 0.0 <= rows[0]["interior_kept"] <= 1.0
    assert len(rows[1]["missed"]) == photos["probes_total"] - photos["probes_right"]
    (stage,) = report["stage_1mp"]
    assert stage["engine"] == "classical" and stage["megapixels"] == 1.0
    assert stage["p50_s"] >= stage["min_s"] > 0
    sheet = cv2.imread(str(sheets / "matting-photo.png"))
    assert sheet.shape == (256 + LABEL_HEIGHT, 3 * 256, 3)  # photo, alpha, cut-out
    sheet = cv2.imread(str(sheets / "matting-plain.png"))
    assert sheet.shape == (256 + LABEL_HEIGHT, 4 * 256, 3)  # and the true alpha


def test_iou_and_mae() -> None:
    truth = np.zeros((10, 10), np.uint8)
    truth[:, :5] = 255
    found = np.zeros((10, 10), np.uint8)
    found[:, :4] = 255
    found[:, 4] = 128  # counts as subject (> 127), half wrong in value
    assert iou(found, truth) == 1.0
    found[:, 5] = 200
    assert iou(found, truth) == pytest.approx(50 / 60)
    assert mae(found, truth) == pytest.approx((10 * 127 + 10 * 200) / 255 / 100)
    assert iou(np.zeros_like(truth), np.zeros_like(truth)) == 1.0


def test_edge_mae_looks_only_near_fractional_truth() -> None:
    truth = np.zeros((20, 20), np.uint8)
    truth[:, 10:] = 255
    truth[:, 10] = 102  # one fractional column
    found = truth.copy()
    found[:, 0] = 255  # far from the edge: not counted
    assert edge_mae(found, truth) == 0.0
    found[:, 10] = 255  # the fractional column made opaque; band is columns 8..12
    assert edge_mae(found, truth) == pytest.approx(153 / 255 / 5)
    assert edge_mae(found, np.zeros_like(truth)) is None


def test_interior_kept_counts_exact_255_three_pixels_inside_the_edge() -> None:
    truth = np.zeros((20, 20), np.uint8)
    truth[2:18, 2:18] = 255  # interior 3 px in: rows/cols 5..14, 100 pixels
    found = truth.copy()
    found[2:5] = 0  # wrong only at the edge band: does not count
    assert interior_kept(found, truth) == 1.0
    found[5, 5:15] = 254  # one interior row a hair off 255
    assert interior_kept(found, truth) == pytest.approx(0.9)
    assert interior_kept(found, np.full((20, 20), 128, np.uint8)) is None


def test_summary_groups_by_kind_and_scores_probes() -> None:
    rows = [
        {
            "engine": "e",
            "image": "a",
            "kind": "plain",
            "seconds": 1.0,
            "iou": 1.0,
            "mae": 0.0,
            "edge_mae": 0.01,
            "interior_kept": 0.9,
        },
        {
            "engine": "e",
            "image": "b",
            "kind": "glass",
            "seconds": 3.0,
            "iou": 0.5,
            "mae": 0.2,
            "edge_mae": 0.03,
            "interior_kept": None,
        },
        {
            "engine": "e",
            "image": "coffee",
            "kind": "photo",
            "seconds": 2.0,
            "probes_right": 3,
            "probes_total": 4,
            "missed": ["spoon bowl"],
        },
    ]
    s = summarise(rows, ["e", "absent"])
    assert set(s) == {"e"}
    assert list(s["e"]["kinds"]) == ["plain", "glass"]
    assert s["e"]["overall"] == {
        "n": 2,
        "iou": 0.75,
        "mae": 0.1,
        "edge_mae": 0.02,
        "interior_kept": 0.9,
        "seconds": 2.0,
    }
    assert s["e"]["kinds"]["glass"]["interior_kept"] is None
    assert s["e"]["photos"]["probe_score"] == 0.75
    assert s["e"]["photos"]["missed"] == {"coffee": ["spoon bowl"]}
    text = table(s, ["e"])
    assert "| **overall** | 2 | 0.750 / 0.1000 / 90.0% / 2.00 |" in text
    assert "probes 3/4" in text
    photos_only = summarise(rows[2:], ["e"])
    assert table(photos_only, ["e"]).splitlines()[2:] == [
        "| real photos | 1 | probes 3/4 / 2.00 s |"
    ]


def test_contact_sheet_shows_photo_truth_alpha_and_cutout() -> None:
    rgb = np.full((60, 90, 3), (200, 30, 30), np.uint8)
    alpha = np.zeros((60, 90), np.uint8)
    alpha[:, 45:] = 255
    cut = checkerboard_cutout(rgb, alpha)
    assert (cut[:, 45:] == (200, 30, 30)).all()
    assert set(np.unique(cut[:, :45])) <= {196, 236}
    sheet = contact_sheet(
        [SheetRow("t", rgb, truth=alpha, alphas={"x": alpha})], ["x", "y"], cell=64
    )
    assert sheet.shape == (64 + LABEL_HEIGHT, 6 * 64, 3)
    body = sheet[LABEL_HEIGHT:]
    # The photo cell holds the photo's red; "y" never ran, so its cells stay empty grey.
    assert (body[32, 32] == (200, 30, 30)).all()
    assert (body[:, 4 * 64 :] == 48).all()
    # The alpha cell: black left, white right.
    assert body[32, 2 * 64 + 10].max() < 10 and body[32, 2 * 64 + 54].min() > 245
