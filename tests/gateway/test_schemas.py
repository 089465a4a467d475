import pytest
from pydantic import ValidationError

from services.gateway.schemas import (
    GenerateParams,
    ProductPhotoParams,
    RemoveBackgroundParams,
    RemoveObjectParams,
    ReplaceBackgroundParams,
    RestoreFaceParams,
    SegmindProductPhotoParams,
    UpscaleParams,
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
    assert (
        ProductPhotoParams.model_validate({"aspect_ratio": "8:5 (Cinematic View)"}).aspect_ratio
        == "8:5"
    )


def test_contradictions_are_rejected_not_rewritten() -> None:
    with pytest.raises(ValidationError):
        ProductPhotoParams.model_validate({"preset": "custom"})
    with pytest.raises(ValidationError):
        RemoveBackgroundParams.model_validate({"output_format": "jpeg"})
    assert (
        RemoveBackgroundParams.model_validate(
            {"output_format": "jpeg", "bg_color": "#ffffff"}
        ).bg_color
        == "#ffffff"
    )
    with pytest.raises(ValidationError):
        RemoveBackgroundParams.model_validate({"bg_color": "white"})
    with pytest.raises(ValidationError):
        ReplaceBackgroundParams.model_validate({})
    with pytest.raises(ValidationError):
        ReplaceBackgroundParams.model_validate({"prompt": "a", "scene_prompt": "b"})
    assert ReplaceBackgroundParams.model_validate({"scene_prompt": "marble"}).prompt == "marble"


def test_cross_field_errors_name_a_field() -> None:
    from services.gateway.submit import validation_error

    cases = [
        (ProductPhotoParams, {"preset": "custom"}, "background_prompt"),
        (ProductPhotoParams, {"lighting": "true"}, "lighting"),
        (RemoveBackgroundParams, {"output_format": "jpeg"}, "output_format"),
        (RemoveBackgroundParams, {"mask_only": "1", "bg_color": "#000000"}, "bg_color"),
        (ReplaceBackgroundParams, {}, "prompt"),
        (RemoveObjectParams, {}, "mask"),
    ]
    for cls, fields, field in cases:
        with pytest.raises(ValidationError) as err:
            cls.model_validate(fields, context={"has_mask": False})
        assert validation_error(err.value).field == field, (cls, fields)


@pytest.mark.parametrize(
    ("cls", "fields", "field"),
    [
        (GenerateParams, {}, "prompt"),
        (GenerateParams, {"prompt": "x", "width": "1004"}, "width"),  # not a multiple of 8
        (GenerateParams, {"prompt": "x", "height": "2048"}, "height"),
        (GenerateParams, {"prompt": "x", "model": "dalle"}, "model"),
        (GenerateParams, {"prompt": "x", "guidance_scale": "NaN"}, "guidance_scale"),
        (UpscaleParams, {"scale": "3"}, "scale"),
        (UpscaleParams, {"scale": "four"}, "scale"),
        (RestoreFaceParams, {"fidelity": "1.5"}, "fidelity"),
        (ProductPhotoParams, {"x": "inf"}, "x"),
        (ProductPhotoParams, {"seed": str(2**40)}, "seed"),
    ],
)
def test_new_operations_ranges(cls: type, fields: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        cls.model_validate(fields)
    assert err.value.errors()[0]["loc"][0] == field


def test_new_operations_defaults() -> None:
    g = GenerateParams.model_validate({"prompt": "a lamp", "width": "768"})
    assert (g.model, g.width, g.height) == ("sdxl", 768, 1024)
    assert UpscaleParams.model_validate({}).scale == 4
    assert UpscaleParams.model_validate({"scale": "2"}).scale == 2
    assert RestoreFaceParams.model_validate({}).fidelity == 0.5
    assert RemoveObjectParams.model_validate({}, context={"has_mask": True}).prompt is None
    assert RemoveObjectParams.model_validate({"prompt": "the cup"}).prompt == "the cup"


def test_segmind_fields_map_onto_product_photo() -> None:
    segmind = SegmindProductPhotoParams.model_validate(
        {
            "prompt": "white marble",
            "lighting_prompt": "soft daylight",
            "negative_prompt": "blur",
            "megapixel": "1.0",
            "aspect_ratio": "8:5 (Cinematic View)",
            "x_value": 50,
            "y_value": 65,
            "scale": 0.7,
            "steps": 10,
            "guidance_scale": 2,
            "seed": -1,
            "detailer_mode": "soft_light",
            "lighting": False,
            "detailtransfer": True,
            "image_format": "png",
            "image_quality": 90,
        }
    )
    native = ProductPhotoParams.model_validate(segmind.native_fields())
    assert native.preset == "custom" and native.background_prompt == "white marble"
    assert (native.x, native.y, native.scale) == (50, 65, 0.7)
    assert native.aspect_ratio == "8:5" and native.megapixel == 1.0
    assert native.output_format == "png" and native.detail_transfer is True
    assert native.seed is None  # -1 means "random"
    assert native.lighting_prompt == "soft daylight"
    assert (
        ProductPhotoParams.model_validate(
            SegmindProductPhotoParams.model_validate({}).native_fields()
        ).preset
        == "white-studio"
    )
    with pytest.raises(ValidationError):
        SegmindProductPhotoParams.model_validate({"x": 50})  # native names are not Segmind's
