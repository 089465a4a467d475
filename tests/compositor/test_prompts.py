"""Prompt -> background resolution: drawable prompts resolve to the right preset
and colours; anything needing a generative model says so."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidParameter
from services.compositor.prompts import resolve, resolve_prompt

DRAWABLE = [
    ("#1F2A44", "solid", ((31, 42, 68),)),
    ("  #fff ", "solid", ((255, 255, 255),)),
    ("white background", "white-studio", ()),
    ("clean white studio", "white-studio", ()),
    ("pure white", "white-studio", ()),
    ("gradient", "gradient-light", ()),
    ("soft light gradient background", "gradient-light", ()),
    ("navy blue backdrop", "solid", ((0, 0, 128),)),
    ("light grey background", "solid", ((211, 211, 211),)),
    ("peach to lilac gradient", "gradient", ((255, 214, 186), (214, 196, 230))),
    ("gradient from #ffffff to #cccccc", "gradient", ((255, 255, 255), (204, 204, 204))),
    ("radial white to grey", "radial-gradient", ((255, 255, 255), (128, 128, 128))),
    ("teal gradient", "gradient", ((0, 128, 128),)),
    ("studio", "studio-sweep", ()),
    ("seamless beige studio sweep", "studio-sweep", ((245, 245, 220),)),
    ("dark studio", "dark-studio", ()),
    ("moody black studio", "dark-studio", ()),
    ("white marble table", "marble", ()),
    ("marble", "marble", ()),
    ("rustic wooden table top", "wood", ()),
    ("oak", "wood", ()),
    ("polished concrete floor", "concrete", ()),
    ("pastel pink backdrop", "paper", ((248, 200, 212),)),
    ("mint paper", "paper", ((189, 236, 214),)),
    ("outdoor garden bokeh", "outdoor", ()),
    ("natural sunlight outdoors", "outdoor", ()),
]


@pytest.mark.parametrize(("prompt", "preset", "colours"), DRAWABLE, ids=[p for p, _, _ in DRAWABLE])
def test_drawable_prompts(prompt: str, preset: str, colours: tuple) -> None:
    r = resolve_prompt(prompt)
    assert r.drawable and r.background is not None
    assert r.preset == preset == r.background.preset
    assert r.background.colors == colours
    assert r.description


NEEDS_MODEL = [
    "a beach at sunset",
    "luxury marble bathroom with candles",
    "black marble",
    "neon city street at night",
    "red and blue background",
    "marble and wood",
    "kitchen counter with plants",
    "",
]


@pytest.mark.parametrize("prompt", NEEDS_MODEL)
def test_prompts_that_need_a_model(prompt: str) -> None:
    r = resolve_prompt(prompt)
    assert not r.drawable and r.background is None
    assert r.preset == "generative" and "text-to-image" in r.description


def test_presets_and_prompts_together() -> None:
    assert resolve("", "").preset == "white-studio"
    assert resolve("marble", "").preset == "marble"
    assert resolve("marble", "white marble").preset == "marble"
    sweep = resolve("studio-sweep", "navy")
    assert sweep.preset == "studio-sweep" and sweep.background.colors == ((0, 0, 128),)
    assert resolve("custom", "#abcdef").background.colors == ((171, 205, 239),)
    assert not resolve("custom", "a beach").drawable


@pytest.mark.parametrize(
    ("preset", "prompt", "field"),
    [
        ("velvet", "", "background.preset"),
        ("velvet", "white", "background.preset"),
        ("custom", "", "background.prompt"),
        ("white-studio", "#ff0000", "background.prompt"),
        ("marble", "a beach", "background.prompt"),
        ("solid", "", "background.prompt"),
    ],
)
def test_contradictions_are_refused(preset: str, prompt: str, field: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        resolve(preset, prompt)
    assert info.value.field == field
