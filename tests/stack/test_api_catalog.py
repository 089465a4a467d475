"""Catalogs through the live stack (docs/catalogs.md): profile versions,
submits under a profile (locked fields, placements, rendered prompts),
uploads, and batches (validation before queueing, 402 up front, counts and
paging, cancel with refunds, idempotent re-submits). The batch webhook's
delivery is tested in-process with a real receiver (tests/jobs/test_catalog_store.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.gateway.stackutil import Key, error_of, make_key, product
from tests.stack.conftest import RunningStack

PROFILE: dict[str, Any] = {
    "name": "shoe-main",
    "operation": "product-photo",
    "description": "catalog test",
    "fields": {"preset": "custom", "shadow_type": "none", "output_format": "png"},
    "locked": ["preset", "shadow_type"],
    "placements": {
        "product-page": {"aspect_ratio": "1:1", "scale": 0.7, "x": 40},
        "social-feed": {"aspect_ratio": "4:5"},
    },
    "prompts": {"background_prompt": "{{tone}} marble"},
}
VARS = json.dumps({"tone": "white"})


def balance(url: str, key: Key) -> float:
    r = requests.get(f"{url}/v1/account/balance", headers=key.headers, timeout=10)
    return float(r.json()["credits_remaining"])


def upload(url: str, key: Key, data: bytes, name: str = "p.png") -> requests.Response:
    return requests.post(
        f"{url}/v1/uploads", headers=key.headers, files={"image": (name, data)}, timeout=30
    )


def wait_batch(url: str, key: Key, batch_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/v1/batches/{batch_id}", headers=key.headers, timeout=10)
        assert r.status_code == 200, r.text
        if r.json()["status"] != "running":
            return dict(r.json())
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} did not finish in {timeout} s")


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=500, max_concurrent=2)


@pytest.fixture(scope="module")
def profile(sqlite_stack: RunningStack, key: Key) -> dict[str, Any]:
    url = f"{sqlite_stack.url}/v1/profiles"
    first = requests.post(url, headers=key.headers, json=PROFILE, timeout=10)
    assert first.status_code == 201, first.text
    second = requests.post(
        url, headers=key.headers, json={**PROFILE, "description": "v2"}, timeout=10
    )
    assert second.status_code == 201, second.text
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    return dict(second.json())


def test_profile_versions_are_immutable_and_per_account(
    sqlite_stack: RunningStack, key: Key, profile: dict[str, Any]
) -> None:
    base = f"{sqlite_stack.url}/v1/profiles"
    v1 = requests.get(f"{base}/shoe-main/versions/1", headers=key.headers, timeout=10).json()
    assert v1["description"] == "catalog test" and v1["locked"] == ["preset", "shadow_type"]
    assert v1["fields"] == PROFILE["fields"] and v1["placements"]["product-page"] == {
        "aspect_ratio": "1:1",
        "scale": 0.7,
        "x": 40,
    }
    latest = requests.get(f"{base}/shoe-main/versions/latest", headers=key.headers, timeout=10)
    assert latest.json()["version"] == 2 and latest.json()["description"] == "v2"
    versions = requests.get(f"{base}/shoe-main", headers=key.headers, timeout=10).json()
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    listed = requests.get(base, headers=key.headers, timeout=10).json()["profiles"]
    assert {"name": "shoe-main", "latest_version": 2, "operation": "product-photo"}.items() <= (
        listed[0].items()
    )
    other = make_key(sqlite_stack, credits=10)
    for path in ("/shoe-main", "/shoe-main/versions/1"):
        r = requests.get(base + path, headers=other.headers, timeout=10)
        assert r.status_code == 404 and error_of(r) == "profile_not_found"
    assert requests.get(base, headers=other.headers, timeout=10).json() == {"profiles": []}
    missing = requests.get(f"{base}/shoe-main/versions/9", headers=key.headers, timeout=10)
    assert missing.status_code == 404 and error_of(missing) == "profile_not_found"
    bad = requests.post(
        base,
        headers=key.headers,
        json={**PROFILE, "fields": {**PROFILE["fields"], "scale": 3}},
        timeout=10,
    )
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "fields.scale"
    schema = requests.get(f"{sqlite_stack.url}/v1/schemas/profile.json", timeout=10)
    assert schema.status_code == 200 and "placements" in schema.json()["properties"]


def test_submit_with_a_profile_records_the_rendered_prompt(
    sqlite_stack: RunningStack, key: Key, profile: dict[str, Any]
) -> None:
    url = f"{sqlite_stack.url}/v1/image/product-photo"
    r = requests.post(
        url,
        headers=key.h(Prefer="wait=60"),
        files={"image": ("p.png", product())},
        data={
            "profile": "shoe-main@latest",
            "placement": "product-page",
            "vars": json.dumps({"tone": "white"}),
        },
        timeout=90,
    )
    assert r.status_code in (200, 202), r.text
    params = r.json()["parameters"]
    assert params["profile"] == "shoe-main@2" and params["placement"] == "product-page"
    assert params["rendered_prompts"] == {"background_prompt": "white marble"}
    assert params["background_prompt"] == "white marble" and params["aspect_ratio"] == "1:1"
    if r.json()["status"] == "completed":
        assert r.json()["width"] == r.json()["height"]

    def refused(**data: str) -> requests.Response:
        return requests.post(
            url, headers=key.headers, files={"image": ("p.png", product())}, data=data, timeout=30
        )

    locked = refused(profile="shoe-main@1", preset="marble", vars='{"tone": "white"}')
    assert locked.status_code == 422 and error_of(locked) == "invalid_parameter"
    assert locked.json()["detail"]["field"] == "preset"
    same = refused(profile="shoe-main@1", preset="custom", placement="social-feed", vars=VARS)
    assert same.status_code == 202, same.text
    place = refused(profile="shoe-main", placement="billboard", vars='{"tone": "white"}')
    assert place.status_code == 422 and error_of(place) == "unknown_placement"
    assert place.json()["detail"]["placements"] == ["product-page", "social-feed"]
    missing_var = refused(profile="shoe-main")
    assert missing_var.status_code == 422 and missing_var.json()["detail"]["field"] == "vars.tone"
    unknown = refused(profile="boots@1")
    assert unknown.status_code == 404 and error_of(unknown) == "profile_not_found"


def test_uploads_check_like_a_submit(sqlite_stack: RunningStack, key: Key) -> None:
    ok = upload(sqlite_stack.url, key, product(120, 80))
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["upload_id"].startswith("up_") and (body["width"], body["height"]) == (120, 80)
    assert body["format"] == "png" and body["bytes"] > 0 and body["expires_at"]
    bad = upload(sqlite_stack.url, key, b"<html>not an image</html>")
    assert bad.status_code == 400 and error_of(bad) == "invalid_image"
    big = upload(sqlite_stack.url, key, b"\0" * (10 * 1024 * 1024 + 1))
    assert big.status_code == 413 and error_of(big) == "file_too_large"
    none = requests.post(
        f"{sqlite_stack.url}/v1/uploads", headers=key.headers, json={"image": "x"}, timeout=10
    )
    assert none.status_code == 415 and error_of(none) == "unsupported_media_type"
    # A submit may name the upload instead of sending the file again.
    submit = f"{sqlite_stack.url}/v1/image/remove-background"
    queued = requests.post(
        submit, headers=key.headers, json={"image_upload_id": body["upload_id"]}, timeout=30
    )
    assert queued.status_code == 202, queued.text
    other = make_key(sqlite_stack, credits=10)
    foreign = requests.post(
        submit, headers=other.headers, json={"image_upload_id": body["upload_id"]}, timeout=30
    )
    assert foreign.status_code == 404 and error_of(foreign) == "upload_not_found"
    assert foreign.json()["detail"]["field"] == "image_upload_id"


def test_batch_items_are_all_checked_before_anything_is_queued(
    sqlite_stack: RunningStack, profile: dict[str, Any]
) -> None:
    k = make_key(sqlite_stack, credits=100)
    # The profile is another account's: this one must make its own.
    made = requests.post(f"{sqlite_stack.url}/v1/profiles", headers=k.headers, json=PROFILE)
    assert made.status_code == 201
    up = upload(sqlite_stack.url, k, product()).json()["upload_id"]
    items = [
        {"sku": "A1", "upload_id": up, "placement": "product-page", "vars": {"tone": "white"}},
        {"sku": "A2", "upload_id": up, "placement": "billboard", "vars": {"tone": "white"}},
        {"sku": "A3", "placement": "social-feed", "vars": {"tone": "white"}},
        {"sku": "A4", "upload_id": "up_forged.x", "vars": {"tone": "white"}},
        {"sku": "A5", "image_url": "http://10.0.0.1/p.png", "vars": {"tone": "white"}},
        {"sku": "A6", "upload_id": up, "fields": {"preset": "marble"}, "vars": {"tone": "a"}},
    ]
    r = requests.post(
        f"{sqlite_stack.url}/v1/batches",
        headers=k.headers,
        json={"profile": "shoe-main@1", "items": items},
        timeout=60,
    )
    assert r.status_code == 422 and error_of(r) == "invalid_batch", r.text
    errors = {e["index"]: e for e in r.json()["detail"]["errors"]}
    assert sorted(errors) == [1, 2, 5]  # images are checked once every field is valid
    assert errors[1]["error"] == "unknown_placement" and errors[1]["sku"] == "A2"
    assert errors[2]["field"] == "image_url" and errors[5]["field"] == "preset"
    fixed = [items[0], items[3], items[4]]
    r = requests.post(
        f"{sqlite_stack.url}/v1/batches",
        headers=k.headers,
        json={"profile": "shoe-main@1", "items": fixed},
        timeout=60,
    )
    assert r.status_code == 422, r.text
    errors = {e["index"]: e for e in r.json()["detail"]["errors"]}
    assert errors[1]["error"] == "upload_not_found" and errors[1]["field"] == "upload_id"
    assert errors[2]["error"] == "image_url_not_allowed" and errors[2]["sku"] == "A5"
    usage = requests.get(f"{sqlite_stack.url}/v1/account/usage", headers=k.headers).json()
    assert usage["jobs"] == [] and balance(sqlite_stack.url, k) == 100


def test_batch_short_of_credits_is_402_before_anything_is_queued(
    sqlite_stack: RunningStack,
) -> None:
    k = make_key(sqlite_stack, credits=3)
    up = upload(sqlite_stack.url, k, product()).json()["upload_id"]
    items = [{"sku": f"S{n}", "upload_id": up} for n in range(2)]
    r = requests.post(
        f"{sqlite_stack.url}/v1/batches",
        headers=k.headers,
        json={"operation": "remove-background", "items": items},
        timeout=30,
    )
    assert r.status_code == 402 and error_of(r) == "insufficient_credits", r.text
    assert r.json()["detail"]["required"] == 4 and r.json()["detail"]["available"] == 3
    usage = requests.get(f"{sqlite_stack.url}/v1/account/usage", headers=k.headers).json()
    assert usage["jobs"] == [] and balance(sqlite_stack.url, k) == 3
    listed = requests.get(f"{sqlite_stack.url}/v1/batches", headers=k.headers).json()
    assert listed["batches"] == []


def test_batch_cancel_refunds_queued_items(sqlite_stack: RunningStack) -> None:
    # One job at a time: the big first item holds the queue while we cancel.
    k = make_key(sqlite_stack, credits=100, max_concurrent=1)
    big = upload(sqlite_stack.url, k, product(1024, 1024)).json()["upload_id"]
    small = upload(sqlite_stack.url, k, product()).json()["upload_id"]
    items = [{"sku": "B0", "upload_id": big}] + [
        {"sku": f"B{n}", "upload_id": small} for n in range(1, 4)
    ]
    r = requests.post(
        f"{sqlite_stack.url}/v1/batches",
        headers=k.headers,
        json={"operation": "remove-background", "items": items},
        timeout=60,
    )
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["items_total"] == 4 and created["credits_reserved"] == 8
    assert sum(created["counts"].values()) == 4 and balance(sqlite_stack.url, k) == 92
    batch_id = created["batch_id"]
    canceled = requests.delete(f"{sqlite_stack.url}/v1/batches/{batch_id}", headers=k.headers)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["counts"]["canceled"] >= 3 and canceled.json()["canceled_at"]
    done = wait_batch(sqlite_stack.url, k, batch_id)
    assert done["status"] == "canceled" and done["progress"] == 1.0
    counts = done["counts"]
    assert counts["canceled"] + counts["completed"] == 4
    assert balance(sqlite_stack.url, k) == 100 - 2 * counts["completed"]
    for item in done["items"]:
        if item["status"] == "canceled":
            assert item["output_url"] is None and item["generation_id"]
    other = make_key(sqlite_stack, credits=1)
    for method in ("get", "delete"):
        r = requests.request(
            method, f"{sqlite_stack.url}/v1/batches/{batch_id}", headers=other.headers
        )
        assert r.status_code == 404 and error_of(r) == "not_found"


def test_batch_runs_pages_and_a_resubmit_charges_nothing(stack: RunningStack) -> None:
    k = make_key(stack, credits=100)
    up = upload(stack.url, k, product()).json()["upload_id"]
    items = [{"sku": f"C{n}", "variant": "main", "upload_id": up} for n in range(2)]
    body = {"operation": "remove-background", "items": items}
    r = requests.post(f"{stack.url}/v1/batches", headers=k.headers, json=body, timeout=60)
    assert r.status_code == 202, r.text
    batch_id = r.json()["batch_id"]
    done = wait_batch(stack.url, k, batch_id)
    assert done["status"] == "completed" and done["counts"]["completed"] == 2
    assert done["progress"] == 1.0 and done["finished_at"]
    assert [i["sku"] for i in done["items"]] == ["C0", "C1"]
    assert all(i["output_url"] and i["error"] is None for i in done["items"])
    page = requests.get(
        f"{stack.url}/v1/batches/{batch_id}", headers=k.headers, params={"limit": 1}
    ).json()
    assert [i["index"] for i in page["items"]] == [0] and page["next_cursor"]
    rest = requests.get(
        f"{stack.url}/v1/batches/{batch_id}",
        headers=k.headers,
        params={"limit": 1, "cursor": page["next_cursor"]},
    ).json()
    assert [i["index"] for i in rest["items"]] == [1] and rest["next_cursor"] is None
    assert balance(stack.url, k) == 96
    again = requests.post(f"{stack.url}/v1/batches", headers=k.headers, json=body, timeout=60)
    assert again.status_code == 202, again.text
    assert again.json()["credits_reserved"] == 0
    replay = wait_batch(stack.url, k, again.json()["batch_id"])
    assert [i["generation_id"] for i in replay["items"]] == [
        i["generation_id"] for i in done["items"]
    ]
    assert all(i["replayed"] for i in replay["items"])
    assert balance(stack.url, k) == 96
    usage = requests.get(f"{stack.url}/v1/account/usage", headers=k.headers).json()
    assert len(usage["jobs"]) == 2
    listed = requests.get(f"{stack.url}/v1/batches", headers=k.headers).json()["batches"]
    assert [b["batch_id"] for b in listed] == [again.json()["batch_id"], batch_id]
