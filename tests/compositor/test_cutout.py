"""Cut-outs: transparent, flattened, cropped, mask only."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.errors import InvalidParameter
from services.compositor.cutout import cutout

from .products import bottle


def test_transparent_keeps_alpha_and_opaque_pixels() -> None:
    s = bottle(128)
    out = cutout(s)
    assert out.shape == s.shape
    assert np.array_equal(out[..., 3], s[..., 3])
    opaque = s[..., 3] == 255
    assert np.array_equal(out[opaque], s[opaque])


def test_crop_flatten_and_mask() -> None:
    s = bottle(128)
    ys, xs = np.nonzero(s[..., 3])
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    flat = cutout(s, crop=True, bg_color="#00ff00")
    assert flat.shape == (h, w, 3)
    assert flat[0, 0].tolist() == [0, 255, 0]
    mask = cutout(s, crop=True, mask_only=True)
    assert mask.shape == (h, w) and mask.max() == 255


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bg_color": "green"}, "bg_color"),
        ({"bg_color": "#12345"}, "bg_color"),
        ({"bg_color": "#ffffff", "mask_only": True}, "bg_color"),
    ],
)
def test_bad_cutout_options(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        cutout(bottle(32), **kwargs)
    assert info.value.field == field


def test_empty_alpha_cannot_be_cropped() -> None:
    with pytest.raises(InvalidParameter) as info:
        cutout(np.zeros((16, 16, 4), np.uint8), crop=True)
    assert info.value.field == "crop"
