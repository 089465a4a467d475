"""The example clients in examples/ run unchanged against the stack, as their
users would run them: a subprocess with the base URL and key in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.gateway.localserver import Answer, local_server
from tests.gateway.stackutil import REPO, make_key, product, service
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack


def run_example(
    stack_url: str, key: str, script: str, *args: str, isolated: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    env.update(LIGHTBOX_BASE_URL=stack_url, LIGHTBOX_API_KEY=key)
    # -S: no site-packages at all, so the standard-library client proves it needs nothing.
    python = [sys.executable, "-S"] if isolated else [sys.executable]
    out = subprocess.run(
        [*python, str(REPO / "examples" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "bottle.jpg"
    path.write_bytes(product(240, 320, "JPEG", quality=92))
    return path


def test_requests_client(sqlite_stack: RunningStack, photo: Path, tmp_path: Path) -> None:
    key = make_key(sqlite_stack, credits=50)
    target = tmp_path / "studio.jpg"
    out = run_example(sqlite_stack.url, key.key, "pixelapi_requests.py", str(photo), str(target))
    assert "submitted" in out.stdout and "completed" in out.stdout
    img = Image.open(target)
    assert img.format == "JPEG" and img.size == (240, 320)


def test_urllib_client_needs_no_packages(
    sqlite_stack: RunningStack, photo: Path, tmp_path: Path
) -> None:
    key = make_key(sqlite_stack, credits=50)
    target = tmp_path / "cutout.png"
    out = run_example(
        sqlite_stack.url, key.key, "pixelapi_urllib.py", str(photo), str(target), isolated=True
    )
    assert "completed" in out.stdout
    img = Image.open(target)
    assert img.format == "PNG" and img.mode == "RGBA" and img.size == (240, 320)


def test_segmind_client_with_a_file(
    sqlite_stack: RunningStack, photo: Path, tmp_path: Path
) -> None:
    key = make_key(sqlite_stack, credits=50)
    target = tmp_path / "scene.png"
    out = run_example(sqlite_stack.url, key.key, "segmind_async.py", str(photo), str(target))
    assert "queued" in out.stdout and "COMPLETED" in out.stdout
    img = Image.open(target)
    assert img.format == "PNG"
    assert abs(img.size[0] / img.size[1] - 4 / 5) < 0.02


def test_segmind_client_with_a_url(sqlite_stack: RunningStack, tmp_path: Path) -> None:
    key = make_key(sqlite_stack, credits=50)
    with (
        local_server() as server,
        service(sqlite_stack, "gateway", LIGHTBOX_ALLOW_LOOPBACK_URLS="true") as gw,
    ):
        server.routes["/bottle.jpg"] = Answer(200, product(200, 260, "JPEG"))
        target = tmp_path / "scene.png"
        run_example(gw.url, key.key, "segmind_async.py", server.url("/bottle.jpg"), str(target))
        assert [r.path for r in server.received] == ["/bottle.jpg"]
    assert Image.open(target).format == "PNG"


def test_clients_report_errors(sqlite_stack: RunningStack, photo: Path, tmp_path: Path) -> None:
    poor = make_key(sqlite_stack, credits=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    env.update(LIGHTBOX_BASE_URL=sqlite_stack.url, LIGHTBOX_API_KEY=poor.key)
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "pixelapi_requests.py"),
            str(photo),
            str(tmp_path / "x.jpg"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "insufficient_credits" in out.stderr
