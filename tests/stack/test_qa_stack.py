"""Image QA through the whole stack: the `qa` object on /v1 job bodies, usage, /v2
results and the webhook body; a compliance preset's output checked independently
on its pixels; qa_thresholds and compliance validated with 422s naming the field."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import requests
from PIL import Image

from services.common import compliance
from services.jobs.webhooks import JobBodyRenderer
from tests.compositor import products
from tests.gateway.stackutil import Key, encode, error_of, make_key, store_of
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack

QA_KEYS = {"scores", "needs_review", "reasons", "compliance"}


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=500)


def _photo(size: int, make=products.bottle) -> bytes:
    return encode(products.photographed(make(size), (238, 238, 236)))


def _submit(stack: RunningStack, key: Key, path: str, image: bytes, **fields: str) -> dict:
    r = requests.post(
        f"{stack.url}{path}",
        headers=key.h(Prefer="wait=60"),
        files={"image": ("p.png", image)},
        data=fields,
        timeout=90,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed", body
    return dict(body)


@pytest.fixture(scope="module")
def amazon(sqlite_stack: RunningStack, key: Key) -> dict:
    return _submit(
        sqlite_stack,
        key,
        "/v1/image/product-photo",
        _photo(1100),
        compliance="amazon-main",
        qa_thresholds=json.dumps({"max_edge_halo": 0.2}),
    )


def test_product_photo_job_carries_qa_and_compliance(amazon: dict) -> None:
    qa = amazon["qa"]
    assert set(qa) == QA_KEYS
    params = amazon["parameters"]
    assert params["compliance"] == "amazon-main" and params["shadow_type"] == "none"
    assert params["qa_thresholds"] == {"max_edge_halo": 0.2}
    report = qa["compliance"]
    assert report["preset"] == "amazon-main"
    assert report["passed"] is True, report
    assert qa["needs_review"] is False, qa["reasons"]
    assert qa["scores"]["background_purity"]["value"] == 1
    assert qa["scores"]["resolution"]["width"] == amazon["width"]


def test_compliance_output_passes_an_independent_check(amazon: dict) -> None:
    """Pixels, fill and size measured here from the downloaded file alone."""
    preset = compliance.get("amazon-main")
    data = requests.get(amazon["output_url"], timeout=10).content
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.size == (amazon["width"], amazon["height"])
    assert min(image.size) >= 1000 and image.size[0] == image.size[1]
    rgb = np.asarray(image.convert("RGB"))
    subject = np.any(rgb < 250, axis=2)
    ys, xs = np.nonzero(subject)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    fill = max((x1 - x0) / rgb.shape[1], (y1 - y0) / rgb.shape[0])
    assert preset.min_fill <= fill <= preset.max_fill
    # Every pixel away from the product (outside its box grown by 16 px) is exactly white.
    away = np.ones(rgb.shape[:2], bool)
    away[max(0, y0 - 16) : y1 + 16, max(0, x0 - 16) : x1 + 16] = False
    assert away.sum() > 0.05 * away.size
    assert (rgb[away] == 255).all()


def test_qa_on_usage_and_webhook_body(sqlite_stack: RunningStack, key: Key, amazon: dict) -> None:
    r = requests.get(f"{sqlite_stack.url}/v1/account/usage", headers=key.headers, timeout=10)
    listed = next(j for j in r.json()["jobs"] if j["id"] == amazon["id"])
    assert listed["qa"] == amazon["qa"]
    # The webhook body is the worker's rendering of the job (services/jobs/webhooks.py).
    record = store_of(sqlite_stack).get(amazon["id"])
    body = json.loads(JobBodyRenderer(sqlite_stack.url, "secret")(record))
    assert body["qa"] == amazon["qa"]


def test_v2_result_carries_qa(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v2/remove-background",
        headers=key.h(Prefer="wait=60"),
        files={"image": ("p.png", _photo(160, products.jar))},
        timeout=90,
    )
    assert r.status_code in (200, 202), r.text
    rid = r.json().get("request_id") or r.json()["id"]
    for _ in range(300):
        result = requests.get(f"{sqlite_stack.url}/v2/requests/{rid}", headers=key.headers)
        if result.status_code == 200:
            break
    qa = result.json()["qa"]
    assert set(qa) == QA_KEYS and qa["compliance"] is None
    # A 160 px source makes a 160 px cut-out: below the 500 px default, so review.
    assert qa["needs_review"] is True
    assert [r["code"] for r in qa["reasons"]] == ["low_resolution"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"qa_thresholds": '{"max_halo": 0.1}'}, "qa_thresholds.max_halo"),
        ({"qa_thresholds": '{"max_upscale": 0.5}'}, "qa_thresholds.max_upscale"),
        ({"qa_thresholds": "[1, 2"}, "qa_thresholds"),
        ({"compliance": "ebay-main"}, "compliance"),
        ({"compliance": "amazon-main", "shadow_type": "soft"}, "shadow_type"),
        ({"compliance": "amazon-main", "preset": "marble"}, "preset"),
        ({"compliance": "amazon-main", "output_size": "800x800"}, "output_size"),
        ({"compliance": "google-merchant", "scale": "0.95"}, "scale"),
    ],
)
def test_bad_qa_fields_are_422_naming_the_field(
    sqlite_stack: RunningStack, key: Key, fields: dict[str, str], field: str
) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/product-photo",
        headers=key.headers,
        files={"image": ("p.png", _photo(64))},
        data=fields,
        timeout=30,
    )
    assert r.status_code == 422 and error_of(r) == "invalid_parameter", r.text
    assert r.json()["detail"]["field"] == field


def test_json_submit_takes_qa_thresholds_as_an_object(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/product-photo",
        headers=key.headers,
        json={"image_url": "http://example.invalid/p.png", "qa_thresholds": {"nope": 1}},
        timeout=30,
    )
    assert r.status_code == 422 and r.json()["detail"]["field"] == "qa_thresholds.nope"


def test_batch_items_from_a_compliance_profile_carry_qa(
    sqlite_stack: RunningStack, key: Key
) -> None:
    """A profile sets compliance and thresholds; each batch item's qa is its job's."""
    profile = {
        "name": "qa-amazon",
        "operation": "product-photo",
        "fields": {"compliance": "amazon-main"},
        "qa_thresholds": {"max_upscale": 16},
    }
    r = requests.post(f"{sqlite_stack.url}/v1/profiles", headers=key.headers, json=profile)
    assert r.status_code == 201, r.text
    up = requests.post(
        f"{sqlite_stack.url}/v1/uploads",
        headers=key.headers,
        files={"image": ("p.png", _photo(200, products.jar))},
        timeout=30,
    )
    assert up.status_code == 201, up.text
    body = {
        "profile": "qa-amazon@1",
        "items": [{"sku": "J1", "variant": "main", "upload_id": up.json()["upload_id"]}],
    }
    r = requests.post(f"{sqlite_stack.url}/v1/batches", headers=key.headers, json=body)
    assert r.status_code == 202, r.text
    batch_id = r.json()["batch_id"]
    for _ in range(600):
        done = requests.get(f"{sqlite_stack.url}/v1/batches/{batch_id}", headers=key.headers)
        if done.json()["status"] != "running":
            break
        time.sleep(0.2)
    (item,) = done.json()["items"]
    assert item["status"] == "completed", item
    qa = item["qa"]
    job = requests.get(
        f"{sqlite_stack.url}/v1/image/{item['generation_id']}", headers=key.headers
    ).json()
    assert qa == job["qa"] and job["parameters"]["qa_thresholds"] == {"max_upscale": 16}
    # A 200 px photo fills a 1000 px canvas only by enlarging the jar ~7x: the
    # profile's max_upscale of 16 lets that pass, in review and in the rule alike.
    assert qa["compliance"]["preset"] == "amazon-main"
    rules = {r["rule"]: r for r in qa["compliance"]["rules"]}
    assert rules["not_upscaled"]["passed"] and 4 < rules["not_upscaled"]["value"] <= 16
    assert "upscaled" not in [r["code"] for r in qa["reasons"]]
