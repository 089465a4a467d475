"""PixelAPI's audio, video and virtual try-on endpoints against the running stack,
without their weights: every documented validation code (status, code and field),
503 model_unavailable with the install hint and nothing charged for a valid
request (also under an Idempotency-Key, and through curl as PixelAPI's docs write
it), /v2, the job routes' 404s, GET /v1/models and the OpenAPI document.

PixelAPI's own documentation pages could not be found from here; the field names
are those of issue 19's contract."""

from __future__ import annotations

import base64
import json
import subprocess

import numpy as np
import pytest
import requests

from services.common import models
from tests.gateway.stackutil import Key, encode, error_of, make_key, product
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack

ENDPOINTS = {
    "audio-generate": ("/v1/audio/generate", models.MUSICGEN),
    "video-generate": ("/v1/video/generate", models.WAN_T2V),
    "virtual-tryon": ("/v1/virtual-tryon", models.CATVTON),
}


def photo(w: int, h: int, fmt: str = "PNG") -> str:
    rgb = np.full((h, w, 3), 200, np.uint8)
    rgb[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = (30, 60, 150)
    return base64.b64encode(encode(rgb, fmt)).decode()


PERSON = photo(120, 180)
GARMENT = photo(110, 100, "JPEG")
VALID = {
    "audio-generate": {"prompt": "upbeat electronic music", "duration": 20},
    "video-generate": {"prompt": "a cat on a sofa", "duration": 5, "resolution": "720p"},
    "virtual-tryon": {"person_image": PERSON, "garment_image": GARMENT, "category": "upperbody"},
}


def hint(model: str) -> str:
    return models.INSTALL_HINT.get(model, f"Install '{model}' with `lightbox models install`.")


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=300)


def balance(url: str, key: Key) -> float:
    r = requests.get(f"{url}/v1/account/balance", headers=key.headers, timeout=10)
    assert r.status_code == 200, r.text
    return float(r.json()["credits_remaining"])


@pytest.mark.parametrize("operation", sorted(ENDPOINTS))
def test_valid_requests_are_503_with_the_install_hint_and_free(
    sqlite_stack: RunningStack, key: Key, operation: str
) -> None:
    path, model = ENDPOINTS[operation]
    before = balance(sqlite_stack.url, key)
    for attempt in range(2):  # the same Idempotency-Key again: the same answer, no 409
        r = requests.post(
            sqlite_stack.url + path,
            headers=key.h(**{"Idempotency-Key": f"media-{operation}"}),
            json=VALID[operation],
            timeout=30,
        )
        assert r.status_code == 503 and error_of(r) == "model_unavailable", (attempt, r.text)
        detail = r.json()["detail"]
        assert detail["guidance"] == hint(model) and detail["model"] == model
        assert r.headers["Retry-After"]
    v2 = requests.post(
        f"{sqlite_stack.url}/v2/{operation}", headers=key.headers, json=VALID[operation], timeout=30
    )
    assert v2.status_code == 503 and error_of(v2) == "model_unavailable", v2.text
    assert v2.json()["error"]  # Segmind's shape beside `detail`
    assert balance(sqlite_stack.url, key) == before


def _tryon(**fields: object) -> dict:
    return {**VALID["virtual-tryon"], **fields}


A, V, T = "/v1/audio/generate", "/v1/video/generate", "/v1/virtual-tryon"
IP = "invalid_parameter"
BAD = [
    (A, {"prompt": "ab"}, 422, IP, "prompt"),
    (A, {"prompt": "x" * 501}, 422, IP, "prompt"),
    (A, {"prompt": "rain", "duration": 4}, 422, IP, "duration"),
    (A, {"prompt": "rain", "duration": 31}, 422, IP, "duration"),
    (A, {"prompt": "rain", "duration": "long"}, 422, IP, "duration"),
    (A, {"prompt": "rain", "model": "musicgen-large"}, 422, IP, "model"),
    (A, {"prompt": "rain", "tempo": 120}, 422, IP, "tempo"),
    (A, {"prompt": "rain", "qa_thresholds": {}}, 422, IP, "qa_thresholds"),
    (V, {"prompt": ""}, 422, IP, "prompt"),
    (V, {"prompt": "x" * 2001}, 422, IP, "prompt"),
    (V, {"prompt": "sea", "duration": 0}, 422, IP, "duration"),
    (V, {"prompt": "sea", "duration": 11}, 422, IP, "duration"),
    (V, {"prompt": "sea", "resolution": "1080p"}, 422, IP, "resolution"),
    (V, {"prompt": "sea", "negative_prompt": "n" * 2001}, 422, IP, "negative_prompt"),
    (V, {"prompt": "sea", "seed": -1}, 422, IP, "seed"),
    (V, {"prompt": "sea", "image_url": "https://example.com/a.png"}, 422, IP, "image"),
    (T, _tryon(category="hat"), 422, "invalid_category", "category"),
    (T, _tryon(category=3), 422, "invalid_category", "category"),
    (T, _tryon(person_image="not base64 at all!"), 400, "invalid_image", "person_image"),
    (T, _tryon(garment_image=base64.b64encode(b"GIF89a").decode()), 400, "invalid_image",
     "garment_image"),
    (T, _tryon(garment_image="data:text/plain,hi"), 400, "invalid_image", "garment_image"),
    (T, _tryon(person_image=photo(99, 150)), 422, "image_too_small", "person_image"),
    (T, _tryon(garment_image=photo(140, 60)), 422, "image_too_small", "garment_image"),
    (T, _tryon(person_image=photo(200, 150)), 422, "wrong_aspect_ratio", "person_image"),
    (T, {"person_image": PERSON, "category": "dress"}, 422, IP, "garment_image"),
    (T, _tryon(seed="x"), 422, IP, "seed"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "status", "code", "field"), BAD)
def test_bad_input_answers_the_documented_code(
    sqlite_stack: RunningStack, key: Key, path: str, body: dict, status: int, code: str, field: str
) -> None:
    r = requests.post(sqlite_stack.url + path, headers=key.headers, json=body, timeout=30)
    assert r.status_code == status and error_of(r) == code, r.text
    assert r.json()["detail"]["field"] == field
    if code == "image_too_small" or code == "wrong_aspect_ratio":
        w, h = r.json()["detail"]["received_size"]
        assert min(w, h) < 100 or w > h


def test_a_data_uri_prefix_is_accepted_and_json_is_required(
    sqlite_stack: RunningStack, key: Key
) -> None:
    url = sqlite_stack.url
    body = _tryon(person_image="data:image/png;base64," + PERSON)
    r = requests.post(f"{url}/v1/virtual-tryon", headers=key.headers, json=body, timeout=30)
    assert r.status_code == 503 and error_of(r) == "model_unavailable", r.text
    r = requests.post(
        f"{url}/v1/audio/generate", headers=key.headers, data={"prompt": "rain"}, timeout=30
    )
    assert r.status_code == 415 and error_of(r) == "unsupported_media_type"
    r = requests.post(f"{url}/v2/video-generate", headers=key.headers, json={}, timeout=30)
    assert r.status_code == 422 and error_of(r) == "invalid_parameter" and r.json()["error"]


def test_curl_as_pixelapi_documents_it(sqlite_stack: RunningStack, key: Key) -> None:
    """A curl call written the way PixelAPI's docs write them (only the base URL and
    key changed): the documented 503 until the weights are installed."""
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            f"{sqlite_stack.url}/v1/audio/generate",
            "-H",
            f"Authorization: Bearer {key.key}",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"prompt": "lofi hip hop beat", "duration": 15, "model": "musicgen-small"}),
            "-w",
            "\n%{http_code}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, _, code = out.rpartition("\n")
    assert code == "503" and json.loads(body)["detail"]["error"] == "model_unavailable"


def test_job_routes_answer_only_their_own_jobs(sqlite_stack: RunningStack, key: Key) -> None:
    url = sqlite_stack.url
    r = requests.post(
        f"{url}/v1/image/remove-background",
        headers=key.headers,
        files={"image": ("p.png", product())},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    image_job = r.json()["id"]
    for path in (f"/v1/video/{image_job}", f"/v1/virtual-tryon/jobs/{image_job}"):
        r = requests.get(url + path, headers=key.headers, timeout=10)
        assert r.status_code == 404 and error_of(r) == "not_found", path
    for path in ("/v1/video/nope", "/v1/virtual-tryon/jobs/nope", "/v1/video/a.b"):
        r = requests.get(url + path, headers=key.headers, timeout=10)
        assert r.status_code == 404 and error_of(r) == "not_found", path
    assert requests.get(f"{url}/v1/video/nope", timeout=10).status_code == 401


def test_models_and_openapi_list_the_three(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.get(f"{sqlite_stack.url}/v1/models", headers=key.headers, timeout=10)
    ops = {o["operation"]: o for o in r.json()["operations"]}
    expected = {"audio-generate": 5.0, "video-generate": 50.0, "virtual-tryon": 25.0}
    for name, credits in expected.items():
        path, model = ENDPOINTS[name]
        op = ops[name]
        assert (op["endpoint"], op["v2_endpoint"], op["credits"]) == (path, f"/v2/{name}", credits)
        assert op["available"] is False
        (stage,) = op["stages"]
        assert stage["deployed"] is False and stage["engines"][0]["model"] == model
        assert stage["engines"][0]["install"] == hint(model)
    assert "16-30 s" in ops["audio-generate"]["description"]
    doc = requests.get(f"{sqlite_stack.url}/openapi.json", timeout=10).json()
    paths = doc["paths"]
    for path in ("/v1/audio/generate", "/v1/video/generate", "/v1/virtual-tryon"):
        schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert "prompt" in schema["properties"] or "person_image" in schema["properties"]
    assert "/v1/video/{job_id}" in paths and "/v1/virtual-tryon/jobs/{job_id}" in paths
    assert "/v2/virtual-tryon" in paths
    tryon = paths["/v1/virtual-tryon"]["post"]["requestBody"]["content"]["application/json"]
    assert set(tryon["schema"]["required"]) == {"person_image", "garment_image", "category"}
