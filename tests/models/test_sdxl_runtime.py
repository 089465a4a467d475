"""The SDXL pipeline model's building blocks against the libraries they replace inside
Triton: the CLIP tokenizer against transformers, the seeded normals against torch,
the samplers against diffusers' schedulers; and the typed parameter table and request
checks. No Triton here (test_sdxl_triton.py serves the whole thing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from services.models.pybackend import clip_tokenizer, schedulers, torch_rng
from services.models.sdxl.reference import diffusers_scheduler, pipeline_module
from tests.models.sdxl_fixtures import sdxl_checkpoints  # noqa: F401

sp = pipeline_module()

PROMPTS = [
    "a photo of a perfume bottle on a marble table!",
    "",
    "  A  PHOTO\tof\n\nthe Bottle's label, 1234 apples -- it's 3.5 cm",
    "naïve café über straße ÇA Ⅻ ½ ١٢٣ 日本語のテキスト 😀",
    "don't we'll they're I'M",
    "<|startoftext|>hello<|endoftext|> world",
    "x" * 300,
    " ".join(["marble"] * 100),
    "a\x1cb\u00a0c\u3000d\u2028e",
    "$$$!!!???...,,, hi!there! !",
    "ﬁne ligature Ａｂｃ",
]


@pytest.mark.parametrize("folder", ["tokenizer", "tokenizer_2"])
def test_tokenizer_matches_transformers(folder: str, sdxl_checkpoints: dict[str, Path]) -> None:  # noqa: F811
    from services.models.sdxl.tiny import load_tokenizer

    path = sdxl_checkpoints["base"] / folder
    reference = load_tokenizer(path)
    ours = clip_tokenizer.ClipTokenizer.from_dir(path)
    ids = ours(PROMPTS)
    assert ids.shape == (len(PROMPTS), 77) and ids.dtype == np.int32
    for row, prompt in zip(ids, PROMPTS, strict=True):
        expected = reference(prompt, padding="max_length", max_length=77, truncation=True)
        assert row.tolist() == expected.input_ids, prompt
    # The second tokenizer pads with "!" like SDXL's; the first with the end token.
    assert ids[1, -1] == (ours.vocab["!"] if folder == "tokenizer_2" else ours.eos_id)


@pytest.mark.parametrize("seed", [0, 42, 2**32 + 5, 2**62 + 17])
def test_normals_match_torch(seed: int) -> None:
    generator = torch.Generator("cpu").manual_seed(seed)
    ours = torch_rng.TorchCpuGenerator(seed)
    # Several draws in a row, sizes with and without a partial block of 16.
    for shape in [(1, 4, 8, 12), (1, 4, 9, 13), (1, 3, 5, 7), (16,), (2, 4, 64, 64)]:
        expected = torch.randn(shape, generator=generator).numpy()
        got = ours.randn(shape)
        assert got.dtype == np.float32 and got.shape == shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=5e-6)


def test_normals_refuse_tiny_draws() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        torch_rng.TorchCpuGenerator(0).randn((3, 5))


def _base_config(checkpoints: dict[str, Path]) -> dict[str, Any]:
    return json.loads((checkpoints["base"] / "scheduler" / "scheduler_config.json").read_text())


CONFIG_VARIANTS = {
    "sdxl": {},
    "trailing": {"timestep_spacing": "trailing"},
    "linspace": {"timestep_spacing": "linspace", "steps_offset": 0},
    "v_prediction": {"prediction_type": "v_prediction"},
    "linear_betas": {"beta_schedule": "linear"},
}


@pytest.mark.parametrize("variant", sorted(CONFIG_VARIANTS))
@pytest.mark.parametrize("name", schedulers.SCHEDULERS)
def test_scheduler_matches_diffusers(
    name: str,
    variant: str,
    sdxl_checkpoints: dict[str, Path],  # noqa: F811
) -> None:
    base = {**_base_config(sdxl_checkpoints), **CONFIG_VARIANTS[variant]}
    config = schedulers.parse_scheduler_config(base)
    for steps in (1, 2, 4, 7, 30):
        reference = diffusers_scheduler(name, base)
        reference.set_timesteps(steps)
        ours = schedulers.make_scheduler(name, config, steps)
        ref_t = reference.timesteps.numpy()
        assert ours.timesteps.dtype == ref_t.dtype
        np.testing.assert_array_equal(ours.timesteps, ref_t)
        np.testing.assert_allclose(ours.sigmas, reference.sigmas.numpy(), rtol=3e-7, atol=0)
        assert float(ours.init_noise_sigma) == pytest.approx(float(reference.init_noise_sigma))
        # A whole loop on random "model outputs", with the scheduler's own noise.
        reference.set_begin_index(0)
        torch_gen = torch.Generator().manual_seed(5)
        our_gen = torch_rng.TorchCpuGenerator(5)
        sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(9))
        sample = sample * reference.init_noise_sigma
        ours_sample = sample.numpy().copy()
        for index, t in enumerate(reference.timesteps):
            eps = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(100 + index))
            # float32 rounding differences grow with the magnitude of the state.
            tolerance = 2e-5 * max(1.0, float(sample.abs().max()))
            scaled = reference.scale_model_input(sample, t)
            np.testing.assert_allclose(
                ours.scale_model_input(ours_sample, index), scaled.numpy(), rtol=0, atol=tolerance
            )
            sample = reference.step(eps, t, sample, generator=torch_gen).prev_sample
            ours_sample = ours.step(eps.numpy(), index, ours_sample, our_gen.randn)
            tolerance = 2e-5 * max(1.0, float(sample.abs().max()))
            np.testing.assert_allclose(ours_sample, sample.numpy(), rtol=0, atol=tolerance)


@pytest.mark.parametrize("name", schedulers.SCHEDULERS)
def test_add_noise_matches_diffusers(name: str, sdxl_checkpoints: dict[str, Path]) -> None:  # noqa: F811
    base = _base_config(sdxl_checkpoints)
    reference = diffusers_scheduler(name, base)
    reference.set_timesteps(10)
    start = schedulers.strength_start(10, 0.6)
    reference.set_begin_index(start)
    ours = schedulers.make_scheduler(name, schedulers.parse_scheduler_config(base), 10)
    original = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    expected = reference.add_noise(original, noise, reference.timesteps[start : start + 1])
    got = ours.add_noise(original.numpy(), noise.numpy(), start)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
        ({"beta_schedule": "squaredcos_cap_v2"}, "beta_schedule"),
        ({"prediction_type": "sample"}, "prediction_type"),
        ({"timestep_type": "continuous"}, "timestep_type"),
        ({"use_exponential_sigmas": True}, "use_exponential_sigmas"),
    ],
)
def test_scheduler_config_refuses_what_it_does_not_implement(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(schedulers.SchedulerConfigError, match=message):
        schedulers.parse_scheduler_config(raw)


def test_scheduler_config_ignores_other_classes_keys() -> None:
    config = schedulers.parse_scheduler_config(
        {"_class_name": "EulerDiscreteScheduler", "solver_order": 3, "timestep_spacing": "leading"}
    )
    assert config.timestep_spacing == "leading"


def test_params_parse_from_strings() -> None:
    params = sp.parse_params({"mode": "inpaint", "max_steps": "50", "default_guidance_scale": "0"})
    assert params.mode == "inpaint" and params.max_steps == 50
    assert params.default_guidance_scale == 0.0


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"max_stpes": "10"}, "unknown pipeline parameters"),
        ({"max_steps": "ten"}, "not a int"),
        ({"mode": "img2vid"}, "mode"),
        ({"default_scheduler": "ddim"}, "default_scheduler"),
        ({"min_side": "512", "max_side": "256"}, "exceeds max_side"),
        ({"default_steps": "200"}, "default_steps"),
        ({"default_strength": "0"}, "default_strength"),
    ],
)
def test_params_reject_bad_tables(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sp.parse_params(raw)


def _settle(params: Any, **kwargs: Any) -> Any:
    request = sp.GenerationRequest(**{"prompt": "a bottle", **kwargs})
    return sp.settle(request, params, 8, lambda: 77)


def test_settle_applies_defaults() -> None:
    params = sp.PipelineParams(default_steps=12, default_scheduler="euler_a")
    settled = _settle(params, width=96, height=64)
    assert (settled.steps, settled.scheduler, settled.seed) == (12, "euler_a", 77)
    assert settled.guidance_scale == params.default_guidance_scale
    assert settled.negative_prompt is None


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"width": 100, "height": 64}, "WIDTH"),
        ({"width": 96, "height": 32}, "HEIGHT"),
        ({"width": 96}, "HEIGHT"),
        ({"width": 2048, "height": 2048}, "WIDTH"),
        ({"width": 96, "height": 64, "steps": 0}, "STEPS"),
        ({"width": 96, "height": 64, "guidance_scale": float("nan")}, "GUIDANCE_SCALE"),
        ({"width": 96, "height": 64, "scheduler": "ddim"}, "SCHEDULER"),
        ({"width": 96, "height": 64, "seed": -1}, "SEED"),
        ({"width": 96, "height": 64, "negative_prompt": "x" * 5000}, "NEGATIVE_PROMPT"),
        (
            {"image": np.zeros((64, 96, 3), np.uint8), "mask": np.zeros((64, 96), np.uint8)},
            "INIT_IMAGE",
        ),
    ],
)
def test_settle_names_the_bad_input(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(sp.RequestError) as caught:
        _settle(sp.PipelineParams(), **kwargs)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({}, "INIT_IMAGE"),
        ({"image": np.zeros((64, 96, 3), np.uint8)}, "MASK"),
        ({"image": np.zeros((64, 96, 3), np.uint8), "mask": np.zeros((64, 95), np.uint8)}, "MASK"),
        (
            {"image": np.zeros((64, 90, 3), np.uint8), "mask": np.zeros((64, 90), np.uint8)},
            "INIT_IMAGE",
        ),
        (
            {
                "image": np.zeros((64, 96, 3), np.uint8),
                "mask": np.zeros((64, 96), np.uint8),
                "strength": 0.1,
                "steps": 4,
            },
            "STRENGTH",
        ),
        (
            {
                "image": np.zeros((64, 96, 3), np.uint8),
                "mask": np.zeros((64, 96), np.uint8),
                "width": 64,
            },
            "WIDTH",
        ),
    ],
)
def test_settle_inpaint_checks(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(sp.RequestError) as caught:
        _settle(sp.PipelineParams(mode="inpaint"), **kwargs)
    assert caught.value.field == field


def test_nearest_resize_matches_torch() -> None:
    mask = (np.random.default_rng(0).random((1, 1, 72, 104)) > 0.5).astype(np.float32)
    for size in [(9, 13), (8, 12), (72, 104), (5, 7)]:
        expected = torch.nn.functional.interpolate(torch.from_numpy(mask), size=size).numpy()
        np.testing.assert_array_equal(sp._nearest_resize(mask, *size), expected)
