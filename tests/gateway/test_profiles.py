"""Profiles in the gateway without a stack: composing a request from a profile
version (placement, locked fields, rendered templates), checking a profile
against its operation, upload ids, and the published JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import InvalidParameter, LightboxError
from services.gateway.profiles import (
    ProfileIn,
    ProfileVersion,
    check_profile,
    compose,
    json_schemas,
    parse_ref,
    parse_vars,
)
from services.gateway.schemas import ProductPhotoParams
from services.gateway.upload_ids import make_upload_id, read_upload_id

REPO = Path(__file__).resolve().parents[2]
FIELDS = set(ProductPhotoParams.model_fields)
SHOE = ProfileVersion(
    "shoe",
    3,
    {
        "operation": "product-photo",
        "fields": {"preset": "custom", "scale": 0.7, "shadow_type": "soft"},
        "locked": ["preset", "background_prompt"],
        "placements": {"square": {"aspect_ratio": "1:1", "x": 40}, "feed": {"aspect_ratio": "4:5"}},
        "prompts": {"background_prompt": "{{tone}} marble under {{ light }}"},
    },
)


def test_compose_layers_profile_placement_prompts_and_request() -> None:
    out = compose(
        SHOE,
        "product-photo",
        {"scale": "0.9", "preset": "custom"},
        "square",
        {"tone": "white", "light": "soft light"},
        FIELDS,
    )
    assert out.fields == {
        "preset": "custom",
        "scale": "0.9",
        "shadow_type": "soft",
        "aspect_ratio": "1:1",
        "x": 40,
        "background_prompt": "white marble under soft light",
    }
    assert out.recorded == {
        "profile": "shoe@3",
        "placement": "square",
        "rendered_prompts": {"background_prompt": "white marble under soft light"},
    }


@pytest.mark.parametrize(
    ("request_fields", "placement", "variables", "field", "code"),
    [
        ({"preset": "marble"}, None, {"tone": "a", "light": "b"}, "preset", "invalid_parameter"),
        ({"background_prompt": "x"}, None, {"tone": "a", "light": "b"}, "background_prompt", None),
        ({}, "banner", {"tone": "a", "light": "b"}, "placement", "unknown_placement"),
        ({}, None, {"tone": "a"}, "vars.light", "invalid_parameter"),
    ],
)
def test_compose_refuses_naming_the_field(
    request_fields: dict[str, Any],
    placement: str | None,
    variables: dict[str, str],
    field: str,
    code: str | None,
) -> None:
    with pytest.raises(LightboxError) as err:
        compose(SHOE, "product-photo", request_fields, placement, variables, FIELDS)
    assert err.value.extra["field"] == field
    assert err.value.code == (code or "invalid_parameter")
    if err.value.code == "unknown_placement":
        assert err.value.extra["placements"] == ["feed", "square"]


def test_compose_refuses_another_operation() -> None:
    with pytest.raises(InvalidParameter) as err:
        compose(SHOE, "upscale", {}, None, {"tone": "a", "light": "b"}, FIELDS)
    assert err.value.extra["field"] == "profile"


def test_refs_and_vars() -> None:
    assert parse_ref("shoe") == ("shoe", None)
    assert parse_ref("shoe@latest") == ("shoe", None)
    assert parse_ref("shoe@12") == ("shoe", 12)
    for bad in ("Shoe", "shoe@0", "shoe@x", "", "a@1@2"):
        with pytest.raises(InvalidParameter):
            parse_ref(bad)
    assert parse_vars('{"a": "x", "n": 3}') == {"a": "x", "n": "3"}
    for bad_vars in ("[1]", "{bad", {"a": True}, {"1a": "x"}, {"a": "x" * 501}):
        with pytest.raises(InvalidParameter):
            parse_vars(bad_vars)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"operation": "paint"}, "operation"),
        ({"fields": {"preset": "custom", "scale": 7}}, "fields.scale"),
        ({"fields": {"bogus": 1}}, "fields.bogus"),
        ({"fields": {"webhook_url": "https://x"}}, "fields.webhook_url"),
        ({"placements": {"sq": {"aspect_ratio": "0:1"}}}, "placements.sq.aspect_ratio"),
        ({"locked": ["shadow_type"]}, "locked"),
        ({"prompts": {"nope": "{{a}}"}}, "prompts.nope"),
    ],
)
def test_check_profile_names_the_bad_part(changes: dict[str, Any], field: str) -> None:
    body = {
        "name": "shoe",
        "operation": "product-photo",
        "fields": {"preset": "custom"},
        "prompts": {"background_prompt": "{{tone}} marble"},
    }
    body.update(changes)
    with pytest.raises(InvalidParameter) as err:
        check_profile(ProfileIn.model_validate(body))
    assert err.value.extra["field"] == field


def test_upload_ids_are_bound_to_the_account_and_expire() -> None:
    key = "uploads/20261207/" + "a" * 22 + ".png"
    upload_id = make_upload_id("secret", "acct1", key, 2_000)
    assert read_upload_id("secret", "acct1", upload_id, now=1_000) == key
    for secret, account, uid, now in [
        ("secret", "acct2", upload_id, 1_000),
        ("other", "acct1", upload_id, 1_000),
        ("secret", "acct1", upload_id, 2_001),
        ("secret", "acct1", upload_id[:-1] + "0", 1_000),
        ("secret", "acct1", "up_garbage", 1_000),
    ]:
        with pytest.raises(LightboxError) as err:
            read_upload_id(secret, account, uid, now=now)
        assert err.value.code == "upload_not_found"


def test_committed_json_schemas_are_the_published_ones() -> None:
    for name, schema in json_schemas().items():
        committed = json.loads((REPO / "docs" / "schemas" / name).read_text())
        assert committed == schema, f"docs/schemas/{name} is stale"
    assert "name" in json_schemas()["profile.json"]["required"]
