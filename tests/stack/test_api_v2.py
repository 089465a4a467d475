"""/v2, Segmind's async shape: submit -> status -> result, Segmind's own field
names on ai-product-photography, and the FAILED / unknown / expired answers."""

from __future__ import annotations

import base64
import io
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from PIL import Image
from sqlalchemy import update

from services.jobs.models import jobs
from tests.gateway.stackutil import Key, error_of, make_key, product, store_of
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=500)


def wait_status(url: str, request_id: str, key: Key, timeout: float = 120) -> list[str]:
    """Polls status_url until a final state; returns every status seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/v2/requests/{request_id}/status", headers=key.headers)
        assert r.status_code == 200, r.text
        assert r.json()["request_id"] == request_id
        status = r.json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("COMPLETED", "FAILED"):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{request_id} still {seen} after {timeout} s")


def test_submit_poll_result(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v2/remove-background",
        headers=key.headers,
        files={"image": ("p.png", product())},
        data={"output_format": "webp"},
    )
    assert r.status_code == 202, r.text
    sub = r.json()
    rid = sub["request_id"]
    assert sub == {
        "request_id": rid,
        "status": "QUEUED",
        "status_url": f"{sqlite_stack.url}/v2/requests/{rid}/status",
        "response_url": f"{sqlite_stack.url}/v2/requests/{rid}",
    }
    seen = wait_status(sqlite_stack.url, rid, key)
    assert seen[-1] == "COMPLETED"
    assert set(seen) <= {"QUEUED", "PROCESSING", "COMPLETED"}
    status = requests.get(sub["status_url"], headers=key.headers).json()
    assert status["metrics"]["inference_time"] >= 0
    r = requests.get(sub["response_url"], headers=key.headers)
    assert r.status_code == 200
    result = r.json()
    assert result["status"] == "COMPLETED" and result["request_id"] == rid
    assert result["output"] == result["output_url"] and result["image_format"] == "webp"
    img = Image.open(io.BytesIO(requests.get(result["output"], timeout=10).content))
    assert img.format == "WEBP" and img.size == (result["width"], result["height"]) == (96, 128)


def test_result_before_completion_is_202_with_status(sqlite_stack: RunningStack) -> None:
    k = make_key(sqlite_stack, max_concurrent=1)
    url = f"{sqlite_stack.url}/v2/remove-background"
    first = requests.post(url, headers=k.headers, files={"image": ("a.png", product(1536, 1536))})
    second = requests.post(url, headers=k.headers, files={"image": ("b.png", product())})
    r = requests.get(second.json()["response_url"], headers=k.headers)
    assert r.status_code == 202
    assert r.json()["status"] in ("QUEUED", "PROCESSING") and "output" not in r.json()
    for sub in (first.json(), second.json()):
        assert wait_status(sqlite_stack.url, sub["request_id"], k)[-1] == "COMPLETED"


def test_segmind_ai_product_photography(sqlite_stack: RunningStack, key: Key) -> None:
    payload = {
        "prompt": "white marble",
        "lighting_prompt": "soft daylight",
        "negative_prompt": "blur",
        "image": base64.b64encode(product(160, 200, "JPEG", quality=92)).decode(),
        "megapixel": "0.1",
        "aspect_ratio": "8:5 (Cinematic View)",
        "x_value": 50,
        "y_value": 60,
        "scale": 0.6,
        "steps": 10,
        "guidance_scale": 2,
        "seed": -1,
        "detailer_mode": "soft_light",
        "lighting": False,
        "detailtransfer": False,
        "image_format": "png",
        "image_quality": 90,
    }
    r = requests.post(
        f"{sqlite_stack.url}/v2/ai-product-photography", headers=key.headers, json=payload
    )
    assert r.status_code == 202, r.text
    rid = r.json()["request_id"]
    assert wait_status(sqlite_stack.url, rid, key)[-1] == "COMPLETED"
    result = requests.get(r.json()["response_url"], headers=key.headers).json()
    assert result["image_format"] == "png"
    assert result["engines"]["background"].startswith("procedural:marble")
    assert abs(result["width"] / result["height"] - 8 / 5) < 0.02
    job = requests.get(f"{sqlite_stack.url}/v1/image/{rid}", headers=key.headers).json()
    assert job["operation"] == "product-photo"
    assert job["parameters"]["preset"] == "custom"
    assert job["parameters"]["background_prompt"] == "white marble"
    assert (job["parameters"]["x"], job["parameters"]["y"]) == (50, 60)
    assert job["parameters"].get("seed", 0) >= 0  # -1 ("random") is never passed on


def test_segmind_data_uri_and_url_image(sqlite_stack: RunningStack, key: Key) -> None:
    uri = "data:image/png;base64," + base64.b64encode(product()).decode()
    r = requests.post(
        f"{sqlite_stack.url}/v2/ai-product-photography", headers=key.headers, json={"image": uri}
    )
    assert r.status_code == 202, r.text
    # A URL in `image` follows the image_url rules (loopback is refused here).
    r = requests.post(
        f"{sqlite_stack.url}/v2/ai-product-photography",
        headers=key.headers,
        json={"image": f"{sqlite_stack.url}/healthz"},
    )
    assert r.status_code == 400 and error_of(r) == "image_url_not_allowed"


@pytest.mark.parametrize(
    ("payload", "status", "code", "field"),
    [
        ({"x_value": 150}, 422, "invalid_parameter", "x_value"),
        ({"x": 50}, 422, "invalid_parameter", "x"),
        ({"image_format": "gif"}, 422, "invalid_parameter", "image_format"),
        ({"lighting": True}, 422, "invalid_parameter", "lighting"),
        ({"seed": -2}, 422, "invalid_parameter", "seed"),
    ],
)
def test_segmind_bad_fields(
    sqlite_stack: RunningStack, key: Key, payload: dict, status: int, code: str, field: str
) -> None:
    body = {"image": base64.b64encode(product()).decode(), **payload}
    r = requests.post(
        f"{sqlite_stack.url}/v2/ai-product-photography", headers=key.headers, json=body
    )
    assert (r.status_code, error_of(r)) == (status, code), r.text
    assert r.json()["detail"]["field"] == field


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        ("not base64 at all!", 400, "invalid_image"),
        (base64.b64encode(b"GIF89a" + b"\0" * 40).decode(), 400, "invalid_image"),
        ("data:image/png,rawtext", 400, "invalid_image"),
        (12345, 422, "invalid_parameter"),
    ],
)
def test_segmind_bad_images(
    sqlite_stack: RunningStack, key: Key, image: object, status: int, code: str
) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v2/ai-product-photography", headers=key.headers, json={"image": image}
    )
    assert (r.status_code, error_of(r)) == (status, code), r.text


def test_segmind_prompt_needing_diffusion_is_503(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v2/ai-product-photography",
        headers=key.headers,
        json={
            "image": base64.b64encode(product()).decode(),
            "prompt": "a sofa in a sunny living room with plants and a rug",
        },
    )
    assert r.status_code == 503 and error_of(r) == "model_unavailable"


def test_failed_request_is_422_with_its_error(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v2/generate", headers=key.headers, json={"prompt": "a naked mannequin"}
    )
    assert r.status_code == 200, r.text  # blocked at submit: final at once
    rid = r.json()["request_id"]
    assert r.json()["status"] == "FAILED"
    status = requests.get(f"{sqlite_stack.url}/v2/requests/{rid}/status", headers=key.headers)
    assert status.json()["status"] == "FAILED"
    result = requests.get(f"{sqlite_stack.url}/v2/requests/{rid}", headers=key.headers)
    assert result.status_code == 422 and error_of(result) == "content_blocked"
    detail = result.json()["detail"]
    assert detail["request_id"] == rid and detail["status"] == "FAILED"


def test_unknown_not_yours_and_expired_are_404(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v2/remove-background",
        headers=key.headers,
        files={"image": ("p.png", product())},
    )
    rid = r.json()["request_id"]
    # Wait on the store itself, so the gateway's short read cache holds nothing yet.
    store = store_of(sqlite_stack)
    deadline = time.monotonic() + 120
    while store.get(rid).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    other = make_key(sqlite_stack)
    for path in (f"/v2/requests/{rid}", f"/v2/requests/{rid}/status"):
        assert requests.get(sqlite_stack.url + path, headers=other.headers).status_code == 404
        unknown = requests.get(sqlite_stack.url + path.replace(rid, "f" * 32), headers=key.headers)
        assert unknown.status_code == 404 and error_of(unknown) == "not_found"
        assert requests.get(sqlite_stack.url + path).status_code == 401
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == rid)
            .values(output_expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    for path in (f"/v2/requests/{rid}", f"/v2/requests/{rid}/status"):
        r = requests.get(sqlite_stack.url + path, headers=key.headers)
        assert r.status_code == 404 and error_of(r) == "not_found"
        assert "expired" in r.json()["detail"]["message"]
    # The /v1 body still shows the job; its link now answers 410.
    job = requests.get(f"{sqlite_stack.url}/v1/image/{rid}", headers=key.headers).json()
    assert requests.get(job["output_url"]).status_code == 410


def test_v2_idempotency_and_unknown_operation(sqlite_stack: RunningStack, key: Key) -> None:
    headers = key.h(**{"Idempotency-Key": f"v2-{time.time_ns()}"})
    files = {"image": ("p.png", product())}
    first = requests.post(f"{sqlite_stack.url}/v2/remove-background", headers=headers, files=files)
    again = requests.post(f"{sqlite_stack.url}/v2/remove-background", headers=headers, files=files)
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["request_id"] == again.json()["request_id"]
    r = requests.post(f"{sqlite_stack.url}/v2/teleport", headers=key.headers, files=files)
    assert r.status_code == 404 and error_of(r) == "not_found"
