"""Colour values: `#RRGGBB` parsing, CSS colour names and the everyday colour
phrases people type into prompts ("navy blue", "sage green").

A colour is an `RGB` tuple of three ints 0..255."""

from __future__ import annotations

import re

from PIL import ImageColor

RGB = tuple[int, int, int]

_HEX = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
_HEX_WHOLE = re.compile(r"\s*" + _HEX.pattern + r"\s*")

# Phrases that are not CSS names but are common in product-photo prompts. Two-word
# CSS names ("light grey" -> lightgrey) are found by joining words instead.
EXTRA_COLOURS: dict[str, RGB] = {
    "navy blue": (0, 0, 128),
    "baby blue": (137, 207, 240),
    "royal blue": (65, 105, 225),
    "sky": (135, 206, 235),
    "sage": (178, 190, 158),
    "sage green": (178, 190, 158),
    "mint": (189, 236, 214),
    "mint green": (189, 236, 214),
    "forest green": (34, 139, 34),
    "olive green": (128, 128, 0),
    "emerald": (46, 139, 87),
    "blush": (245, 208, 208),
    "blush pink": (245, 208, 208),
    "dusty pink": (214, 166, 166),
    "pastel pink": (248, 200, 212),
    "pastel blue": (190, 214, 238),
    "pastel green": (196, 232, 200),
    "pastel yellow": (253, 240, 180),
    "pastel purple": (216, 196, 234),
    "lilac": (214, 196, 230),
    "peach": (255, 214, 186),
    "cream": (250, 244, 228),
    "off white": (248, 246, 240),
    "off-white": (248, 246, 240),
    "charcoal": (54, 57, 62),
    "sand": (226, 206, 170),
    "terracotta": (204, 110, 80),
    "burgundy": (128, 0, 32),
    "mustard": (225, 173, 1),
    "champagne": (247, 231, 206),
}

_CSS: dict[str, str] = dict(ImageColor.colormap)  # type: ignore[arg-type]


def parse_hex(text: str) -> RGB | None:
    """`#RRGGBB` or `#RGB` (the whole string, surrounding spaces allowed) -> RGB."""
    m = _HEX_WHOLE.fullmatch(text)
    if m is None:
        return None
    return hex_to_rgb(m.group(1))


def hex_to_rgb(digits: str) -> RGB:
    """Six (or three) hex digits without '#' -> RGB."""
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def to_hex(color: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def named_colour(words: list[str]) -> RGB | None:
    """The colour named by these lower-case words ("navy", "blue") as a whole, or None."""
    phrase = " ".join(words)
    if phrase in EXTRA_COLOURS:
        return EXTRA_COLOURS[phrase]
    joined = "".join(words)
    if joined in _CSS:
        rgb = ImageColor.getrgb(_CSS[joined])
        return (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    return None


def find_colours(words: list[str]) -> list[tuple[int, int, RGB]]:
    """Colour mentions in a word list, longest phrase first at each position.

    Returns (start, end, rgb) spans, non-overlapping, left to right; `#hex`
    words are colours too."""
    spans: list[tuple[int, int, RGB]] = []
    i = 0
    while i < len(words):
        found = None
        for n in (3, 2, 1):
            if i + n > len(words):
                continue
            if n == 1 and _HEX.fullmatch(words[i]):
                found = (i, i + 1, hex_to_rgb(words[i][1:]))
                break
            rgb = named_colour(words[i : i + n])
            if rgb is not None:
                found = (i, i + n, rgb)
                break
        if found is None:
            i += 1
        else:
            spans.append(found)
            i = found[1]
    return spans


def lighten(color: RGB, amount: float) -> RGB:
    """Mix `color` towards white by `amount` (0..1)."""
    r, g, b = (round(c + (255 - c) * amount) for c in color)
    return (r, g, b)


def darken(color: RGB, amount: float) -> RGB:
    """Mix `color` towards black by `amount` (0..1)."""
    r, g, b = (round(c * (1.0 - amount)) for c in color)
    return (r, g, b)


def luminance(color: RGB) -> float:
    """Rec. 709 luma of an sRGB colour, 0..255 (gamma-encoded, good enough to rank)."""
    return 0.2126 * color[0] + 0.7152 * color[1] + 0.0722 * color[2]
