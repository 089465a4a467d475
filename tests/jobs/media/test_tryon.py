"""The try-on stage's own work, without Triton: the body mask per category on a drawn
person's silhouette, the refusals (no person, two people, a category the photo does
not show), and the paste that keeps every pixel outside the mask
(tests/models/test_catvton_triton.py runs `try_on` against the served model)."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.errors import BodySegmentationFailed, InvalidParameter
from services.jobs.media import tryon
from tests.jobs.media.bodies import ANKLES, CHIN, HEAD_TOP, HIPS, NECK, synthetic_person


def _rows(mask: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero((mask >= 128).any(axis=1))
    return int(rows[0]), int(rows[-1])


def test_layout_of_a_standing_person() -> None:
    _, alpha = synthetic_person()
    layout = tryon.body_layout(tryon.person_silhouette(alpha))
    assert layout.top == HEAD_TOP and layout.bottom == ANKLES - 1
    assert NECK <= layout.shoulders <= NECK + 12
    assert 55 < layout.unit < 75  # the head is 70 px tall


@pytest.mark.parametrize(
    "category, first, last",
    [
        # (earliest first row, latest last row) of the mask, and it must reach them.
        ("upperbody", (CHIN, NECK + 15), (HIPS - 60, HIPS + 10)),
        ("lowerbody", (NECK + 80, HIPS - 30), (HIPS + 180, ANKLES + 12)),
        ("dress", (CHIN, NECK + 15), (HIPS + 100, ANKLES - 60)),
    ],
)
def test_body_mask_per_category(
    category: str, first: tuple[int, int], last: tuple[int, int]
) -> None:
    _, alpha = synthetic_person()
    mask = tryon.body_mask(alpha, category)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    top, bottom = _rows(mask)
    assert first[0] <= top <= first[1], (category, top)
    assert last[0] <= bottom <= last[1], (category, bottom)
    assert mask[:CHIN].max() == 0  # the head is never redrawn
    # Dilated: the mask reaches a little past the body's outline.
    row = (top + bottom) // 2
    assert (mask[row] > 0).sum() > (alpha[row] > 0).sum()


def test_no_person_fails() -> None:
    blank = np.zeros((400, 300), np.uint8)
    with pytest.raises(BodySegmentationFailed):
        tryon.body_mask(blank, "upperbody")
    small = blank.copy()
    small[100:150, 100:140] = 255  # an object, not a person
    with pytest.raises(BodySegmentationFailed, match="person-sized"):
        tryon.body_mask(small, "upperbody")


def test_two_people_fail() -> None:
    _, one = synthetic_person(width=300)
    two = np.concatenate([one, one], axis=1)
    with pytest.raises(BodySegmentationFailed, match="more than one"):
        tryon.body_mask(two, "dress")


def test_category_the_photo_does_not_show_fails() -> None:
    _, alpha = synthetic_person()
    portrait = alpha[: NECK + 70]  # head and shoulders, cut at the chest
    assert tryon.body_mask(portrait, "upperbody").any()
    with pytest.raises(BodySegmentationFailed, match="no lowerbody area"):
        tryon.body_mask(portrait, "lowerbody")


def test_unknown_category() -> None:
    _, alpha = synthetic_person()
    with pytest.raises(InvalidParameter):
        tryon.body_mask(alpha, "hat")


def test_paste_keeps_every_pixel_outside_the_mask() -> None:
    person, alpha = synthetic_person()
    mask, layout = tryon.body_region(alpha, "upperbody")
    generated = np.random.default_rng(1).integers(0, 256, person.shape, dtype=np.uint8)
    weights = tryon.feather(mask, layout.unit)
    assert weights[mask < 128].max() == 0 and weights.max() == 1
    out = tryon.paste(person, generated, weights)
    outside = mask < 128
    np.testing.assert_array_equal(out[outside], person[outside])
    inner = weights == 1
    np.testing.assert_array_equal(out[inner], generated[inner])


def test_head_cut_by_the_frame() -> None:
    """Shop photos cropped at the nose: measured from the shoulders to the feet."""
    _, alpha = synthetic_person()
    cropped = alpha[60:]
    mask = tryon.body_mask(cropped, "upperbody")
    top, bottom = _rows(mask)
    assert CHIN - 60 <= top <= NECK + 15 - 60 and HIPS - 60 - 60 <= bottom <= HIPS + 10 - 60
    with pytest.raises(BodySegmentationFailed, match="both the top and the bottom"):
        tryon.body_mask(cropped[: HIPS - 60], "upperbody")
