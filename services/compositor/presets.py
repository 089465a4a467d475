"""The table of backgrounds the compositor can draw, and `draw_background`,
which renders a resolved `Background` at a canvas size.

Presets without colours are fixed looks ("white-studio", "marble"); the
parametric ones ("solid", "gradient", "radial-gradient") take their colours from
the prompt (see `prompts.py`); "studio-sweep" and "paper" take an optional one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from services.common.errors import InvalidParameter
from services.compositor import backgrounds, scenes
from services.compositor.colors import RGB, lighten, to_hex

WHITE: RGB = (255, 255, 255)
LIGHT_GREY: RGB = (222, 222, 222)
SWEEP_GREY: RGB = (246, 246, 244)
DARK_STUDIO: RGB = (88, 88, 94)


@dataclass(frozen=True)
class Background:
    """A background resolved to something drawable: a preset and its colours."""

    preset: str
    colors: tuple[RGB, ...] = ()
    # Direction of travel of linear gradients: 90 = top to bottom, 0 = left to right.
    angle: float = 90.0

    @property
    def engine(self) -> str:
        """What drew it, for the job's `engines` ("solid:#ffffff", "procedural:marble")."""
        if self.preset in ("white-studio", "solid"):
            return "solid:" + to_hex(self.colors[0] if self.colors else WHITE)
        return "procedural:" + self.preset

    @property
    def description(self) -> str:
        hexes = [to_hex(c) for c in self.colors]
        if self.preset == "solid":
            return f"solid {hexes[0]}"
        if self.preset in ("gradient", "radial-gradient"):
            start, end = (to_hex(c) for c in _two(self.colors))
            kind = "linear" if self.preset == "gradient" else "radial"
            return f"{kind} gradient {start} -> {end}"
        if hexes:
            return f"{PRESETS[self.preset].description} ({', '.join(hexes)})"
        return PRESETS[self.preset].description


Drawer = Callable[[int, int, Background, int], np.ndarray]


@dataclass(frozen=True)
class Preset:
    description: str
    draw: Drawer
    # How many prompt colours it takes: (fewest, most).
    colors: tuple[int, int] = (0, 0)


def _white(w: int, h: int, bg: Background, seed: int) -> np.ndarray:
    return backgrounds.solid(w, h, WHITE)


def _gradient_light(w: int, h: int, bg: Background, seed: int) -> np.ndarray:
    return backgrounds.linear_gradient(w, h, WHITE, LIGHT_GREY, 90.0)


def _solid(w: int, h: int, bg: Background, seed: int) -> np.ndarray:
    return backgrounds.solid(w, h, bg.colors[0])


def _two(colors: tuple[RGB, ...]) -> tuple[RGB, RGB]:
    # One colour means a gentle ramp from a light tint of it down to the colour.
    if len(colors) == 1:
        return lighten(colors[0], 0.45), colors[0]
    return colors[0], colors[1]


def _gradient(w: int, h: int, bg: Background, seed: int) -> np.ndarray:
    start, end = _two(bg.colors)
    return backgrounds.linear_gradient(w, h, start, end, bg.angle)


def _radial(w: int, h: int, bg: Background, seed: int) -> np.ndarray:
    inner, outer = _two(bg.colors)
    return backgrounds.radial_gradient(w, h, inner, outer)


def _sweep(w: int, h: int, bg: Background, seed: int) -> np.ndarray:
    return backgrounds.studio_sweep(w, h, bg.colors[0] if bg.colors else SWEEP_GREY)


def _dark(w: int, h: int, bg: Background, seed: int) -> np.ndarray:
    return backgrounds.studio_sweep(
        w,
        h,
        bg.colors[0] if bg.colors else DARK_STUDIO,
        wall_top=0.45,
        floor_near=0.7,
        hotspot=0.55,
        vignette=0.45,
    )


# Scenes are drawn at least this large and shrunk: their finest features (marble
# hairlines, wood fibres) would alias into scribbles if drawn small directly.
MIN_SCENE_SIDE = 1024


def _at_least(w: int, h: int, draw: Callable[[int, int], np.ndarray]) -> np.ndarray:
    up = MIN_SCENE_SIDE / max(w, h)
    if up <= 1:
        return draw(w, h)
    big = draw(max(1, round(w * up)), max(1, round(h * up)))
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)


def _scene(draw: Callable[[int, int, int], np.ndarray]) -> Drawer:
    return lambda w, h, bg, seed: _at_least(w, h, lambda sw, sh: draw(sw, sh, seed))


def _paper(w: int, h: int, bg: Background, seed: int) -> np.ndarray:
    return scenes.draw_paper(w, h, seed, bg.colors[0] if bg.colors else None)


PRESETS: dict[str, Preset] = {
    "white-studio": Preset("pure white #ffffff; the shadow is the only non-white pixel", _white),
    "gradient-light": Preset("white fading to light grey, top to bottom", _gradient_light),
    "studio-sweep": Preset(
        "seamless paper sweep: soft floor-to-wall falloff and vignette (colour optional)",
        _sweep,
        (0, 1),
    ),
    "dark-studio": Preset("charcoal sweep with a soft spotlight behind the product", _dark, (0, 1)),
    "solid": Preset("one flat colour from the prompt ('#1f2a44', 'navy blue')", _solid, (1, 1)),
    "gradient": Preset(
        "linear gradient between two prompt colours ('peach to lilac gradient')", _gradient, (1, 2)
    ),
    "radial-gradient": Preset(
        "radial gradient from the centre outwards ('radial white to grey')", _radial, (1, 2)
    ),
    "marble": Preset(
        "veined white marble table top, shallow depth of field", _scene(scenes.draw_marble)
    ),
    "wood": Preset(
        "wooden table top of long planks (oak, walnut, ash or teak by seed)",
        _scene(scenes.draw_wood),
    ),
    "concrete": Preset(
        "smooth poured concrete with mottling and pores", _scene(scenes.draw_concrete)
    ),
    "paper": Preset(
        "pastel seamless paper backdrop (colour optional, else by seed)", _paper, (0, 1)
    ),
    "outdoor": Preset(
        "outdoors: sunlit foliage bokeh above a stone ledge", _scene(scenes.draw_outdoor)
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; InvalidParameter naming `background.preset` if none."""
    preset = PRESETS.get(name)
    if preset is None:
        raise InvalidParameter(
            "background.preset",
            f"unknown preset {name!r}; ListPresets names the {len(PRESETS)} presets",
        )
    return preset


def preset_background(name: str, colors: tuple[RGB, ...] = (), angle: float = 90.0) -> Background:
    """A Background for a preset name, checking the colour count it takes."""
    preset = get_preset(name)
    fewest, most = preset.colors
    if not fewest <= len(colors) <= most:
        raise InvalidParameter(
            "background.prompt",
            f"preset {name!r} takes {fewest}..{most} colours, the prompt gave {len(colors)}",
        )
    return Background(name, tuple(colors), angle)


def draw_background(background: Background, width: int, height: int, seed: int) -> np.ndarray:
    """Render `background` as RGB uint8 (height, width, 3); same seed, same pixels."""
    return PRESETS[background.preset].draw(width, height, background, seed)
