import pytest
from pydantic import ValidationError

from services.gateway.schemas import (
    ProductPhotoParams,
    RemoveBackgroundParams,
    ReplaceBackgroundParams,
)


def test_form_strings_are_coerced_and_defaults_apply() -> None:
    p = ProductPhotoParams.model_validate({"scale": "0.5", "x": "10", "detail_transfer": "true"})
    assert p.scale == 0.5 and p.x == 10 and p.detail_transfer is True
    assert p.preset == "white-studio" and p.shadow_type == "soft" and p.y == 55
    assert p.job_params()["shadow_type"] == "soft"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"scale": "0"}, "scale"),
        ({"x": "101"}, "x"),
        ({"image_quality": "5"}, "image_quality"),
        ({"aspect_ratio": "0:5"}, "aspect_ratio"),
        ({"aspect_ratio": "wide"}, "aspect_ratio"),
        ({"output_size": "5000x100"}, "output_size"),
        ({"shadow_type": "purple"}, "shadow_type"),
        ({"surprise": "1"}, "surprise"),
    ],
)
def test_out_of_range_names_the_field(fields: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        ProductPhotoParams.model_validate(fields)
    assert err.value.errors()[0]["loc"][0] == field


def test_segmind_labelled_aspect_ratio() -> None:
    assert ProductPhotoParams.model_validate(
        {"aspect_ratio": "8:5 (Cinematic View)"}
    ).aspect_ratio == "8:5"


def test_contradictions_are_rejected_not_rewritten() -> None:
    with pytest.raises(ValidationError):
        ProductPhotoParams.model_validate({"preset": "custom"})
    with pytest.raises(ValidationError):
        RemoveBackgroundParams.model_validate({"output_format": "jpeg"})
    assert RemoveBackgroundParams.model_validate(
        {"output_format": "jpeg", "bg_color": "#ffffff"}
    ).bg_color == "#ffffff"
    with pytest.raises(ValidationError):
        RemoveBackgroundParams.model_validate({"bg_color": "white"})
    with pytest.raises(ValidationError):
        ReplaceBackgroundParams.model_validate({})
    with pytest.raises(ValidationError):
        ReplaceBackgroundParams.model_validate({"prompt": "a", "scene_prompt": "b"})
    assert ReplaceBackgroundParams.model_validate({"scene_prompt": "marble"}).prompt == "marble"
