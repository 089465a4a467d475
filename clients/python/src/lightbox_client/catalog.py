"""A catalog file (CSV or JSON Lines): one row per item with `sku`, `image` (a path
relative to the catalog's folder, or an http(s) URL), `variant` (default `main`),
optional `placement`, and any other columns as template variables. Everything is
checked before anything is sent, and every bad row is named."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightbox_client.inputs import is_url, sniff
from lightbox_client.resources import Profile

RESERVED = ("sku", "image", "variant", "placement")
DEFAULT_VARIANT = "main"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# docs/schemas/catalog-row.json: a template variable's value.
MAX_VAR_CHARS = 500
# Used as folder and file names under the output folder.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TEMPLATE_VAR = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass(frozen=True)
class Item:
    line: int  # in the catalog file, for messages
    sku: str
    variant: str
    image: str  # a URL, or an absolute path
    placement: str | None
    vars: dict[str, str]

    @property
    def name(self) -> str:
        """`sku/variant`: the item's key in the manifest and its output folder."""
        return f"{self.sku}/{self.variant}"

    @property
    def is_url(self) -> bool:
        return is_url(self.image)


@dataclass(frozen=True)
class RowError:
    line: int
    sku: str
    field: str
    message: str

    def __str__(self) -> str:
        sku = f" (sku {self.sku})" if self.sku else ""
        return f"line {self.line}{sku}: {self.field}: {self.message}"


@dataclass
class Catalog:
    path: Path
    items: list[Item] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def idempotency_key(sku: str, variant: str, profile_ref: str | None, operation: str) -> str:
    """The server's default item key (docs/catalogs.md), so a per-job submit and a
    batch item of the same SKU, variant and profile version are one job."""
    return f"{sku}:{variant}:{profile_ref or operation}"


def _rows(path: Path) -> list[tuple[int, dict[str, Any]] | RowError]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        out: list[tuple[int, dict[str, Any]] | RowError] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                out.append(RowError(n, "", "row", f"not JSON: {exc.msg}"))
                continue
            if not isinstance(row, dict):
                out.append(RowError(n, "", "row", "a row must be a JSON object"))
                continue
            out.append((n, row))
        return out
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "sku" not in reader.fieldnames:
        return [RowError(1, "", "header", "the CSV needs a header row with sku and image")]
    return [(n, dict(row)) for n, row in enumerate(reader, start=2)]


def _check_image(image: str, base: Path) -> tuple[str, str | None]:
    """(the image as sent: URL or absolute path, a problem or None)."""
    if is_url(image):
        return image, None
    if "://" in image:
        return image, "only http:// and https:// URLs are accepted"
    path = (base / image).resolve()
    if not path.is_file():
        return str(path), f"no such file: {image}"
    if not os.access(path, os.R_OK):
        return str(path), f"cannot read {image}"
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        return str(path), f"{image} is {size} bytes; the limit is {MAX_IMAGE_BYTES}"
    with open(path, "rb") as f:
        head = f.read(16)
    if sniff(head) is None:
        return str(path), f"{image} is not a JPEG, PNG or WebP file"
    return str(path), None


def template_vars(profile: Profile) -> set[str]:
    return {m for text in profile.prompts.values() for m in _TEMPLATE_VAR.findall(str(text))}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("must be a string or a number")
    return str(value).strip()


def load(path: Path, profile: Profile | None) -> Catalog:
    """Reads and checks every row: names, duplicates, images on disk, placements
    against `profile` (none allowed without one) and its template variables."""
    catalog = Catalog(path)
    base = path.resolve().parent
    needed = template_vars(profile) if profile else set()
    seen: dict[tuple[str, str], int] = {}
    for entry in _rows(path):
        if isinstance(entry, RowError):
            catalog.errors.append(entry)
            continue
        line, row = entry
        problems: list[tuple[str, str]] = []
        values: dict[str, str] = {}
        for key, value in row.items():
            if key is None:
                problems.append(("row", "more cells than header columns"))
                continue
            try:
                values[str(key).strip()] = _text(value)
            except ValueError as exc:
                problems.append((str(key), str(exc)))
        sku = values.get("sku", "")
        variant = values.get("variant") or DEFAULT_VARIANT
        for name, value, longest in (("sku", sku, 128), ("variant", variant, 64)):
            if not value:
                problems.append((name, "required"))
            elif len(value) > longest or not _NAME.match(value):
                problems.append(
                    (name, f"{value!r}: use letters, digits, '.', '_' or '-' (at most {longest})")
                )
        if (sku, variant) in seen:
            problems.append(("variant", f"{sku}/{variant} is already on line {seen[sku, variant]}"))
        seen.setdefault((sku, variant), line)
        image = values.get("image", "")
        if not image:
            problems.append(("image", "required"))
        else:
            image, problem = _check_image(image, base)
            if problem:
                problems.append(("image", problem))
        placement = values.get("placement") or None
        if placement and profile is None:
            problems.append(("placement", "a placement needs --profile"))
        elif placement and profile is not None and placement not in profile.placements:
            valid = ", ".join(sorted(profile.placements)) or "none"
            problems.append(
                (
                    "placement",
                    f"unknown placement {placement!r}; {profile.ref} has: {valid}",
                )
            )
        row_vars = {k: v for k, v in values.items() if k not in RESERVED and k}
        for var, value in row_vars.items():
            if len(value) > MAX_VAR_CHARS:
                problems.append((var, f"at most {MAX_VAR_CHARS} characters"))
        for var in sorted(needed - {k for k, v in row_vars.items() if v}):
            problems.append((var, f"the profile's prompts need {{{{{var}}}}}"))
        if problems:
            catalog.errors.extend(RowError(line, sku, f, m) for f, m in problems)
            continue
        catalog.items.append(
            Item(
                line=line,
                sku=sku,
                variant=variant,
                image=image,
                placement=placement,
                vars=row_vars if profile else {},
            )
        )
    if not catalog.items and not catalog.errors:
        catalog.errors.append(RowError(1, "", "catalog", "no rows"))
    return catalog


def parse_assignments(pairs: list[str], what: str) -> Mapping[str, str]:
    """`NAME=VALUE` options into a mapping."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{what} {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out
