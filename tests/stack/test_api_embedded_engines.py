"""upscale and remove-object served by the embedded engines (Lanczos + unsharp
mask; OpenCV Telea) through the whole stack: REST in, worker pipeline, result
checked against the source."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from tests.gateway.stackutil import Key, encode, make_key, poll
from tests.stack.conftest import RunningStack, expected_upscale

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=200)


def finished(stack: RunningStack, key: Key, r: requests.Response, operation: str) -> dict:
    assert r.status_code == 202, r.text
    done = poll(stack.url, r.json()["id"], key.headers)
    assert done["status"] == "completed", (operation, done)
    return done


def download(url: str) -> np.ndarray:
    r = requests.get(url, timeout=30)
    assert r.status_code == 200
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def scene() -> np.ndarray:
    """Smooth horizontal gradient with a red box in the middle."""
    x = np.linspace(60, 200, 96, dtype=np.float32)
    rgb = np.repeat(np.repeat(x[None, :, None], 128, axis=0), 3, axis=2).astype(np.uint8)
    rgb[48:80, 36:60] = (210, 20, 30)
    return rgb


@pytest.mark.parametrize("scale", [2, 4])
def test_upscale(sqlite_stack: RunningStack, key: Key, scale: int) -> None:
    source = scene()
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/upscale",
        headers=key.headers,
        files={"image": ("s.png", encode(source))},
        data={"scale": str(scale)},
    )
    done = finished(sqlite_stack, key, r, "upscale")
    assert (done["width"], done["height"]) == (96 * scale, 128 * scale)
    assert expected_upscale(done["engines"]), done["engines"]
    out = download(done["output_url"])
    assert out.shape == (128 * scale, 96 * scale, 3)
    # Downscaled back, the result is the source again (up to resampling and sharpening).
    back = np.asarray(Image.fromarray(out).resize((96, 128), Image.Resampling.BOX)).astype(int)
    assert np.abs(back - source.astype(int)).mean() < 6


def test_upscale_keeps_the_alpha_of_a_cut_out_on_its_pixels(
    sqlite_stack: RunningStack, key: Key
) -> None:
    # A red box on grey, and an alpha that is opaque exactly on the box.
    source = scene()
    alpha = np.zeros(source.shape[:2], np.uint8)
    alpha[48:80, 36:60] = 255
    rgba = np.dstack([source, alpha])
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/upscale",
        headers=key.headers,
        files={"image": ("s.png", encode(rgba))},
        data={"scale": "4"},
    )
    done = finished(sqlite_stack, key, r, "upscale")
    out = np.asarray(Image.open(io.BytesIO(requests.get(done["output_url"], timeout=30).content)))
    assert out.shape == (512, 384, 4)
    red = (out[..., 0].astype(int) - out[..., 1]) > 100
    opaque = out[..., 3] > 127
    # The box's colour and its alpha cover the same pixels, 4x the original place.
    assert abs(int(red.sum()) - 32 * 24 * 16) < 0.03 * 32 * 24 * 16
    assert (red != opaque).mean() < 0.002
    ys, xs = np.nonzero(opaque)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (192, 319, 144, 239)


def test_remove_object_with_mask_telea(sqlite_stack: RunningStack, key: Key) -> None:
    source = scene()
    mask = np.zeros((128, 96), np.uint8)
    mask[44:84, 32:64] = 255
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-object",
        headers=key.headers,
        files={"image": ("s.png", encode(source)), "mask": ("m.png", encode(mask))},
    )
    done = finished(sqlite_stack, key, r, "remove-object")
    assert "telea" in done["engines"]["inpaint"]
    out = download(done["output_url"]).astype(int)
    assert out.shape == source.shape
    # The red box is gone: the hole is filled with the surrounding grey ramp.
    hole = out[48:80, 36:60]
    assert (hole[..., 0] - hole[..., 1]).max() < 40
    # Away from the mask the image is untouched (up to encoding).
    assert np.abs(out[:, :24] - source[:, :24].astype(int)).max() <= 3
