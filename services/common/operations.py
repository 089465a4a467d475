"""The operations Lightbox offers: price, stages, typical time and the models
each needs. The price table is configuration: LIGHTBOX_PRICES='{"upscale": 10}'
overrides entries; GET /v1/models shows the table in force."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Operation:
    name: str
    credits: float
    pipeline: tuple[str, ...]
    estimated_seconds: int
    description: str
    takes_image: bool = True


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "product-photo",
            7.0,
            ("remove-background", "replace-background", "add-shadow"),
            3,
            "Matte the product, draw a new background, add a shadow and compose.",
        ),
        Operation(
            "remove-background",
            2.0,
            ("remove-background",),
            2,
            "Transparent cut-out of the subject.",
        ),
        Operation(
            "replace-background",
            5.0,
            ("remove-background", "replace-background"),
            3,
            "Same subject, new scene; the subject's pixels untouched.",
        ),
        Operation("generate", 3.0, ("generate",), 20, "Text to image.", takes_image=False),
        Operation("upscale", 20.0, ("upscale",), 4, "2x or 4x super-resolution."),
        Operation("restore-face", 3.0, ("restore-face",), 4, "Restore faces."),
        Operation("remove-object", 5.0, ("remove-object",), 4, "Erase and fill."),
    )
}


def load_operations() -> dict[str, Operation]:
    """OPERATIONS with LIGHTBOX_PRICES applied; unknown names are refused."""
    raw = os.environ.get("LIGHTBOX_PRICES", "").strip()
    if not raw:
        return dict(OPERATIONS)
    prices = json.loads(raw)
    unknown = set(prices) - set(OPERATIONS)
    if unknown:
        raise ValueError(f"LIGHTBOX_PRICES names unknown operations: {sorted(unknown)}")
    table = dict(OPERATIONS)
    for name, credits in prices.items():
        table[name] = replace(table[name], credits=float(credits))
    return table
