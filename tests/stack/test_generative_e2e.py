"""Generated scenes through the front door, with tiny random-weight SDXL and
SDXL-inpainting pipelines exported into the stack's model repository (conftest's
generative_stack): custom
product-photo backgrounds and replace-background scenes are generated around the
subject, whose opaque pixels come back bit-for-bit; the same seed gives the same
picture."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import requests
from PIL import Image

from services.samples.synthetic import make_sample
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def gen_stack(generative_stack: RunningStack) -> RunningStack:
    return generative_stack


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def run(stack: RunningStack, op: str, image: bytes, **fields: object) -> tuple[dict, np.ndarray]:
    r = requests.post(
        f"{stack.url}/v1/image/{op}",
        headers=stack.headers(Prefer="wait=60"),
        files={"image": ("p.png", image, "image/png")},
        data={k: str(v) for k, v in fields.items()},
        timeout=120,
    )
    assert r.status_code in (200, 202), r.text
    job = r.json()
    deadline = time.monotonic() + 120
    while job["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = requests.get(f"{stack.url}/v1/image/{job['id']}", headers=stack.headers()).json()
    assert job["status"] == "completed", job
    out = np.asarray(Image.open(io.BytesIO(requests.get(job["output_url"], timeout=30).content)))
    return job, out


@pytest.fixture(scope="module")
def bottle():
    return make_sample("bottle", "plain", size=(192, 256), seed=5)


def test_custom_background_is_generated_around_the_subject(gen_stack, bottle) -> None:
    fields = dict(
        preset="custom",
        background_prompt="a bottle on a mossy rock by a waterfall",
        seed=7,
        steps=3,
        shadow_type="soft",
        output_format="png",
    )
    job, first = run(gen_stack, "product-photo", png(bottle.rgb), **fields)
    assert job["engines"]["background"] == "sdxl_inpaint"
    assert job["pipeline"] == ["remove-background", "generate-background", "add-shadow"]
    assert job["parameters"]["seed"] == 7 and job["parameters"]["steps"] == 3
    assert first.shape == (256, 192, 3)
    _, again = run(gen_stack, "product-photo", png(bottle.rgb), **fields)
    assert np.array_equal(first, again)
    _, other_seed = run(gen_stack, "product-photo", png(bottle.rgb), **{**fields, "seed": 8})
    assert not np.array_equal(first, other_seed)


def test_replace_background_scene_keeps_subject_pixels(gen_stack, bottle) -> None:
    source = png(bottle.rgb)
    _, cut = run(gen_stack, "remove-background", source)
    matte = cut[..., 3]
    job, out = run(
        gen_stack,
        "replace-background",
        source,
        prompt="a sunny beach at golden hour",
        seed=11,
        output_format="png",
    )
    assert job["engines"]["background"] == "sdxl_inpaint"
    assert out.shape[:2] == bottle.rgb.shape[:2]
    opaque = matte == 255
    assert opaque.sum() > 2000
    assert np.array_equal(out[..., :3][opaque], bottle.rgb[opaque])
    # The scene is generated, not the source's backdrop carried over.
    far = matte == 0
    assert np.abs(out[..., :3][far].astype(int) - bottle.rgb[far]).mean() > 5


def test_seed_is_fixed_at_submit_and_echoed(gen_stack, bottle) -> None:
    job, _ = run(
        gen_stack,
        "replace-background",
        png(bottle.rgb),
        prompt="a marble kitchen counter with morning light and plants",
    )
    assert isinstance(job["parameters"]["seed"], int | float)
