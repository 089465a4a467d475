"""The contact sheet: a labelled grid of preset x shadow composites."""

from __future__ import annotations

import numpy as np

from services.compositor.contact_sheet import LABEL_HEIGHT, make_contact_sheet

from .products import bottle


def test_grid_of_presets_by_shadows() -> None:
    cell = 96
    sheet = make_contact_sheet(
        [bottle(128)], ["white-studio", "solid"], ["soft", "none", "hard"], cell=cell
    )
    row = cell + LABEL_HEIGHT
    assert sheet.shape == (2 * row, 3 * cell, 3) and sheet.dtype == np.uint8
    # Row 1 is white studio, row 2 the sample navy; label strips are dark.
    assert (sheet[2, 2] == 255).all()
    assert sheet[row + 2, 2].tolist() == [31, 42, 68]
    assert sheet[cell + 2 : row, :].mean() < 80
    # Same subject in every cell: only the shadow tells the columns apart.
    soft, none = sheet[:cell, :cell], sheet[:cell, cell : 2 * cell]
    assert not np.array_equal(soft, none)
