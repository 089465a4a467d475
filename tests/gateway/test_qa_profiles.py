"""Profiles carry QA thresholds and compliance presets: both are checked when the
profile is created, with the 422 naming the field (services/gateway/profiles.py)."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidParameter
from services.gateway.profiles import ProfileIn, check_profile


def _profile(**extra: object) -> ProfileIn:
    return ProfileIn.model_validate({"name": "shoe-main", "operation": "product-photo", **extra})


def test_qa_thresholds_and_compliance_are_accepted() -> None:
    check_profile(
        _profile(
            fields={"compliance": "amazon-main"},
            qa_thresholds={"max_upscale": 3, "review_shadow": False},
        )
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"qa_thresholds": {"max_halo": 0.1}}, "qa_thresholds.max_halo"),
        ({"qa_thresholds": {"min_long_side": 5}}, "qa_thresholds.min_long_side"),
        ({"fields": {"compliance": "amazon-main", "shadow_type": "soft"}}, "fields.shadow_type"),
        ({"fields": {"compliance": "ebay"}}, "fields.compliance"),
    ],
)
def test_bad_qa_settings_are_refused_naming_the_field(extra: dict, field: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        check_profile(_profile(**extra))
    assert raised.value.code == "invalid_parameter"
    assert raised.value.field == field
