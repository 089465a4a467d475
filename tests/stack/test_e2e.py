"""The product through its front door: REST -> gRPC -> Triton -> compositor ->
blob store -> signed link, on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from PIL import Image

from services.samples.synthetic import make_sample
from tests.stack.conftest import RunningStack, expected_matting

pytestmark = pytest.mark.stack


def encode(rgb: np.ndarray, fmt: str = "JPEG", **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


def poll(stack: RunningStack, job_id: str, timeout: float = 120) -> dict:
    """The client loop of PixelAPI's docs: GET every so often until terminal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{stack.url}/v1/image/{job_id}", headers=stack.headers(), timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("completed", "failed", "blocked", "canceled"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def submit(stack: RunningStack, op: str, image: bytes, **fields: object) -> dict:
    r = requests.post(
        f"{stack.url}/v1/image/{op}",
        headers=stack.headers(),
        files={"image": ("photo.jpg", image, "image/jpeg")},
        data={k: str(v) for k, v in fields.items()},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    return r.json()


@pytest.fixture(scope="module")
def bottle():
    return make_sample("bottle", "plain", size=(768, 1024), seed=3)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_product_photo_white_studio_soft_shadow(stack: RunningStack, bottle) -> None:
    job = submit(
        stack,
        "product-photo",
        encode(bottle.rgb, quality=95),
        preset="white-studio",
        shadow_type="soft",
    )
    assert job["status"] == "queued"
    assert job["generation_id"] == job["id"]
    assert job["credits_used"] == 7.0
    assert job["pipeline"] == ["remove-background", "replace-background", "add-shadow"]

    done = poll(stack, job["generation_id"])
    assert done["status"] == "completed", done
    assert done["format"] == "jpeg"
    assert expected_matting(done["engines"]), done["engines"]
    assert done["engines"]["background"].startswith("solid")
    assert done["processing_ms"] > 0

    # The link works without the key and is an opaque JPEG.
    r = requests.get(done["output_url"], timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "JPEG" and img.mode == "RGB"
    assert img.size == (done["width"], done["height"])
    px = np.asarray(img).astype(int)
    h, w, _ = px.shape
    # Pure white away from the product and its shadow.
    for y, x in [(5, 5), (5, w - 6), (h // 2, 5), (h // 2, w - 6)]:
        assert px[y, x].min() >= 253, (y, x, px[y, x])
    # The product is there, around the default centre (50 %, 55 %).
    lum = px.mean(axis=2)
    ys, xs = np.nonzero(lum < 200)
    assert abs(xs.mean() / w - 0.5) < 0.08 and abs(ys.mean() / h - 0.55) < 0.12
    # A soft shadow: grey just below the product's bottom, white far away.
    bottom = ys.max()
    below = lum[
        min(h - 1, bottom + 3) : min(h, bottom + 12), int(xs.mean()) - 20 : int(xs.mean()) + 20
    ]
    assert below.size and below.mean() < 250


def test_remove_background_separates_product(stack: RunningStack, bottle) -> None:
    job = submit(stack, "remove-background", encode(bottle.rgb, quality=95))
    done = poll(stack, job["id"])
    assert done["status"] == "completed", done
    assert done["credits_used"] == 2.0
    r = requests.get(done["output_url"], timeout=10)
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG" and img.mode == "RGBA"
    alpha = np.asarray(img)[..., 3]
    assert alpha.shape == bottle.alpha.shape
    assert iou(alpha > 127, bottle.alpha > 127) >= 0.95
    # Backdrop fully transparent, product core fully opaque.
    assert (alpha[bottle.alpha == 0] < 16).mean() > 0.99
    assert (alpha[bottle.alpha == 255] > 240).mean() > 0.97


def test_replace_background_keeps_subject_pixels(stack: RunningStack, bottle) -> None:
    source = encode(bottle.rgb, "PNG")
    cut = poll(stack, submit(stack, "remove-background", source)["id"])
    matte = np.asarray(Image.open(io.BytesIO(requests.get(cut["output_url"], timeout=10).content)))[
        ..., 3
    ]

    done = poll(
        stack,
        submit(stack, "replace-background", source, prompt="#336699", output_format="png")["id"],
    )
    assert done["status"] == "completed", done
    out = np.asarray(Image.open(io.BytesIO(requests.get(done["output_url"], timeout=10).content)))
    assert out.shape[:2] == bottle.rgb.shape[:2]
    opaque = matte == 255
    assert opaque.sum() > 10_000
    assert np.array_equal(out[..., :3][opaque], bottle.rgb[opaque])
    # Far from the product the new backdrop is the requested colour (the source's
    # own shading is carried over by preserve_shadow, so allow a level or two).
    assert np.abs(out[4, 4, :3].astype(int) - (0x33, 0x66, 0x99)).max() <= 3


def test_prefer_wait_answers_synchronously(stack: RunningStack, bottle) -> None:
    r = requests.post(
        f"{stack.url}/v1/image/remove-background",
        headers=stack.headers(Prefer="wait=60"),
        files={"image": ("p.png", encode(bottle.rgb, "PNG"), "image/png")},
        data={"output_format": "webp"},
        timeout=90,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    assert r.json()["format"] == "webp"


def test_idempotent_resubmit_returns_same_job(stack: RunningStack, bottle) -> None:
    data = encode(bottle.rgb)
    before = requests.get(f"{stack.url}/v1/account/balance", headers=stack.headers()).json()
    headers = stack.headers(**{"Idempotency-Key": f"k-{time.time_ns()}"})
    files = {"image": ("p.jpg", data, "image/jpeg")}
    first = requests.post(f"{stack.url}/v1/image/remove-background", headers=headers, files=files)
    again = requests.post(f"{stack.url}/v1/image/remove-background", headers=headers, files=files)
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    after = requests.get(f"{stack.url}/v1/account/balance", headers=stack.headers()).json()
    assert before["credits_remaining"] - after["credits_remaining"] == pytest.approx(2.0)
    other = requests.post(
        f"{stack.url}/v1/image/remove-background",
        headers=headers,
        files=files,
        data={"crop": "true"},
    )
    assert other.status_code == 409
    assert other.json()["detail"]["error"] == "idempotency_conflict"


# -- errors -----------------------------------------------------------------------------


def error_of(r: requests.Response) -> str:
    body = r.json()
    assert set(body["detail"]) >= {"error", "message", "guidance"}, body
    return body["detail"]["error"]


def test_auth_errors(stack: RunningStack) -> None:
    url = f"{stack.url}/v1/image/remove-background"
    files = {"image": ("p.jpg", b"x", "image/jpeg")}
    r = requests.post(url, files=files)
    assert r.status_code == 401 and error_of(r) == "unauthorized"
    r = requests.post(url, files=files, headers={"Authorization": "Bearer lb_nope"})
    assert r.status_code == 401 and error_of(r) == "unauthorized"
    r = requests.post(url, files=files, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and error_of(r) == "unauthorized"
    for r in (requests.get(f"{stack.url}/v1/image/abc"),):
        assert r.status_code == 401
        assert "X-RateLimit-Limit" in r.headers and "X-Request-ID" in r.headers


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"hello, I am text", 400, "invalid_image"),
        (b"GIF89a" + b"\x00" * 64, 400, "invalid_image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 400, "invalid_image"),
        ("truncated", 400, "invalid_image"),
        ("tiny", 422, "image_too_small"),
        ("huge", 422, "image_too_large"),
    ],
)
def test_bad_images(stack: RunningStack, bottle, payload, status, code) -> None:
    if payload == "truncated":
        payload = encode(bottle.rgb)[:5000]
    elif payload == "tiny":
        payload = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    elif payload == "huge":
        payload = encode(np.zeros((16, 5000, 3), np.uint8), "PNG")
    r = requests.post(
        f"{stack.url}/v1/image/product-photo",
        headers=stack.headers(),
        files={"image": ("photo.png", payload, "image/png")},
    )
    assert r.status_code == status, r.text
    assert error_of(r) == code


def test_bad_fields_and_shapes(stack: RunningStack, bottle) -> None:
    url = f"{stack.url}/v1/image/product-photo"
    img = {"image": ("p.jpg", encode(bottle.rgb), "image/jpeg")}
    r = requests.post(url, headers=stack.headers(), files=img, data={"scale": "0"})
    assert r.status_code == 422 and error_of(r) == "invalid_parameter"
    assert r.json()["detail"]["field"] == "scale"
    r = requests.post(url, headers=stack.headers(), files=img, data={"shadow_type": "purple"})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "shadow_type"
    r = requests.post(url, headers=stack.headers(), files=img, data={"preset": "no-such-preset"})
    assert r.status_code == 422 and error_of(r) == "invalid_parameter"
    r = requests.post(url, headers=stack.headers(), files=img, data={"aspect_ratio": "0:5"})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "aspect_ratio"
    no_image = {"preset": (None, "white-studio")}  # multipart, but no file
    r = requests.post(url, headers=stack.headers(), files=no_image)
    assert r.status_code == 400 and error_of(r) == "image_required"
    r = requests.post(url, headers=stack.headers(), data={"preset": "white-studio"})
    assert r.status_code == 415 and error_of(r) == "unsupported_media_type"
    r = requests.post(url, headers=stack.headers(), data=b"raw", timeout=10)
    assert r.status_code == 415 and error_of(r) == "unsupported_media_type"
    r = requests.post(
        url, headers=stack.headers(), files=img, data={"image_url": "https://example.com/a.jpg"}
    )
    assert r.status_code == 400 and error_of(r) == "ambiguous_image"
    r = requests.post(url, headers=stack.headers(), json={"image_url": "http://127.0.0.1:1/x.png"})
    assert r.status_code == 400 and error_of(r) == "image_url_not_allowed"
    big = os.urandom(11 * 1024 * 1024)
    r = requests.post(url, headers=stack.headers(), files={"image": ("b.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and error_of(r) == "file_too_large"


def test_generative_prompt_without_model_is_503_and_free(stack: RunningStack, bottle) -> None:
    before = requests.get(f"{stack.url}/v1/account/balance", headers=stack.headers()).json()
    r = requests.post(
        f"{stack.url}/v1/image/product-photo",
        headers=stack.headers(),
        files={"image": ("p.jpg", encode(bottle.rgb), "image/jpeg")},
        data={"preset": "custom", "background_prompt": "a bottle on a mossy rock by a waterfall"},
    )
    assert r.status_code == 503 and error_of(r) == "model_unavailable"
    assert "Retry-After" in r.headers
    assert "sdxl" in r.json()["detail"]["guidance"].lower()
    after = requests.get(f"{stack.url}/v1/account/balance", headers=stack.headers()).json()
    assert after["credits_remaining"] == before["credits_remaining"]


def test_jobs_are_private_and_links_tamper_proof(stack: RunningStack, bottle) -> None:
    done = poll(stack, submit(stack, "remove-background", encode(bottle.rgb))["id"])
    env = dict(
        os.environ,
        LIGHTBOX_HOME=str(stack.home),
        LIGHTBOX_DATABASE_URL=stack.stack.settings.database_url,
    )
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "admin", "create-key", "--credits", "5"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    other_key = out.stdout.strip().splitlines()[-1]
    other = {"Authorization": f"Bearer {other_key}"}
    r = requests.get(f"{stack.url}/v1/image/{done['id']}", headers=other)
    assert r.status_code == 404 and error_of(r) == "not_found"
    unknown = requests.get(f"{stack.url}/v1/image/no-such-job", headers=other)
    assert unknown.status_code == 404
    assert unknown.json()["detail"]["guidance"] == r.json()["detail"]["guidance"]
    bal = requests.get(f"{stack.url}/v1/account/balance", headers=other).json()
    assert bal["credits_remaining"] == 5
    # Too few credits for a product photo (7): 402 naming both amounts.
    r = requests.post(
        f"{stack.url}/v1/image/product-photo",
        headers=other,
        files={"image": ("p.jpg", encode(bottle.rgb), "image/jpeg")},
    )
    assert r.status_code == 402 and error_of(r) == "insufficient_credits"
    assert r.json()["detail"]["required"] == 7 and r.json()["detail"]["available"] == 5

    url = done["output_url"]
    assert requests.get(url, timeout=10).status_code == 200
    tampered = url.replace("signature=", "signature=0")
    assert requests.get(tampered, timeout=10).status_code == 404
    expires = int(url.split("expires=")[1].split("&")[0])
    forged = url.replace(f"expires={expires}", f"expires={expires + 3600}")
    assert requests.get(forged, timeout=10).status_code == 404


def test_readyz_reports_every_dependency(stack: RunningStack) -> None:
    r = requests.get(f"{stack.url}/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {
        "jobs": "ok",
        "database": "ok",
        "compositor": "ok",
        "triton": "ok",
        "storage": "ok",
    }
    assert requests.get(f"{stack.url}/healthz").json() == {"status": "ok"}


def test_readyz_is_503_while_a_dependency_is_down(sqlite_stack: RunningStack) -> None:
    stack = sqlite_stack
    stack.stack.kill("compositor")
    try:
        r = requests.get(f"{stack.url}/readyz", timeout=10)
        assert r.status_code == 503
        assert r.json()["checks"]["compositor"] == "unavailable"
        assert r.json()["checks"]["jobs"] == "ok"
        assert requests.get(f"{stack.url}/healthz").status_code == 200
    finally:
        stack.stack.restart("compositor")
        stack.stack.wait_ready(timeout=60)
    assert requests.get(f"{stack.url}/readyz").status_code == 200


def test_layout_options_through_rest(sqlite_stack: RunningStack, bottle) -> None:
    stack = sqlite_stack
    done = poll(
        stack,
        submit(
            stack,
            "product-photo",
            encode(bottle.rgb, "PNG"),
            output_size="800x600",
            scale=0.5,
            x=30,
            y=40,
            shadow_type="none",
            output_format="png",
        )["id"],
    )
    assert done["status"] == "completed", done
    px = np.asarray(Image.open(io.BytesIO(requests.get(done["output_url"], timeout=10).content)))
    assert px.shape[:2] == (600, 800)
    ys, xs = np.nonzero(px[..., :3].min(axis=2) < 250)
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    assert abs(cx - 240) <= 3 and abs(cy - 240) <= 3
    assert abs(max(xs.ptp(), ys.ptp()) + 1 - 300) <= 4

    done = poll(
        stack,
        submit(
            stack,
            "product-photo",
            encode(bottle.rgb, "PNG"),
            aspect_ratio="4:5",
            scale=1,
            padding=0.3,
            shadow_type="none",
            output_format="png",
        )["id"],
    )
    px = np.asarray(Image.open(io.BytesIO(requests.get(done["output_url"], timeout=10).content)))
    h, w = px.shape[:2]
    assert abs(w / h - 0.8) < 0.01
    ys, xs = np.nonzero(px[..., :3].min(axis=2) < 250)
    # A 30 % margin on every side leaves at most 40 % of the canvas for the subject.
    assert ys.ptp() + 1 <= 0.4 * h + 2 and xs.min() >= 0.3 * w - 2


def test_stop_after_a_failed_start_leaves_no_process(tmp_path) -> None:
    """Ctrl-C semantics: every process of the stack is gone after stop(), Triton's
    python-backend stubs included, even when tritonserver died on its own after
    spawning them (here: its gRPC port is taken, so it exits once models loaded)."""
    import socket

    from services.common.ports import free_port_block
    from services.common.settings import CommonSettings
    from services.stack import Stack
    from tests.conftest import NUMBA_CACHE

    base = free_port_block()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", base + 3))
    blocker.listen()
    try:
        settings = CommonSettings(home=tmp_path, http_port=base, numba_cache_dir=NUMBA_CACHE)
        stack = Stack(settings=settings, log_path=tmp_path / "stack.log")
        stack.prepare()
        stack.start()
        with pytest.raises(RuntimeError, match="triton"):
            stack.wait_ready(timeout=120)
        stack.stop()
    finally:
        blocker.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
        if not left.stdout.split():
            break
        time.sleep(0.2)
    assert left.stdout.split() == [], left.stdout
