"""The catalog example of the README (clients/python/examples/catalog) as a new user
runs it with the CLI: create the profile, dry-run (refused: the unknown placement on
line 20), fix that row, run the batch (the damaged JPEG fails with its error in the
report, every other output has its placement's aspect ratio, the page shows the
grid), and run it again (nothing submitted, balance unchanged).

Needs a server with profiles and batches (docs/catalogs.md); against one without, it
is skipped and says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.gateway.stackutil import REPO, make_key
from tests.stack.conftest import RunningStack
from tests.stack.test_client_cli import balance, cli, job_ids

pytestmark = pytest.mark.stack

EXAMPLE = REPO / "clients" / "python" / "examples" / "catalog"
ASPECT = {"page": 1.0, "feed": 4 / 5}


def test_the_readme_catalog_example(sqlite_stack: RunningStack, tmp_path: Path) -> None:
    url = sqlite_stack.url
    key = make_key(sqlite_stack, credits=500)
    probe = requests.get(f"{url}/v1/profiles", headers=key.headers, timeout=10)
    if probe.status_code == 404:
        pytest.skip("this server has no /v1/profiles (the catalog API of docs/catalogs.md)")
    folder = tmp_path / "catalog"
    shutil.copytree(EXAMPLE, folder)
    made = cli(url, key, "profile", "create", str(folder / "profile.json"))
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["version"] == 1

    out = tmp_path / "out"
    args = ["batch", str(folder / "catalog.csv"), "--profile", "shop-main", "--out", str(out)]
    dry = cli(url, key, *args, "--dry-run")
    assert dry.returncode == 2
    assert "line 20 (sku jar-brown): placement: unknown placement 'hero-banner'" in dry.stderr
    assert "shop-main@1 has: product-page, social-feed" in dry.stderr

    csv = folder / "catalog.csv"
    csv.write_text(csv.read_text().replace("hero-banner", "social-feed"))
    ok = cli(url, key, *args, "--dry-run")
    assert ok.returncode == 0 and "20 items OK for shop-main@1" in ok.stdout

    run = cli(url, key, *args)
    assert run.returncode == 1, run.stderr  # the damaged image
    assert "20/20" in run.stderr  # the progress bar, on stderr
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["mode"] == "batches"
    assert (report["run"]["submitted"], report["run"]["refused"]) == (19, 1)  # upload refused
    assert report["counts"] == {"completed": 19, "failed": 1}
    for item in report["items"]:
        if item["sku"] == "mug-gift":
            assert item["status"] == "failed" and item["error"]["error"] == "invalid_image"
            continue
        assert item["qa"] is not None and isinstance(item["qa"]["needs_review"], bool)
        w, h = Image.open(out / item["output"]).size
        variant = "feed" if item["placement"] == "social-feed" else "page"
        assert abs(w / h - ASPECT[variant]) < 0.01, item
    page = (out / "report.html").read_text()
    assert page.count("<img ") == 19 and "mug-gift" in page and "invalid_image" in page
    jobs = job_ids(url, key)
    assert len(jobs) == 19

    before = balance(url, key)
    again = cli(url, key, *args)
    assert again.returncode == 1
    assert json.loads((out / "report.json").read_text())["run"]["submitted"] == 0
    assert balance(url, key) == before and job_ids(url, key) == jobs
