"""The QA acceptance set: deliberately flawed inputs and clean ones, run through the
real worker pipeline (services/jobs/pipeline.py) with the real compositor in
process and a matting engine that returns the case's matte, so the `qa` object is
the one a job would carry. Used by tests/jobs/test_qa_review.py and by
bench/qa_acceptance.py, which prints the confusion table."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from services.common.blobstore import LocalBlobStore
from services.common.qa_thresholds import QaThresholds
from services.compositor.server import CompositorServicer
from services.compositor.settings import CompositorSettings
from services.jobs.pipeline import Pipeline
from services.jobs.store import JobRecord
from tests.compositor import products


@dataclass(frozen=True)
class Case:
    name: str
    flawed: bool
    operation: str
    params: dict[str, Any]
    make: Callable[[], tuple[np.ndarray, np.ndarray]]  # () -> (photo RGB, matte)
    # Reason codes a flawed case must get (all of them).
    expect: tuple[str, ...] = field(default=())


class _Matte:
    """The matting engine of a case: returns the matte it was given."""

    def __init__(self) -> None:
        self.alpha: np.ndarray | None = None

    def matting(self, rgb: np.ndarray) -> tuple[np.ndarray, str]:
        assert self.alpha is not None and self.alpha.shape == rgb.shape[:2]
        return self.alpha, "case-matte"

    def matting_fallback_note(self, engine: str) -> str | None:
        return None


class _InProcessCompositor:
    """The compositor's servicer called directly, as the gRPC stub would."""

    def __init__(self) -> None:
        self._servicer = CompositorServicer(CompositorSettings())

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self._servicer, method)
        return lambda request, timeout=None: call(request, None)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _job(operation: str, params: dict[str, Any], image_key: str) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        id="qa-case",
        account_id="acct",
        operation=operation,
        status="processing",
        params=params,
        inputs={"image": image_key},
        credits=0.0,
        pipeline=[],
        engines={},
        estimated_seconds=1,
        created_at=now,
        started_at=now,
        completed_at=None,
        output_key=None,
        output_expires_at=None,
        width=None,
        height=None,
        format=None,
        processing_ms=None,
        error_code=None,
        error_message=None,
        attempts=1,
        max_attempts=3,
        stage=None,
        webhook_url=None,
        idempotency_key=None,
        attempt_errors=[],
    )


class Runner:
    """Runs cases through one Pipeline; `run` returns the job's `qa` and output bytes."""

    def __init__(self, root: Path | None = None, thresholds: QaThresholds | None = None) -> None:
        self._tmp = None if root else tempfile.TemporaryDirectory()
        self.blobs = LocalBlobStore(root or Path(self._tmp.name))  # type: ignore[union-attr]
        self.matte = _Matte()
        self.pipeline = Pipeline(
            self.blobs,
            self.matte,  # type: ignore[arg-type]
            _InProcessCompositor(),  # type: ignore[arg-type]
            60.0,
            thresholds,
        )

    def run(self, case: Case) -> tuple[dict[str, Any], bytes]:
        photo, matte = case.make()
        self.matte.alpha = matte
        key = self.blobs.put(_png(photo), "inputs", ".png")
        result = self.pipeline.run(_job(case.operation, case.params, key), lambda stage: None)
        assert result.qa is not None
        return result.qa, result.data


# -- inputs ------------------------------------------------------------------------------

GREY_BACKDROP = (112, 112, 112)
LIGHT_BACKDROP = (236, 236, 236)
GREEN_BACKDROP = (70, 160, 70)


def _exact(subject: np.ndarray, backdrop: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    return products.photographed(subject, backdrop), np.ascontiguousarray(subject[:, :, 3])


def _fringed(matte: np.ndarray, px: int) -> np.ndarray:
    """A matte that reaches `px` pixels into the old background, hard-edged: a cut-out
    with a rim of backdrop around it."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(np.where(matte >= 128, 255, 0).astype(np.uint8), kernel)


def _shifted(subject: np.ndarray, dx: float) -> np.ndarray:
    """The subject moved right by dx of the frame: part of it leaves the photo."""
    s = subject.shape[1]
    out = np.zeros_like(subject)
    shift = round(dx * s)
    out[:, shift:] = subject[:, : s - shift]
    return out


def _tiny(subject: np.ndarray, side: int, frame: int) -> np.ndarray:
    """The subject shrunk to `side` px, in the middle of a frame x frame photo."""
    small = cv2.resize(subject, (side, side), interpolation=cv2.INTER_AREA)
    out = np.zeros((frame, frame, 4), np.uint8)
    o = (frame - side) // 2
    out[o : o + side, o : o + side] = small
    return out


def _dark(good_matte: bool) -> tuple[np.ndarray, np.ndarray]:
    """A dark product on a dark backdrop, and either its true matte or the weak one a
    model gives it: low, blotchy alpha over the body."""
    subject = products.jar(640, colour=(44, 40, 38))
    subject[:, :, :3] = (subject[:, :, :3] * 0.4).astype(np.uint8)
    photo = products.photographed(subject, (28, 28, 30))
    if good_matte:
        return photo, np.ascontiguousarray(subject[:, :, 3])
    rng = np.random.default_rng(7)
    blotch = cv2.GaussianBlur(rng.uniform(0.3, 0.8, (640, 640)).astype(np.float32), (0, 0), 12)
    matte = (subject[:, :, 3].astype(np.float32) * blotch).astype(np.uint8)
    return photo, matte


def _small(size: int, make: Callable[[int], np.ndarray]) -> Callable[[], tuple]:
    return lambda: _exact(make(size), LIGHT_BACKDROP)


CASES: tuple[Case, ...] = (
    # -- clean --------------------------------------------------------------------------
    Case("bottle on white-studio", False, "product-photo", {}, _small(640, products.bottle)),
    Case(
        "box on marble",
        False,
        "product-photo",
        {"preset": "marble", "shadow_type": "natural"},
        _small(640, products.box),
    ),
    Case("jar cut-out (png)", False, "remove-background", {}, _small(640, products.jar)),
    Case(
        "bottle cut-out on white (jpeg)",
        False,
        "remove-background",
        {"bg_color": "#ffffff", "output_format": "jpeg"},
        _small(640, products.bottle),
    ),
    Case(
        "box, background replaced",
        False,
        "replace-background",
        {"prompt": "concrete"},
        _small(640, products.box),
    ),
    Case(
        "bottle for amazon-main",
        False,
        "product-photo",
        {
            "compliance": "amazon-main",
            "preset": "white-studio",
            "shadow_type": "none",
            "scale": 0.87,
            "aspect_ratio": "1:1",
            "output_format": "jpeg",
            "y": 50.0,
        },
        _small(1200, products.bottle),
    ),
    Case(
        "jar for google-merchant",
        False,
        "product-photo",
        {
            "compliance": "google-merchant",
            "preset": "white-studio",
            "shadow_type": "none",
            "scale": 0.85,
            "aspect_ratio": "1:1",
            "output_format": "jpeg",
            "y": 50.0,
        },
        _small(1000, products.jar),
    ),
    Case(
        "dark product on dark, good matte",
        False,
        "product-photo",
        {"preset": "dark-studio"},
        lambda: _dark(good_matte=True),
    ),
    # -- flawed -------------------------------------------------------------------------
    Case(
        "fringed cut-out, product photo",
        True,
        "product-photo",
        {},
        lambda: (
            products.photographed(products.bottle(640), GREY_BACKDROP),
            _fringed(products.bottle(640)[:, :, 3], 4),
        ),
        ("edge_halo",),
    ),
    Case(
        "fringed cut-out, transparent png",
        True,
        "remove-background",
        {},
        lambda: (
            products.photographed(products.jar(640), GREEN_BACKDROP),
            _fringed(products.jar(640)[:, :, 3], 4),
        ),
        ("edge_halo",),
    ),
    Case(
        "product cut by the frame",
        True,
        "product-photo",
        {},
        lambda: _exact(_shifted(products.box(640), 0.3), LIGHT_BACKDROP),
        ("subject_cropped",),
    ),
    Case(
        "tiny product, product photo",
        True,
        "product-photo",
        {},
        lambda: _exact(_tiny(products.bottle(640), 72, 700), LIGHT_BACKDROP),
        ("upscaled",),
    ),
    Case(
        "tiny product, cut-out",
        True,
        "remove-background",
        {},
        lambda: _exact(_tiny(products.bottle(640), 72, 700), LIGHT_BACKDROP),
        ("subject_small",),
    ),
    Case(
        "low-resolution source",
        True,
        "product-photo",
        {},
        _small(120, products.jar),
        ("low_resolution",),
    ),
    Case(
        "low-resolution source, large output",
        True,
        "product-photo",
        {"output_size": "1200x1200"},
        _small(160, products.jar),
        ("upscaled",),
    ),
    Case(
        "dark product on dark, weak matte",
        True,
        "product-photo",
        {"preset": "dark-studio"},
        lambda: _dark(good_matte=False),
        ("matte_uncertain",),
    ),
    Case(
        "shadow cut by the canvas edge",
        True,
        "product-photo",
        {"scale": 0.3, "y": 84},
        _small(640, products.bottle),
        ("shadow_cut",),
    ),
    Case(
        "amazon-main from a small source",
        True,
        "product-photo",
        {
            "compliance": "amazon-main",
            "preset": "white-studio",
            "shadow_type": "none",
            "scale": 0.87,
            "aspect_ratio": "1:1",
            "output_format": "jpeg",
            "y": 50.0,
        },
        _small(256, products.bottle),
        ("upscaled", "compliance_failed"),
    ),
    Case(
        "amazon-main, product cut by the frame",
        True,
        "product-photo",
        {
            "compliance": "amazon-main",
            "preset": "white-studio",
            "shadow_type": "none",
            "scale": 0.87,
            "aspect_ratio": "1:1",
            "output_format": "jpeg",
            "y": 50.0,
        },
        lambda: _exact(_shifted(products.box(1200), 0.3), LIGHT_BACKDROP),
        ("subject_cropped", "compliance_failed"),
    ),
)


@dataclass(frozen=True)
class Outcome:
    case: Case
    qa: dict[str, Any]

    @property
    def codes(self) -> list[str]:
        return [r["code"] for r in self.qa["reasons"]]

    @property
    def right(self) -> bool:
        if not self.case.flawed:
            return not self.qa["needs_review"]
        return self.qa["needs_review"] and set(self.case.expect) <= set(self.codes)


def run_all(runner: Runner | None = None) -> list[Outcome]:
    runner = runner or Runner()
    return [Outcome(case, runner.run(case)[0]) for case in CASES]


def confusion(outcomes: list[Outcome]) -> dict[str, int]:
    """{"flawed_flagged", "flawed_missed", "clean_flagged", "clean_passed",
    "flawed_wrong_reason"}: a flawed case flagged without its expected reason counts
    as flagged and as wrong_reason."""
    table = dict.fromkeys(
        ("flawed_flagged", "flawed_missed", "clean_flagged", "clean_passed", "flawed_wrong_reason"),
        0,
    )
    for o in outcomes:
        review = o.qa["needs_review"]
        if o.case.flawed:
            table["flawed_flagged" if review else "flawed_missed"] += 1
            if review and not set(o.case.expect) <= set(o.codes):
                table["flawed_wrong_reason"] += 1
        else:
            table["clean_flagged" if review else "clean_passed"] += 1
    return table
