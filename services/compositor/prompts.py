"""Background prompt -> something the compositor can draw, or a clear "needs a
generative model".

The rule is strict on purpose: every word of the prompt must be understood
(a colour, a scene keyword, a gradient/studio word, or harmless filler such as
"background" or "soft"). A prompt with anything else in it ("marble bathroom with
candles") needs a diffusion model, and is never quietly drawn as a different
scene."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.common.errors import InvalidParameter
from services.compositor.colors import RGB, find_colours, luminance, parse_hex
from services.compositor.presets import PRESETS, Background, get_preset, preset_background

FILLER = frozenset(
    """a an the on in with and of at for by from to onto against
    background backgrounds backdrop bg wall floor surface table tabletop top countertop counter
    plain simple clean minimal minimalist solid flat pure colour color coloured colored
    soft smooth subtle gentle light lit lighting professional product products photo
    photography photograph shot image picture commercial ecommerce catalog catalogue
    studio seamless texture textured style styled setting scene premium elegant luxury
    modern classic nice beautiful tone toned shade shaded polished matte glossy honed
    warm cool natural rustic real realistic high quality hd""".split()
)

# Scene keyword -> preset. The colour test says which colours the drawn scene can
# honestly stand for ("white marble" yes, "black marble" no).
SCENE_WORDS: dict[str, str] = {
    "marble": "marble",
    "marbled": "marble",
    "carrara": "marble",
    "wood": "wood",
    "wooden": "wood",
    "oak": "wood",
    "walnut": "wood",
    "timber": "wood",
    "plank": "wood",
    "planks": "wood",
    "concrete": "concrete",
    "cement": "concrete",
    "paper": "paper",
    "pastel": "paper",
    "outdoor": "outdoor",
    "outdoors": "outdoor",
    "outside": "outdoor",
    "garden": "outdoor",
    "nature": "outdoor",
    "bokeh": "outdoor",
    "park": "outdoor",
    "greenery": "outdoor",
    "foliage": "outdoor",
    "leaves": "outdoor",
    "sunlight": "outdoor",
    "sunny": "outdoor",
}
GRADIENT_WORDS = frozenset(
    {
        "gradient",
        "ombre",
        "fade",
        "fading",
        "radial",
        "horizontal",
        "vertical",
        "diagonal",
        "left",
        "right",
        "bottom",
    }
)
STUDIO_WORDS = frozenset({"studio", "sweep", "infinity", "cyclorama", "cyc"})
DARK_WORDS = frozenset({"dark", "moody", "low-key", "lowkey"})


def _saturation(c: RGB) -> float:
    hi, lo = max(c), min(c)
    return 0.0 if hi == 0 else (hi - lo) / hi


def _scene_accepts(scene: str, c: RGB) -> bool:
    """Whether a prompt colour describes the scene we draw (not a different one)."""
    if scene == "paper":
        return True
    if scene in ("marble", "concrete"):
        return _saturation(c) < 0.15 and luminance(c) >= (150 if scene == "marble" else 60)
    if scene == "wood":
        r, g, b = c
        return r >= g >= b and _saturation(c) > 0.2
    if scene == "outdoor":
        r, g, b = c
        return g >= r and g >= b
    return False


@dataclass(frozen=True)
class Resolution:
    """What a (preset, prompt) pair resolves to. `background` is None when it
    needs a generative model."""

    drawable: bool
    preset: str
    description: str
    background: Background | None = None


def _drawable(bg: Background) -> Resolution:
    return Resolution(True, bg.preset, bg.description, bg)


def _generative(prompt: str, why: str) -> Resolution:
    return Resolution(False, "generative", f"needs a text-to-image model ({why}): {prompt!r}")


def _words(prompt: str) -> list[str]:
    return re.findall(r"#[0-9a-f]{6}\b|#[0-9a-f]{3}\b|[a-z]+(?:-key)?", prompt.lower())


def resolve_prompt(prompt: str) -> Resolution:
    """Free-text background prompt -> Resolution (see module docstring)."""
    hex_colour = parse_hex(prompt)
    if hex_colour is not None:
        return _drawable(Background("solid", (hex_colour,)))
    words = _words(prompt)
    if not words:
        return _generative(prompt, "nothing drawable named")
    spans = find_colours(words)
    colours = tuple(rgb for _, _, rgb in spans)
    used = set()
    for start, end, _ in spans:
        used.update(range(start, end))
    rest = [w for i, w in enumerate(words) if i not in used]
    scenes = {SCENE_WORDS[w] for w in rest if w in SCENE_WORDS}
    if any(words[s] == "pastel" for s, _, _ in spans):
        scenes.add("paper")
    unknown = [
        w
        for w in rest
        if w not in FILLER
        and w not in SCENE_WORDS
        and w not in GRADIENT_WORDS
        and w not in STUDIO_WORDS
        and w not in DARK_WORDS
    ]
    if unknown:
        return _generative(prompt, "unknown words " + ", ".join(repr(w) for w in unknown[:5]))
    has = set(rest)

    if scenes:
        if len(scenes) > 1:
            return _generative(prompt, "mixes scenes " + " and ".join(sorted(scenes)))
        scene = scenes.pop()
        if scene not in PRESETS:
            return _generative(prompt, f"no procedural {scene} here")
        if len(colours) > 1 or has & GRADIENT_WORDS:
            return _generative(prompt, f"a {scene} scene with colours or gradients")
        if colours and not _scene_accepts(scene, colours[0]):
            return _generative(prompt, f"the {scene} drawn here is not that colour")
        keep = colours if scene == "paper" else ()
        return _drawable(preset_background(scene, keep))

    if has & GRADIENT_WORDS:
        if len(colours) > 2:
            return _generative(prompt, "gradients of more than two colours")
        if not colours:
            return _drawable(Background("gradient-light"))
        name = "radial-gradient" if "radial" in has else "gradient"
        angle = 90.0
        if has & {"horizontal", "left", "right"}:
            angle = 0.0
        elif "diagonal" in has:
            angle = 45.0
        return _drawable(preset_background(name, colours, angle))

    if has & STUDIO_WORDS:
        if len(colours) > 1:
            return _generative(prompt, "a studio in several colours")
        dark = bool(has & DARK_WORDS) or (colours and luminance(colours[0]) < 60)
        if colours and colours[0] == (255, 255, 255):
            return _drawable(Background("white-studio"))
        if dark:
            return _drawable(
                preset_background(
                    "dark-studio", colours[:1] if colours and luminance(colours[0]) >= 60 else ()
                )
            )
        return _drawable(preset_background("studio-sweep", colours))

    if len(colours) == 1:
        if colours[0] == (255, 255, 255):
            return _drawable(Background("white-studio"))
        return _drawable(Background("solid", colours))
    if len(colours) > 1:
        return _generative(prompt, "several colours without a gradient")
    if has & DARK_WORDS:
        return _drawable(Background("dark-studio"))
    return _generative(prompt, "no colour or scene named")


def resolve(preset: str, prompt: str) -> Resolution:
    """(BackgroundSpec.preset, BackgroundSpec.prompt) -> Resolution.

    Empty preset (or "custom") means: resolve the prompt; both empty means the
    default "white-studio". A preset with a prompt must agree with it: the prompt
    may only add the colours a preset takes ("studio-sweep" + "navy")."""
    preset = preset.strip().lower()
    prompt = prompt.strip()
    if preset in ("", "custom"):
        if not prompt:
            if preset == "custom":
                raise InvalidParameter("background.prompt", "preset 'custom' needs a prompt")
            return _drawable(Background("white-studio"))
        return resolve_prompt(prompt)
    if not prompt:
        return _drawable(preset_background(preset))
    takes_colours = get_preset(preset).colors[1] > 0
    resolved = resolve_prompt(prompt)
    if resolved.background is not None:
        bg = resolved.background
        if bg.preset == preset:
            return resolved
        if bg.preset in ("solid", "white-studio", "gradient") and takes_colours:
            colours = bg.colors or ((255, 255, 255),)
            return _drawable(preset_background(preset, colours, bg.angle))
    raise InvalidParameter(
        "background.prompt",
        f"prompt {prompt!r} ({resolved.description}) does not fit preset {preset!r}; "
        "send the preset alone, or preset 'custom' with the prompt",
    )
