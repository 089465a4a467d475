"""Segmind's published Python SDK (segmind==1.3.0, installed into a throwaway
virtualenv of its own) against the live stack, changing only base_url and the
key: the page's ai-product-photography example through run, submit_async + wait
and run_sync (examples/segmind_sdk.py), and the errors the SDK turns into
exceptions (InferenceFailed for blocked content, 401, 406, 503)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.gateway.stackutil import REPO, make_key, product
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack

SDK = "segmind==1.3.0"
SLUG = "ai-product-photography"

# The call under test inside a try whose outcome is printed as JSON; argv:
# base_url, key, image (base64).
_PROBE = """
import json, sys
from segmind import InferenceFailed, SegmindClient, SegmindError
client = SegmindClient(api_key=sys.argv[2], base_url=sys.argv[1])
image = sys.argv[3]
try:
    {call}
except InferenceFailed as e:
    out = {{"raised": "InferenceFailed", "detail": e.detail, "status_body": e.status_body}}
except SegmindError as e:
    out = {{"raised": type(e).__name__, "status": e.status, "detail": e.detail}}
else:
    out = {{"raised": None}}
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with nothing but the SDK and its dependencies (httpx)."""
    venv = tmp_path_factory.mktemp("segmind-sdk") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--disable-pip-version-check", SDK],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, f"pip could not install {SDK}:\n{pip.stdout}{pip.stderr}"
    return python


def _env() -> dict[str, str]:
    """The user's environment, without this checkout on the path or a Segmind key."""
    drop = ("PYTHONPATH", "SEGMIND_API_KEY")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("LIGHTBOX")}


def probe(python: Path, stack: RunningStack, key: str, call: str) -> dict:
    image = base64.b64encode(product(160, 200, "JPEG", quality=92)).decode()
    out = subprocess.run(
        [str(python), "-c", _PROBE.format(call=call), f"{stack.url}/v1", key, image],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_pages_example_runs_three_ways(
    sdk_python: Path, sqlite_stack: RunningStack, tmp_path: Path
) -> None:
    key = make_key(sqlite_stack, credits=50)
    photo, target = tmp_path / "sofa.jpg", tmp_path / "scene.png"
    photo.write_bytes(product(320, 400, "JPEG", quality=92))
    env = {**_env(), "LIGHTBOX_BASE_URL": sqlite_stack.url, "LIGHTBOX_API_KEY": key.key}
    out = subprocess.run(
        [str(sdk_python), str(REPO / "examples" / "segmind_sdk.py"), str(photo), str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {line.split(":", 1)[0]: line.split()[1:] for line in out.stdout.splitlines()}

    # run: a COMPLETED body whose output downloads as the image, with its metrics.
    status, output, inference_time = lines["run"]
    assert status == "COMPLETED" and float(inference_time) > 0
    img = Image.open(io.BytesIO(requests.get(output, timeout=30).content))
    assert img.format == "PNG"
    assert abs(img.width / img.height - 8 / 5) < 0.02
    assert 0.9e6 < img.width * img.height < 1.1e6  # megapixel="1.0"

    # submit_async + wait: the same request, its own job.
    (request_id,) = lines["submitted"]
    status, waited_output, _ = lines["waited"]
    assert status == "COMPLETED" and waited_output != output
    job = requests.get(f"{sqlite_stack.url}/v1/image/{request_id}", headers=key.headers).json()
    assert job["operation"] == "product-photo" and job["status"] == "completed"
    assert job["engines"]["background"].startswith("procedural:wood")
    assert job["parameters"]["seed"] == 98522

    # run_sync: the image bytes themselves, with the job's id and timing in headers.
    job_id, content_type, sync_time = lines["run_sync"][:3]
    assert content_type == "image/png" and float(sync_time) > 0
    assert Image.open(target).size == img.size
    synced = requests.get(f"{sqlite_stack.url}/v2/requests/{job_id}", headers=key.headers)
    assert synced.status_code == 200 and synced.json()["status"] == "COMPLETED"
    # Three jobs at 7 credits each.
    balance = requests.get(f"{sqlite_stack.url}/v1/account/balance", headers=key.headers)
    assert balance.json()["credits_remaining"] == 50 - 3 * 7


def test_blocked_prompt_raises_inference_failed_with_the_reason(
    sdk_python: Path, sqlite_stack: RunningStack
) -> None:
    key = make_key(sqlite_stack, credits=50)
    call = f'client.run("{SLUG}", image=image, prompt="a naked mannequin on white marble")'
    out = probe(sdk_python, sqlite_stack, key.key, call)
    assert out["raised"] == "InferenceFailed"
    assert "contains a term this server does not allow" in out["detail"]
    assert out["status_body"]["status"] == "FAILED"
    # And through run_sync: the SDK's own error, 422 with the same reason.
    out = probe(sdk_python, sqlite_stack, key.key, call.replace("client.run(", "client.run_sync("))
    assert out["raised"] == "SegmindError" and out["status"] == 422
    assert "contains a term this server does not allow" in out["detail"]


@pytest.mark.parametrize("method", ["run", "run_sync"])
def test_wrong_key_is_401(sdk_python: Path, sqlite_stack: RunningStack, method: str) -> None:
    call = f'client.{method}("{SLUG}", image=image, prompt="white marble")'
    out = probe(sdk_python, sqlite_stack, "lb_live_" + "x" * 40, call)
    assert out["raised"] == "SegmindError" and out["status"] == 401
    assert out["detail"] == "The API key is unknown or revoked."


@pytest.mark.parametrize("method", ["run", "run_sync"])
def test_too_few_credits_is_406(sdk_python: Path, sqlite_stack: RunningStack, method: str) -> None:
    key = make_key(sqlite_stack, credits=5)  # ai-product-photography costs 7
    call = f'client.{method}("{SLUG}", image=image, prompt="white marble")'
    out = probe(sdk_python, sqlite_stack, key.key, call)
    assert out["raised"] == "SegmindError" and out["status"] == 406
    assert "credits" in out["detail"]


def test_the_pages_own_prompt_needs_a_diffusion_model(
    sdk_python: Path, sqlite_stack: RunningStack
) -> None:
    key = make_key(sqlite_stack, credits=50)
    prompt = "A modern living room with a vibrant orange mid-century modern sofa"
    out = probe(
        sdk_python, sqlite_stack, key.key, f'client.run("{SLUG}", image=image, prompt="{prompt}")'
    )
    assert out["raised"] == "SegmindError" and out["status"] == 503
    assert out["detail"]  # the reason, readable through the SDK
    balance = requests.get(f"{sqlite_stack.url}/v1/account/balance", headers=key.headers)
    assert balance.json()["credits_remaining"] == 50
