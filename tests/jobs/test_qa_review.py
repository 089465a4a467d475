"""The `qa` object of a job (services/jobs/qa_review.py) through the worker pipeline:
the acceptance set of flawed and clean inputs, thresholds, compliance presets
checked independently on the pixels, and grading that cannot run."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from services.common import compliance
from services.common.qa_thresholds import QaThresholds
from services.jobs.pipeline import Result
from services.jobs.qa_review import Evidence, grade

from .qa_cases import CASES, Case, Outcome, Runner, _job, confusion, run_all


@pytest.fixture(scope="module")
def runner() -> Runner:
    return Runner()


@pytest.fixture(scope="module")
def outcomes(runner: Runner) -> dict[str, Outcome]:
    return {o.case.name: o for o in run_all(runner)}


def _case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def test_acceptance_confusion_table(outcomes: dict[str, Outcome]) -> None:
    flawed = sum(c.flawed for c in CASES)
    assert confusion(list(outcomes.values())) == {
        "flawed_flagged": flawed,
        "flawed_missed": 0,
        "clean_flagged": 0,
        "clean_passed": len(CASES) - flawed,
        "flawed_wrong_reason": 0,
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_case_gets_the_right_verdict_and_reason(
    case: Case, outcomes: dict[str, Outcome]
) -> None:
    qa = outcomes[case.name].qa
    assert qa["needs_review"] is case.flawed, qa["reasons"]
    codes = {r["code"] for r in qa["reasons"]}
    assert set(case.expect) <= codes
    for reason in qa["reasons"]:
        assert reason["message"].endswith(".") and len(reason["message"]) > 20


def test_scores_have_their_documented_shape(outcomes: dict[str, Outcome]) -> None:
    scores = outcomes["bottle on white-studio"].qa["scores"]
    assert set(scores) == {
        "edge_halo",
        "matte_uncertainty",
        "subject_cropped",
        "subject_fill",
        "background_purity",
        "shadow",
        "resolution",
    }
    assert 0 <= scores["edge_halo"]["value"] <= 1
    assert scores["matte_uncertainty"] == {"value": 0.0, "engine_confidence": None}
    assert scores["subject_cropped"] == {"value": False, "sides": []}
    assert scores["subject_fill"]["value"] == pytest.approx(0.8, abs=0.01)
    assert scores["subject_fill"]["center_x"] == pytest.approx(50, abs=1)
    assert scores["background_purity"] == {"value": 1.0, "colour": "#ffffff"}
    assert scores["shadow"]["requested"] == "soft" and scores["shadow"]["visible"] is True
    res = scores["resolution"]
    assert (res["width"], res["height"], res["source_width"]) == (640, 640, 640)
    assert res["matches_request"] is None and res["upscale"] == pytest.approx(1.17, abs=0.02)


def test_cropped_case_names_the_side(outcomes: dict[str, Outcome]) -> None:
    qa = outcomes["product cut by the frame"].qa
    assert qa["scores"]["subject_cropped"] == {"value": True, "sides": ["right"]}
    assert "right" in qa["reasons"][0]["message"]


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _independent_fill(rgb: np.ndarray) -> float:
    """The non-white box's larger side share, from the pixels alone."""
    ys, xs = np.nonzero(np.any(rgb != 255, axis=2))
    h, w = rgb.shape[:2]
    return max((xs.max() - xs.min() + 1) / w, (ys.max() - ys.min() + 1) / h)


@pytest.mark.parametrize("name", ["bottle for amazon-main", "jar for google-merchant"])
def test_compliance_presets_pass_their_own_rules_and_an_independent_check(
    runner: Runner, name: str
) -> None:
    case = _case(name)
    qa, data = runner.run(case)
    preset = compliance.get(case.params["compliance"])
    report = qa["compliance"]
    assert report["preset"] == preset.name and report["passed"] is True
    assert {r["rule"] for r in report["rules"]} >= {"product_fill", "min_size", "format"}
    assert all(r["passed"] for r in report["rules"])
    # Independently of the QA code: size, format, white background and fill.
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.format.lower() in preset.formats
    assert min(image.size) >= preset.min_short_side
    assert max(image.size) >= preset.min_long_side
    rgb = _decoded(data)
    assert (rgb[:8] == 255).all() and (rgb[-8:] == 255).all()  # top and bottom margins
    assert (rgb[:, :8] == 255).all() and (rgb[:, -8:] == 255).all()
    assert preset.min_fill <= _independent_fill(rgb) <= preset.max_fill


def test_a_request_that_cannot_comply_completes_and_says_why(outcomes: dict[str, Outcome]) -> None:
    report = outcomes["amazon-main from a small source"].qa["compliance"]
    failed = {r["rule"]: r for r in report["rules"] if not r["passed"]}
    assert report["passed"] is False and set(failed) == {"not_upscaled"}
    assert failed["not_upscaled"]["value"] > 2
    cropped = outcomes["amazon-main, product cut by the frame"].qa["compliance"]
    assert [r["rule"] for r in cropped["rules"] if not r["passed"]] == ["whole_product"]


def test_request_thresholds_override_the_servers(runner: Runner) -> None:
    tiny = _case("tiny product, product photo")
    relaxed = Case(
        tiny.name, True, tiny.operation, {"qa_thresholds": {"max_upscale": 16}}, tiny.make
    )
    qa, _ = runner.run(relaxed)
    assert qa["needs_review"] is False
    strict = Case(
        "strict",
        False,
        "product-photo",
        {"qa_thresholds": {"min_long_side": 2000}},
        _case("bottle on white-studio").make,
    )
    qa, _ = runner.run(strict)
    assert [r["code"] for r in qa["reasons"]] == ["low_resolution"]
    assert "least 2000" in qa["reasons"][0]["message"]


def test_server_thresholds_are_a_setting(outcomes: dict[str, Outcome]) -> None:
    lenient = Runner(thresholds=QaThresholds(max_edge_halo=0.95))
    qa, _ = lenient.run(_case("fringed cut-out, product photo"))
    assert qa["needs_review"] is False
    assert qa["scores"]["edge_halo"]["value"] == pytest.approx(
        outcomes["fringed cut-out, product photo"].qa["scores"]["edge_halo"]["value"]
    )


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def test_operations_without_a_subject_get_resolution_only() -> None:
    out = np.zeros((96, 128, 3), np.uint8)
    upscaled = grade(
        Evidence("upscale", {"scale": 4}, (32, 24), _png(out), "png"),
        QaThresholds(min_long_side=64),
    )
    assert upscaled["needs_review"] is False
    assert {k for k, v in upscaled["scores"].items() if v is not None} == {"resolution"}
    assert upscaled["scores"]["resolution"]["matches_request"] is True
    generated = grade(
        Evidence("generate", {"width": 512, "height": 512}, None, _png(out), "png"), QaThresholds()
    )
    assert [r["code"] for r in generated["reasons"]] == ["size_mismatch", "low_resolution"]
    assert generated["scores"]["resolution"]["source_width"] is None


def test_grading_that_cannot_run_sends_the_job_to_review(runner: Runner) -> None:
    result = Result(b"not an image", "png", 1, 1)
    job = _job("product-photo", {}, "inputs/none.png")
    graded: Any = runner.pipeline._graded(result, job, lambda stage: None, source_size=(1, 1))
    assert graded.qa["needs_review"] is True
    assert [r["code"] for r in graded.qa["reasons"]] == ["qa_failed"]
