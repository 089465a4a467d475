"""The `lightbox-client` CLI (clients/python) against the running stack, run as its
users run it (a subprocess with LIGHTBOX_BASE_URL/LIGHTBOX_API_KEY): a catalog is
refused naming its bad row; a run stopped with Ctrl-C is finished by a second run that
submits only the rest; a third run submits nothing and charges nothing; the report
lists every output and every failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.gateway.stackutil import Key, make_key, product
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack

GOOD = 4


def cli_env(url: str, key: Key) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    env.update(LIGHTBOX_BASE_URL=url, LIGHTBOX_API_KEY=key.key)
    return env


def cli(url: str, key: Key, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lightbox_client", *args],
        env=cli_env(url, key),
        capture_output=True,
        text=True,
        timeout=240,
    )


def balance(url: str, key: Key) -> float:
    r = requests.get(f"{url}/v1/account/balance", headers=key.headers, timeout=10)
    return float(r.json()["credits_remaining"])


def job_ids(url: str, key: Key) -> list[str]:
    r = requests.get(f"{url}/v1/account/usage?limit=100", headers=key.headers, timeout=10)
    return [j["id"] for j in r.json()["jobs"]]


@pytest.fixture()
def catalog(tmp_path: Path) -> Path:
    """GOOD products (two variants of each SKU) and one truncated JPEG, which looks
    like a JPEG to the client and is refused by the server."""
    folder = tmp_path / "catalog"
    (folder / "img").mkdir(parents=True)
    rows = ["sku,variant,image,product_name"]
    for n in range(GOOD // 2):
        (folder / "img" / f"p{n}.jpg").write_bytes(product(96 + 8 * n, 128, "JPEG"))
        rows += [f"SKU-{n},front,img/p{n}.jpg,Box {n}", f"SKU-{n},back,img/p{n}.jpg,Box {n}"]
    (folder / "img" / "broken.jpg").write_bytes(product(96, 128, "JPEG")[:400])
    rows.append("SKU-X,front,img/broken.jpg,Broken")
    (folder / "catalog.csv").write_text("\n".join(rows) + "\n")
    return folder / "catalog.csv"


BATCH = ("--operation", "product-photo", "--preset", "white-studio", "--aspect-ratio", "1:1")


def test_dry_run_names_the_bad_row_and_sends_nothing(
    sqlite_stack: RunningStack, catalog: Path, tmp_path: Path
) -> None:
    key = make_key(sqlite_stack, credits=100)
    (catalog.parent / "img" / "notes.jpg").write_text("a text file named like a photo")
    with open(catalog, "a") as f:
        f.write("SKU-T,front,img/notes.jpg,Notes\nSKU-0,front,img/p0.jpg,Again\n")
    out = cli(sqlite_stack.url, key, "batch", str(catalog), *BATCH, "--out", str(tmp_path / "o"))
    assert out.returncode == 2, out.stderr
    assert "line 7 (sku SKU-T): image: img/notes.jpg is not a JPEG, PNG or WebP" in out.stderr
    assert "line 8 (sku SKU-0): variant: SKU-0/front is already on line 2" in out.stderr
    assert "--placement" not in out.stderr
    dry = cli(sqlite_stack.url, key, "batch", str(catalog), *BATCH, "--out", "x", "--dry-run")
    assert dry.returncode == 2 and "2 row(s) refused" in dry.stderr
    assert job_ids(sqlite_stack.url, key) == [] and balance(sqlite_stack.url, key) == 100


def test_interrupted_run_resumes_then_a_finished_one_submits_nothing(
    sqlite_stack: RunningStack, catalog: Path, tmp_path: Path
) -> None:
    key = make_key(sqlite_stack, credits=200, max_concurrent=1)
    url = sqlite_stack.url
    out = tmp_path / "out"
    dry = cli(url, key, "batch", str(catalog), *BATCH, "--out", str(out), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{GOOD + 1} items OK" in dry.stdout and "at most 35 credits" in dry.stdout

    # One submit per item, whether or not the server offers batches (the example's test
    # runs the batches path).
    args = ["batch", str(catalog), *BATCH, "--out", str(out), "--concurrency", "1"]
    args += ["--mode", "jobs"]
    first = subprocess.Popen(
        [sys.executable, "-m", "lightbox_client", *args],
        env=cli_env(url, key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT, and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if manifest.exists() and manifest.read_text().count('"status": "completed"') >= 2:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "interrupted" in err and "[" in err  # the progress line
    done_first = len(list(out.glob("SKU-*/*.jpg")))
    assert 2 <= done_first < GOOD

    second = cli(url, key, *args)
    assert second.returncode == 1, second.stderr  # the broken image failed
    report = json.loads((out / "report.json").read_text())
    run = report["run"]
    assert run["mode"] == "jobs"
    assert run["skipped"] == done_first
    assert run["refused"] == 1  # the broken image, at its submit
    assert run["submitted"] + run["refused"] + run["resumed"] + run["skipped"] == GOOD + 1
    assert report["counts"] == {"completed": GOOD, "failed": 1}
    # Every item was submitted once over both runs: one job each, charged once.
    assert len(job_ids(url, key)) == GOOD
    assert balance(url, key) == pytest.approx(200 - 7 * GOOD)
    for item in report["items"]:
        if item["sku"] == "SKU-X":
            assert item["status"] == "failed" and item["error"]["error"] == "invalid_image"
            continue
        assert (
            item["status"] == "completed"
            and item["output"] == f"{item['sku']}/{item['variant']}.jpg"
        )
        size = Image.open(out / item["output"]).size
        assert size == (item["width"], item["height"]) and size[0] == size[1]
    page = (out / "report.html").read_text()
    assert page.count("<img ") == GOOD and "src='SKU-0/front.jpg'" in page
    assert "SKU-X" in page and "invalid_image" in page

    before = balance(url, key)
    third = cli(url, key, *args)
    assert third.returncode == 1
    rerun = json.loads((out / "report.json").read_text())["run"]
    assert (rerun["submitted"], rerun["refused"], rerun["resumed"]) == (0, 0, 0)
    assert rerun["skipped"] == GOOD + 1
    assert "this run submitted 0" in third.stdout
    assert balance(url, key) == before and len(job_ids(url, key)) == GOOD

    other = cli(url, key, "batch", str(catalog), *BATCH[:-1], "4:5", "--out", str(out))
    assert other.returncode == 2 and "belongs to another run" in other.stderr


def test_operation_command_on_several_files(
    sqlite_stack: RunningStack, catalog: Path, tmp_path: Path
) -> None:
    key = make_key(sqlite_stack, credits=50)
    images = catalog.parent / "img"
    out = cli(
        sqlite_stack.url,
        key,
        "remove-background",
        str(images / "p0.jpg"),
        str(images / "p1.jpg"),
        "--crop",
        "true",
        "--out",
        str(tmp_path / "cut"),
    )
    assert out.returncode == 0, out.stderr
    for name in ("p0", "p1"):
        cut = Image.open(tmp_path / "cut" / f"{name}.png")
        assert cut.mode == "RGBA" and cut.size[0] < 96  # cropped to the box
    assert out.stdout.count(" -> ") == 2
    bad = cli(
        sqlite_stack.url, key, "upscale", str(images / "p0.jpg"), "--scale", "3", "--out", "u"
    )
    assert bad.returncode == 1 and "invalid_parameter" in bad.stderr
