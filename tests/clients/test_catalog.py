"""clients/python/src/lightbox_client/catalog.py: every bad row of a catalog is named
before anything is sent; the shipped example is refused for its unknown placement only."""

from __future__ import annotations

import json
from pathlib import Path

from lightbox_client.catalog import idempotency_key, load
from lightbox_client.resources import Profile

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "clients" / "python" / "examples" / "catalog"
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 64


def example_profile(version: int = 1) -> Profile:
    body = json.loads((EXAMPLE / "profile.json").read_text())
    return Profile.of({**body, "version": version})


def test_the_example_is_refused_for_its_unknown_placement_only() -> None:
    catalog = load(EXAMPLE / "catalog.csv", example_profile())
    assert [(e.line, e.sku, e.field) for e in catalog.errors] == [(20, "jar-brown", "placement")]
    assert "hero-banner" in catalog.errors[0].message
    assert "product-page, social-feed" in catalog.errors[0].message
    assert len(catalog.items) == 19
    # The damaged JPEG starts like one: only the server can tell, and it will.
    assert any(i.sku == "mug-gift" for i in catalog.items)


def test_every_bad_row_is_named(tmp_path: Path) -> None:
    (tmp_path / "ok.jpg").write_bytes(JPEG)
    (tmp_path / "notes.jpg").write_text("not an image")
    rows = [
        {"sku": "A1", "image": "ok.jpg", "placement": "product-page", "backdrop": "cream"},
        {"sku": "A1", "image": "ok.jpg", "placement": "social-feed", "backdrop": "sand"},
        {"sku": "A2", "image": "missing.jpg", "backdrop": "cream"},
        {"sku": "A3", "image": "notes.jpg", "backdrop": "cream"},
        {"sku": "../A4", "image": "ok.jpg", "backdrop": "cream"},
        {"sku": "A5", "image": "ftp://host/x.jpg", "backdrop": "cream"},
        {"sku": "A6", "image": "https://img.test/a.jpg"},
        {"sku": "A7", "image": "ok.jpg", "variant": "side", "backdrop": "cream"},
        {"sku": "A8", "image": "ok.jpg", "variant": "v" * 65, "backdrop": "x" * 501},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    catalog = load(path, example_profile(3))
    named = {(e.line, e.field) for e in catalog.errors}
    assert named == {
        (2, "variant"),  # A1/main twice
        (3, "image"),
        (4, "image"),
        (5, "sku"),
        (6, "image"),
        (7, "backdrop"),  # the profile's prompt needs it
        (9, "variant"),
        (9, "backdrop"),
        (10, "row"),
    }
    assert [i.name for i in catalog.items] == ["A1/main", "A7/side"]
    assert catalog.items[0].vars == {"backdrop": "cream"}
    assert str(catalog.errors[0]).startswith("line 2 (sku A1): variant:")


def test_placements_need_a_profile(tmp_path: Path) -> None:
    (tmp_path / "ok.jpg").write_bytes(JPEG)
    path = tmp_path / "c.csv"
    path.write_text(
        "sku,image,placement,product_name\nB1,ok.jpg,product-page,Mug\nB2,ok.jpg,,Cup\n"
    )
    catalog = load(path, None)
    assert [(e.line, e.field) for e in catalog.errors] == [(2, "placement")]
    assert catalog.items[0].vars == {}  # no templates without a profile


def test_the_item_key_is_the_servers_default() -> None:
    assert idempotency_key("A1", "main", "shop-main@2", "product-photo") == "A1:main:shop-main@2"
    assert idempotency_key("A1", "main", None, "product-photo") == "A1:main:product-photo"
