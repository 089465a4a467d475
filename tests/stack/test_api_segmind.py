"""What Segmind's clients need at the edges: the `x-api-key` header beside
Bearer, the synchronous `POST /v1/{slug}` answering the image (504 with the
request id past its wait), Segmind's 406 for insufficient credits on the
Segmind-shaped routes (PixelAPI's keep 402), FAILED bodies carrying `error`,
and slugs that never shadow a PixelAPI path."""

from __future__ import annotations

import base64
import io
import time

import pytest
import requests
from PIL import Image

from tests.gateway.stackutil import Key, error_of, make_key, product, service
from tests.stack.conftest import RunningStack
from tests.stack.test_api_limits import fresh_window

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=200)


def x_api_key(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def image_b64() -> str:
    return base64.b64encode(product()).decode()


def wait_v2(url: str, request_id: str, headers: dict[str, str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/v2/requests/{request_id}/status", headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("COMPLETED", "FAILED"):
            return dict(r.json())
        time.sleep(0.1)
    raise AssertionError(f"{request_id} did not finish in {timeout} s")


# -- x-api-key ---------------------------------------------------------------------------


def test_x_api_key_works_wherever_a_key_does(sqlite_stack: RunningStack, key: Key) -> None:
    url = sqlite_stack.url
    r = requests.get(f"{url}/v1/account/balance", headers=x_api_key(key.key))
    assert r.status_code == 200 and r.json()["credits_remaining"] > 0
    r = requests.post(
        f"{url}/v2/remove-background", headers=x_api_key(key.key), json={"image": image_b64()}
    )
    assert r.status_code == 202, r.text
    status = wait_v2(url, r.json()["request_id"], x_api_key(key.key))
    assert status["status"] == "COMPLETED"
    # The same key in both headers is one key.
    both = {**key.headers, **x_api_key(key.key)}
    assert requests.get(f"{url}/v1/models", headers=both).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"x-api-key": "lb_live_" + "x" * 40}, 401, "unauthorized"),
        ({"x-api-key": ""}, 401, "unauthorized"),
        ({"x-api-key": "k" * 257}, 401, "unauthorized"),
        ({"x-api-key": "KEY", "Authorization": "Bearer lb_live_other"}, 400, "ambiguous_api_key"),
        ({"x-api-key": "KEY", "Authorization": "Basic KEY"}, 401, "unauthorized"),
    ],
)
def test_bad_or_conflicting_keys(
    sqlite_stack: RunningStack, key: Key, headers: dict[str, str], status: int, code: str
) -> None:
    headers = {name: value.replace("KEY", key.key) for name, value in headers.items()}
    for path in ("/v1/account/balance", "/v2/requests/" + "f" * 32):
        r = requests.get(sqlite_stack.url + path, headers=headers)
        assert (r.status_code, error_of(r)) == (status, code), r.text
    r = requests.post(f"{sqlite_stack.url}/v1/remove-background", headers=headers, json={})
    assert (r.status_code, error_of(r)) == (status, code), r.text
    assert r.json()["error"] == r.json()["detail"]["message"]  # where Segmind's SDK reads


def test_both_headers_share_one_rate_limit(sqlite_stack: RunningStack) -> None:
    k = make_key(sqlite_stack, rpm=3)
    fresh_window(sqlite_stack.url)
    url = f"{sqlite_stack.url}/v1/account/balance"
    remaining = []
    for headers in (k.headers, x_api_key(k.key), k.headers):
        r = requests.get(url, headers=headers)
        assert r.status_code == 200
        remaining.append(int(r.headers["X-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    r = requests.get(url, headers=x_api_key(k.key))
    assert (r.status_code, error_of(r)) == (429, "rate_limited")


# -- POST /v1/{slug} -----------------------------------------------------------------------


def test_sync_call_answers_the_image(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v1/remove-background",
        headers=x_api_key(key.key),
        json={"image": image_b64(), "output_format": "webp"},
        timeout=90,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/webp"
    assert float(r.headers["X-Lightbox-Inference-Time"]) > 0
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "WEBP" and img.size == (96, 128)
    job_id = r.headers["X-Lightbox-Job-Id"]
    job = requests.get(f"{sqlite_stack.url}/v1/image/{job_id}", headers=key.headers).json()
    assert job["operation"] == "remove-background" and job["status"] == "completed"
    result = requests.get(f"{sqlite_stack.url}/v2/requests/{job_id}", headers=key.headers)
    assert result.json()["status"] == "COMPLETED"


def test_sync_call_failed_job_is_422_with_error(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v1/generate",
        headers=x_api_key(key.key),
        json={"prompt": "a naked mannequin"},
    )
    assert (r.status_code, error_of(r)) == (422, "content_blocked"), r.text
    body = r.json()
    assert body["status"] == "FAILED" and "does not allow" in body["error"]
    # The /v2 status and result bodies say why too (the SDK's InferenceFailed.detail).
    rid = body["request_id"]
    status = requests.get(f"{sqlite_stack.url}/v2/requests/{rid}/status", headers=key.headers)
    assert status.json()["status"] == "FAILED" and status.json()["error"] == body["error"]
    result = requests.get(f"{sqlite_stack.url}/v2/requests/{rid}", headers=key.headers)
    assert (result.status_code, error_of(result)) == (422, "content_blocked")
    assert result.json()["status"] == "FAILED" and result.json()["error"] == body["error"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"image": "not base64 at all!"}, 400, "invalid_image"),
        ({"image": "IMAGE", "x_value": 150}, 422, "invalid_parameter"),
        ({"image": "IMAGE", "x": 50}, 422, "invalid_parameter"),
        ({}, 400, "image_required"),
    ],
)
def test_sync_call_bad_input(
    sqlite_stack: RunningStack, key: Key, payload: dict, status: int, code: str
) -> None:
    body = {k: image_b64() if v == "IMAGE" else v for k, v in payload.items()}
    r = requests.post(
        f"{sqlite_stack.url}/v1/ai-product-photography", headers=x_api_key(key.key), json=body
    )
    assert (r.status_code, error_of(r)) == (status, code), r.text


def test_sync_call_takes_image_as_url(sqlite_stack: RunningStack, key: Key) -> None:
    # A URL in `image` follows the image_url rules (loopback is refused on this stack).
    r = requests.post(
        f"{sqlite_stack.url}/v1/ai-product-photography",
        headers=x_api_key(key.key),
        json={"image": f"{sqlite_stack.url}/healthz"},
    )
    assert (r.status_code, error_of(r)) == (400, "image_url_not_allowed")


def test_sync_call_past_its_wait_is_504_and_the_job_goes_on(sqlite_stack: RunningStack) -> None:
    k = make_key(sqlite_stack, credits=10)
    with service(sqlite_stack, "gateway", LIGHTBOX_SEGMIND_SYNC_WAIT_SECONDS="0") as gw:
        r = requests.post(
            f"{gw.url}/v1/remove-background", headers=x_api_key(k.key), json={"image": image_b64()}
        )
    assert (r.status_code, error_of(r)) == (504, "still_running"), r.text
    body = r.json()
    rid = body["request_id"]
    assert body["status"] in ("QUEUED", "PROCESSING") and rid in body["detail"]["status_url"]
    assert wait_v2(sqlite_stack.url, rid, k.headers)["status"] == "COMPLETED"
    balance = requests.get(f"{sqlite_stack.url}/v1/account/balance", headers=k.headers)
    assert balance.json()["credits_remaining"] == 10 - 2  # charged once


# -- 406 on Segmind's routes, 402 on PixelAPI's ---------------------------------------------


def test_insufficient_credits_is_406_on_segmind_routes_402_on_pixelapi(
    sqlite_stack: RunningStack,
) -> None:
    k = make_key(sqlite_stack, credits=1)  # remove-background costs 2
    url, body = sqlite_stack.url, {"image": image_b64()}
    for path in ("/v2/remove-background", "/v1/remove-background"):
        r = requests.post(url + path, headers=x_api_key(k.key), json=body)
        assert (r.status_code, error_of(r)) == (406, "insufficient_credits"), r.text
        assert "credits" in r.json()["error"]
    r = requests.post(
        f"{url}/v1/image/remove-background",
        headers=x_api_key(k.key),
        files={"image": ("p.png", product())},
    )
    assert (r.status_code, error_of(r)) == (402, "insufficient_credits"), r.text
    assert "error" not in r.json()  # PixelAPI's body is API.md's alone


# -- slugs never shadow PixelAPI's paths ----------------------------------------------------


def test_slugs_do_not_shadow_pixelapi_paths(sqlite_stack: RunningStack, key: Key) -> None:
    url, headers = sqlite_stack.url, key.headers
    # PixelAPI's paths answer as before: a POST to a GET-only path is 405, not a slug.
    for path in ("/v1/models", "/v1/account/balance", "/v1/account/usage"):
        r = requests.post(url + path, headers=headers, json={})
        assert (r.status_code, error_of(r)) == (405, "method_not_allowed"), path
        assert requests.get(url + path, headers=headers).status_code == 200
    r = requests.post(f"{url}/v1/image/teleport", headers=headers, json={})
    assert (r.status_code, error_of(r)) == (404, "not_found")
    assert "GET /v1/models" in r.json()["detail"]["guidance"]  # PixelAPI's catch-all
    # Only known slugs are routed (tests/gateway/test_segmind.py checks the paths
    # PixelAPI's other routes take): anything else under /v1 is unmatched.
    r = requests.post(f"{url}/v1/teleport", headers=headers, json={})
    assert (r.status_code, error_of(r)) == (404, "not_found")
    assert "error" not in r.json()
