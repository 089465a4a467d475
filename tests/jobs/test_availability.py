"""services/jobs/availability.py: what is refused at submit (503, not charged) because
nothing deployed could serve it."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.errors import ModelUnavailable
from services.jobs.availability import Availability


class Drawable:
    """A compositor stub that can draw every background."""

    def ResolveBackground(self, request: Any, timeout: float) -> Any:  # noqa: N802
        class Resolved:
            drawable = True

        return Resolved()


def availability(ready: set[str], matting_engine: str = "auto") -> Availability:
    return Availability(Drawable(), lambda: ready, matting_engine=matting_engine)  # type: ignore[arg-type]


def test_auto_matting_takes_whatever_is_ready() -> None:
    for ready in ({"matting_classical"}, {"matting_isnet", "matting_isnet_onnx"}):
        availability(ready).check("remove-background", {})


@pytest.mark.parametrize("operation", ["remove-background", "product-photo", "replace-background"])
def test_a_pinned_matting_engine_that_is_not_ready_is_refused_at_submit(operation: str) -> None:
    check = availability({"matting_classical", "matting_isnet"}, matting_engine="isnet")
    with pytest.raises(ModelUnavailable, match="LIGHTBOX_MATTING_ENGINE=isnet") as err:
        check.check(operation, {})
    assert err.value.extra == {"model": "matting_isnet"}
    assert "lightbox models fetch isnet" in (err.value.guidance or "")


def test_a_pinned_matting_engine_that_is_ready_serves() -> None:
    availability({"matting_isnet", "matting_isnet_onnx"}, matting_engine="isnet").check(
        "product-photo", {}
    )
    availability({"matting_classical"}, matting_engine="classical").check("remove-background", {})
    # Operations without a matting stage do not care.
    availability(set(), matting_engine="birefnet").check("upscale", {})


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown matting engine"):
        availability(set(), matting_engine="u2net")
