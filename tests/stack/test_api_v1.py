"""Every /v1 endpoint against the running stack: the happy path, an unknown id,
another account's id, and bad input, asserting status and detail.error."""

from __future__ import annotations

import pytest
import requests

from tests.gateway.stackutil import Key, error_of, make_key, poll, product
from tests.stack.conftest import MATTING_ENGINE, RunningStack, expected_matting

pytestmark = pytest.mark.stack

# Operations the embedded engines serve: accepted and queued.
EMBEDDED = {
    "product-photo": {"preset": "white-studio"},
    "remove-background": {},
    "replace-background": {"prompt": "#336699"},
    "upscale": {"scale": "2"},
}
# Operations whose model is not deployed: 503 naming it, nothing charged.
NOT_DEPLOYED = [
    ("generate", {"json": {"prompt": "a lamp on a desk"}}, "sdxl"),
    ("generate", {"json": {"prompt": "a lamp", "model": "flux-schnell"}}, "flux"),
    ("restore-face", {"files": {"image": ("p.png", product())}}, "face_codeformer"),
    (
        "remove-object",
        {"files": {"image": ("p.png", product())}, "data": {"prompt": "the red box"}},
        "segment_clipseg",
    ),
]


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=1000)


@pytest.fixture(scope="module")
def other(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=50)


def balance(url: str, key: Key) -> float:
    r = requests.get(f"{url}/v1/account/balance", headers=key.headers, timeout=10)
    assert r.status_code == 200, r.text
    return float(r.json()["credits_remaining"])


# -- submit ---------------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(EMBEDDED))
def test_submit_embedded_operations_are_queued_and_charged(
    sqlite_stack: RunningStack, key: Key, op: str
) -> None:
    models = requests.get(f"{sqlite_stack.url}/v1/models", headers=key.headers, timeout=10)
    price = {o["operation"]: o["credits"] for o in models.json()["operations"]}[op]
    before = balance(sqlite_stack.url, key)
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/{op}",
        headers=key.headers,
        files={"image": ("p.png", product(), "image/png")},
        data=EMBEDDED[op],
        timeout=30,
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "processing") and job["operation"] == op
    assert job["generation_id"] == job["id"] and len(job["id"]) >= 24
    assert job["credits_used"] == price
    assert balance(sqlite_stack.url, key) == pytest.approx(before - price)


def test_remove_object_with_mask_is_accepted(sqlite_stack: RunningStack, key: Key) -> None:
    import numpy as np

    from tests.gateway.stackutil import encode

    mask = np.zeros((128, 96), np.uint8)
    mask[32:96, 32:64] = 255
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-object",
        headers=key.headers,
        files={"image": ("p.png", product()), "mask": ("m.png", encode(mask))},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    assert r.json()["parameters"]["has_mask"] is True


@pytest.mark.parametrize(("op", "body", "model"), NOT_DEPLOYED)
def test_submit_without_model_is_503_naming_it_and_free(
    sqlite_stack: RunningStack, key: Key, op: str, body: dict, model: str
) -> None:
    before = balance(sqlite_stack.url, key)
    r = requests.post(f"{sqlite_stack.url}/v1/image/{op}", headers=key.headers, timeout=30, **body)
    assert r.status_code == 503 and error_of(r) == "model_unavailable", r.text
    assert r.headers["Retry-After"]
    detail = r.json()["detail"]
    assert model in (detail["guidance"] + detail["message"]).lower().replace("-", "_").replace(
        "flux_schnell", "flux"
    )
    assert balance(sqlite_stack.url, key) == before


@pytest.mark.parametrize(
    "op",
    ["product-photo", "replace-background", "generate", "upscale", "restore-face", "remove-object"],
)
def test_submit_with_a_key_not_allowed_the_operation_is_403(
    sqlite_stack: RunningStack, op: str
) -> None:
    limited = make_key(sqlite_stack, operations=("remove-background",))
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/{op}",
        headers=limited.headers,
        json={"image_url": "https://example.com/a.png"},
        timeout=10,
    )
    assert r.status_code == 403 and error_of(r) == "forbidden"


@pytest.mark.parametrize(
    ("op", "kwargs", "status", "code", "field"),
    [
        ("product-photo", {"data": {"scale": "0"}}, 422, "invalid_parameter", "scale"),
        (
            "product-photo",
            {"data": {"preset": "custom"}},
            422,
            "invalid_parameter",
            "background_prompt",
        ),
        (
            "product-photo",
            {"data": {"output_size": "5000x10"}},
            422,
            "invalid_parameter",
            "output_size",
        ),
        (
            "remove-background",
            {"data": {"bg_color": "white"}},
            422,
            "invalid_parameter",
            "bg_color",
        ),
        (
            "remove-background",
            {"data": {"output_format": "jpeg"}},
            422,
            "invalid_parameter",
            "output_format",
        ),
        ("replace-background", {"data": {}}, 422, "invalid_parameter", "prompt"),
        ("upscale", {"data": {"scale": "3"}}, 422, "invalid_parameter", "scale"),
        ("restore-face", {"data": {"fidelity": "1.5"}}, 422, "invalid_parameter", "fidelity"),
        ("remove-object", {"data": {}}, 422, "invalid_parameter", "mask"),
        ("remove-background", {"data": {"surprise": "1"}}, 422, "invalid_parameter", "surprise"),
        ("remove-background", {"data": {"crop": "maybe"}}, 422, "invalid_parameter", "crop"),
    ],
)
def test_submit_bad_fields_name_the_field(
    sqlite_stack: RunningStack,
    key: Key,
    op: str,
    kwargs: dict,
    status: int,
    code: str,
    field: str,
) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/{op}",
        headers=key.headers,
        files={"image": ("p.png", product())},
        timeout=30,
        **kwargs,
    )
    assert r.status_code == status and error_of(r) == code, r.text
    assert r.json()["detail"]["field"] == field


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"prompt": "x", "width": 1004}, 422, "invalid_parameter", "width"),
        ({"prompt": "x", "height": 2048}, 422, "invalid_parameter", "height"),
        ({"prompt": "x", "model": "dalle"}, 422, "invalid_parameter", "model"),
        ({"width": 512}, 422, "invalid_parameter", "prompt"),
        (
            {"prompt": "x", "image_url": "https://example.com/a.png"},
            422,
            "invalid_parameter",
            "image",
        ),
        ({"prompt": "x", "steps": "many"}, 422, "invalid_parameter", "steps"),
    ],
)
def test_generate_bad_input(
    sqlite_stack: RunningStack, key: Key, body: dict, status: int, code: str, field: str
) -> None:
    r = requests.post(f"{sqlite_stack.url}/v1/image/generate", headers=key.headers, json=body)
    assert r.status_code == status and error_of(r) == code, r.text
    assert r.json()["detail"]["field"] == field


def test_generate_takes_json_only(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/generate", headers=key.headers, data={"prompt": "a lamp"}
    )
    assert r.status_code == 415 and error_of(r) == "unsupported_media_type"


def test_upscale_output_over_8192_is_422(sqlite_stack: RunningStack, key: Key) -> None:
    wide = product(2100, 64)
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/upscale",
        headers=key.headers,
        files={"image": ("w.png", wide)},
        data={"scale": "4"},
    )
    assert r.status_code == 422 and error_of(r) == "invalid_parameter"
    assert r.json()["detail"]["field"] == "scale" and "8192" in r.json()["detail"]["message"]
    ok = requests.post(
        f"{sqlite_stack.url}/v1/image/upscale",
        headers=key.headers,
        files={"image": ("w.png", wide)},
        data={"scale": "2"},
    )
    assert ok.status_code == 202, ok.text


def test_remove_object_mask_must_match_the_image(sqlite_stack: RunningStack, key: Key) -> None:
    url = f"{sqlite_stack.url}/v1/image/remove-object"
    r = requests.post(
        url,
        headers=key.headers,
        files={"image": ("p.png", product(96, 128)), "mask": ("m.png", product(64, 64))},
    )
    assert r.status_code == 422 and r.json()["detail"]["field"] == "mask"
    r = requests.post(
        url,
        headers=key.headers,
        files={"image": ("p.png", product(96, 128)), "mask": ("m.png", b"not an image")},
    )
    assert r.status_code == 400 and error_of(r) == "invalid_image"
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/upscale",
        headers=key.headers,
        files={"image": ("p.png", product()), "mask": ("m.png", product())},
    )
    assert r.status_code == 422 and r.json()["detail"]["field"] == "mask"


def test_unknown_operation_is_404(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/teleport",
        headers=key.headers,
        files={"image": ("p.png", product())},
    )
    assert r.status_code == 404 and error_of(r) == "not_found"
    assert "/v1/models" in r.json()["detail"]["guidance"]


def test_body_shapes(sqlite_stack: RunningStack, key: Key) -> None:
    url = f"{sqlite_stack.url}/v1/image/remove-background"
    cases = [
        (
            dict(data=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "invalid_request",
        ),
        (dict(json=[1, 2]), 400, "invalid_request"),
        (dict(json={"image": "https://example.com/a.png"}), 400, "invalid_request"),
        (dict(json={"image_url": 42}), 422, "invalid_parameter"),
        (dict(json={}), 400, "image_required"),
        (dict(data={"crop": "true"}), 415, "unsupported_media_type"),  # urlencoded
        (dict(files={"crop": (None, "true")}), 400, "image_required"),
        (dict(data=b"x", headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (
            dict(
                data=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"}
            ),
            400,
            "image_required",
        ),
        (dict(files={"picture": ("p.png", product())}), 422, "invalid_parameter"),
        (
            dict(files=[("image", ("a.png", product())), ("image", ("b.png", product()))]),
            422,
            "invalid_parameter",
        ),
        (
            dict(data=b"[" * 100_000, headers={"Content-Type": "application/json"}),
            400,
            "invalid_request",
        ),
    ]
    for kwargs, status, code in cases:
        headers = {**key.headers, **kwargs.pop("headers", {})}
        r = requests.post(url, headers=headers, timeout=30, **kwargs)
        assert (r.status_code, error_of(r)) == (status, code), (kwargs, r.text)


def test_submit_header_errors(sqlite_stack: RunningStack, key: Key) -> None:
    url = f"{sqlite_stack.url}/v1/image/remove-background"
    img = {"image": ("p.png", product())}
    r = requests.post(url, headers=key.h(**{"Idempotency-Key": "k" * 256}), files=img)
    assert r.status_code == 422 and r.json()["detail"]["field"] == "Idempotency-Key"
    r = requests.post(url, headers=key.h(Prefer="wait=soon"), files=img)
    assert r.status_code == 422 and r.json()["detail"]["field"] == "Prefer"


# -- jobs: read, cancel ---------------------------------------------------------------


@pytest.fixture(scope="module")
def done_job(sqlite_stack: RunningStack, key: Key) -> dict:
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=key.h(Prefer="wait=60"),
        files={"image": ("p.png", product())},
        timeout=90,
    )
    assert r.status_code == 200, r.text
    assert r.headers["Preference-Applied"] == "wait=60"
    assert r.json()["status"] == "completed"
    return dict(r.json())


def test_get_job_happy(sqlite_stack: RunningStack, key: Key, done_job: dict) -> None:
    r = requests.get(f"{sqlite_stack.url}/v1/image/{done_job['id']}", headers=key.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "completed" and body["operation"] == "remove-background"
    assert body["format"] == "png" and (body["width"], body["height"]) == (96, 128)
    assert body["output_url"].startswith(sqlite_stack.url + "/v1/files/outputs/")
    assert body["output_expires_at"].endswith("Z") and body["completed_at"]
    assert expected_matting(body["engines"]) and set(body["engines"]) <= {
        "matting",
        "matting_fallback",
    }
    assert body["processing_ms"] >= 0


@pytest.mark.parametrize("job_id", ["no-such-job", "x" * 129, "..%2F..%2Fetc", "a b", "%00"])
def test_get_job_unknown_is_404(sqlite_stack: RunningStack, key: Key, job_id: str) -> None:
    r = requests.get(f"{sqlite_stack.url}/v1/image/{job_id}", headers=key.headers)
    assert r.status_code == 404 and error_of(r) == "not_found"


def test_get_job_of_another_account_is_the_same_404(
    sqlite_stack: RunningStack, other: Key, done_job: dict
) -> None:
    theirs = requests.get(f"{sqlite_stack.url}/v1/image/{done_job['id']}", headers=other.headers)
    unknown = requests.get(f"{sqlite_stack.url}/v1/image/{'z' * 32}", headers=other.headers)
    assert theirs.status_code == unknown.status_code == 404
    assert error_of(theirs) == error_of(unknown) == "not_found"
    assert theirs.json()["detail"]["guidance"] == unknown.json()["detail"]["guidance"]


def test_get_job_needs_a_key(sqlite_stack: RunningStack, done_job: dict) -> None:
    r = requests.get(f"{sqlite_stack.url}/v1/image/{done_job['id']}")
    assert r.status_code == 401 and error_of(r) == "unauthorized"
    r = requests.get(
        f"{sqlite_stack.url}/v1/image/{done_job['id']}",
        headers={"Authorization": "Bearer lb_live_forged_key"},
    )
    assert r.status_code == 401 and error_of(r) == "unauthorized"


def test_cancel_queued_job_refunds(stack: RunningStack) -> None:
    # One job at a time for this account: the second waits behind the first.
    k = make_key(stack, credits=100, max_concurrent=1)
    url = f"{stack.url}/v1/image/remove-background"
    first = requests.post(url, headers=k.headers, files={"image": ("a.png", product(2048, 2048))})
    second = requests.post(url, headers=k.headers, files={"image": ("b.png", product())})
    assert first.status_code == second.status_code == 202
    assert balance(stack.url, k) == pytest.approx(96)
    r = requests.delete(f"{stack.url}/v1/image/{second.json()['id']}", headers=k.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled"
    assert r.json()["credits_used"] == 0 and r.json()["credits_refunded"] == 2
    assert balance(stack.url, k) == pytest.approx(98)
    # Canceled is final: the job stays canceled and a second cancel conflicts.
    again = requests.delete(f"{stack.url}/v1/image/{second.json()['id']}", headers=k.headers)
    assert again.status_code == 409 and error_of(again) == "conflict"
    got = requests.get(f"{stack.url}/v1/image/{second.json()['id']}", headers=k.headers)
    assert got.json()["status"] == "canceled"
    # Once finished, the first cannot be canceled either; it stays charged.
    assert poll(stack.url, first.json()["id"], k.headers)["status"] == "completed"
    r = requests.delete(f"{stack.url}/v1/image/{first.json()['id']}", headers=k.headers)
    assert r.status_code == 409 and error_of(r) == "conflict"
    assert balance(stack.url, k) == pytest.approx(98)


def test_cancel_unknown_or_not_yours_is_404(
    sqlite_stack: RunningStack, key: Key, other: Key, done_job: dict
) -> None:
    for headers, job_id in (
        (key.headers, "no-such-job"),
        (other.headers, done_job["id"]),
        (key.headers, "bad id!"),
    ):
        r = requests.delete(f"{sqlite_stack.url}/v1/image/{job_id}", headers=headers)
        assert r.status_code == 404 and error_of(r) == "not_found"
    r = requests.delete(f"{sqlite_stack.url}/v1/image/{done_job['id']}")
    assert r.status_code == 401


# -- models, balance, usage -------------------------------------------------------------


def test_models_lists_operations_engines_and_presets(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.get(f"{sqlite_stack.url}/v1/models", headers=key.headers)
    assert r.status_code == 200
    body = r.json()
    ops = {o["operation"]: o for o in body["operations"]}
    assert set(ops) == {
        "product-photo",
        "remove-background",
        "replace-background",
        "generate",
        "upscale",
        "restore-face",
        "remove-object",
        "audio-generate",
        "video-generate",
        "virtual-tryon",
    }
    assert {n: o["credits"] for n, o in ops.items()} == {
        "product-photo": 7,
        "remove-background": 2,
        "replace-background": 5,
        "generate": 3,
        "upscale": 20,
        "restore-face": 3,
        "remove-object": 5,
        # The price of a request with default fields (docs/media.md has the tiers).
        "audio-generate": 5,
        "video-generate": 50,
        "virtual-tryon": 25,
    }
    matting = next(s for s in ops["remove-background"]["stages"] if s["stage"] == "matting")
    assert matting["engine"] == MATTING_ENGINE and matting["deployed"]
    birefnet = next(e for e in matting["engines"] if e["engine"] == "birefnet")
    assert birefnet == {
        "engine": "birefnet",
        "model": "matting_birefnet",
        "kind": "production",
        "deployed": False,
        "install": birefnet["install"],
    }
    assert "matting_birefnet" in birefnet["install"]
    assert ops["product-photo"]["available"] and ops["remove-background"]["available"]
    assert not ops["generate"]["available"] and not ops["restore-face"]["available"]
    face = {s["stage"]: s for s in ops["restore-face"]["stages"]}
    assert face["restore-face"]["engine"] is None
    assert "face_codeformer" in face["restore-face"]["engines"][0]["install"]
    models = {m["name"]: m for m in body["models"]}
    assert models["matting_classical"]["deployed"] and not models["sdxl"]["deployed"]
    assert models["sdxl"]["install"]
    presets = {p["name"] for p in body["presets"]}
    assert {"white-studio", "gradient-light", "marble", "outdoor"} <= presets
    assert body["sources"] == {"triton": "ok", "compositor": "ok"}


def test_models_needs_a_key(sqlite_stack: RunningStack) -> None:
    r = requests.get(f"{sqlite_stack.url}/v1/models", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and error_of(r) == "unauthorized"


def test_balance_is_per_account(sqlite_stack: RunningStack) -> None:
    a = make_key(sqlite_stack, credits=12.5, rpm=77, plan="pro")
    r = requests.get(f"{sqlite_stack.url}/v1/account/balance", headers=a.headers)
    assert r.status_code == 200
    assert r.json() == {"credits_remaining": 12.5, "plan": "pro", "rate_limit_per_minute": 77}
    assert r.headers["X-RateLimit-Limit"] == "77"
    r = requests.get(f"{sqlite_stack.url}/v1/account/balance")
    assert r.status_code == 401 and error_of(r) == "unauthorized"
    r = requests.get(f"{sqlite_stack.url}/v1/account/balance", headers={"Authorization": "Basic x"})
    assert r.status_code == 401 and error_of(r) == "unauthorized"


def test_usage_pages_newest_first_and_only_yours(stack: RunningStack) -> None:
    mine, theirs = make_key(stack), make_key(stack)
    ids = []
    for _ in range(3):
        r = requests.post(
            f"{stack.url}/v1/image/generate", headers=mine.headers, json={"prompt": "a nude statue"}
        )  # blocked at submit: no worker time
        assert r.status_code == 200 and r.json()["status"] == "blocked", r.text
        ids.append(r.json()["id"])
    r = requests.get(f"{stack.url}/v1/account/usage", headers=mine.headers, params={"limit": 2})
    assert r.status_code == 200
    page1 = r.json()
    assert [j["id"] for j in page1["jobs"]] == ids[::-1][:2]
    assert page1["next_cursor"]
    r = requests.get(
        f"{stack.url}/v1/account/usage",
        headers=mine.headers,
        params={"limit": 2, "cursor": page1["next_cursor"]},
    )
    assert [j["id"] for j in r.json()["jobs"]] == ids[:1] and r.json()["next_cursor"] is None
    r = requests.get(f"{stack.url}/v1/account/usage", headers=theirs.headers)
    assert r.json() == {"jobs": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "c" * 600}, "cursor"),
        ({"cursor": "WzEsICJ4Il0"}, "cursor"),  # base64 JSON of the wrong shape: [1, "x"]
    ],
)
def test_usage_bad_input(sqlite_stack: RunningStack, key: Key, params: dict, field: str) -> None:
    r = requests.get(f"{sqlite_stack.url}/v1/account/usage", headers=key.headers, params=params)
    assert r.status_code == 422 and error_of(r) == "invalid_parameter", r.text
    assert r.json()["detail"]["field"] == field
