"""PixelAPI's audio and try-on endpoints through the front door with tiny
random-weight models served: the jobs complete, the outputs are what the
documentation promises (a playable WAV of the asked duration; a PNG at the person
photo's size, base64 in the try-on job body), credits are charged once by tier, an
Idempotency-Key replays the job, and /v2 returns the same kind of result. The
pipelines' numeric parity with their reference implementations is tested beside the
models (tests/models/test_{musicgen,wan,catvton}_*.py); this checks the wiring a
client sees.

Video is served by the same stack (conftest's generative_stack exports tiny WAN too) but
not run here: the smallest request the API allows (1 s at 480p: 17 frames of 832x480)
spends about 35 s in WAN's VAE decoder on two CPU cores even with tiny weights, too
much for every CI run. The video stage is covered by tests/jobs/test_pipeline_media.py
(job -> MP4 blob -> video/mp4), the served pipeline by tests/models/test_wan_triton.py,
the MP4 encoder by tests/jobs/media/test_video.py, and the routes by
tests/stack/test_api_media.py."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from services.jobs.webhooks import JobBodyRenderer
from services.samples.photos import load_photo
from tests.gateway.stackutil import Key, encode, make_key, store_of
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def media_stack(generative_stack: RunningStack) -> RunningStack:
    return generative_stack


@pytest.fixture(scope="module")
def key(media_stack: RunningStack) -> Key:
    return make_key(media_stack, credits=200)


def balance(stack: RunningStack, key: Key) -> float:
    r = requests.get(f"{stack.url}/v1/account/balance", headers=key.headers, timeout=10)
    return float(r.json()["credits_remaining"])


def wait(stack: RunningStack, key: Key, path: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(f"{stack.url}{path}", headers=key.headers, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("completed", "failed", "canceled", "blocked"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.3)


def test_audio_generate_makes_a_wav_of_the_asked_duration(
    media_stack: RunningStack, key: Key
) -> None:
    before = balance(media_stack, key)
    request = {"prompt": "calm acoustic guitar for a product video", "duration": 5}
    headers = {**key.headers, "Idempotency-Key": "audio-e2e-1"}
    r = requests.post(
        f"{media_stack.url}/v1/audio/generate", json=request, headers=headers, timeout=30
    )
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["status"] == "queued" and queued["model"] == "musicgen-small"
    assert queued["duration"] == 5 and queued["credits_used"] == 5
    assert queued["estimated_seconds"] > 0
    job_id = queued["generation_id"]
    job = wait(media_stack, key, f"/v1/image/{job_id}")
    assert job["status"] == "completed", job
    assert job["format"] == "wav" and job["engines"] == {"music": "musicgen"}
    wav = requests.get(job["output_url"], timeout=30)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(wav.content)) as audio:
        assert audio.getsampwidth() == 2 and audio.getframerate() == 32000
        assert audio.getnframes() == 5 * 32000
        pcm = np.frombuffer(audio.readframes(audio.getnframes()), "<i2")
    assert pcm.std() > 0  # the tiny model's random weights still make a signal
    # A webhook delivers the worker's rendering of the job: the same body a poll reads.
    record = store_of(media_stack).get(job_id)
    rendered = json.loads(JobBodyRenderer(media_stack.url, "secret")(record))
    for field in ("generation_id", "status", "format", "model", "duration", "credits_used", "qa"):
        assert rendered[field] == job[field], field
    assert rendered["width"] is None and rendered["qa"] is None
    # The same key replays the job: no second job, no second charge.
    again = requests.post(
        f"{media_stack.url}/v1/audio/generate", json=request, headers=headers, timeout=30
    )
    assert again.status_code == 200 and again.json()["generation_id"] == job_id
    assert balance(media_stack, key) == before - 5


def test_audio_through_v2(media_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{media_stack.url}/v2/audio-generate",
        json={"prompt": "short jingle with bells", "duration": 16},
        headers=key.headers,
        timeout=30,
    )
    assert r.status_code == 202, r.text
    request_id = r.json()["request_id"]
    status = wait(media_stack, key, f"/v1/image/{request_id}")
    assert status["status"] == "completed", status
    result = requests.get(
        f"{media_stack.url}/v2/requests/{request_id}", headers=key.headers, timeout=10
    )
    assert result.status_code == 200, result.text
    assert result.json()["status"] == "COMPLETED"
    assert status["credits_used"] == 10  # 16 s is the second tier


def test_virtual_tryon_dresses_a_real_person_photo(media_stack: RunningStack, key: Key) -> None:
    person = load_photo("astronaut").rgb  # a real portrait, 512 x 512
    garment = np.full((160, 128, 3), 235, np.uint8)
    garment[20:150, 14:114] = (190, 30, 40)  # a red top on a white sweep
    before = balance(media_stack, key)
    r = requests.post(
        f"{media_stack.url}/v1/virtual-tryon",
        json={
            "person_image": base64.b64encode(encode(person, "PNG")).decode(),
            "garment_image": base64.b64encode(encode(garment, "JPEG")).decode(),
            "category": "upperbody",
        },
        headers=key.headers,
        timeout=30,
    )
    assert r.status_code == 202, r.text
    assert r.json()["credits_used"] == 25 and r.json()["status"] == "queued"
    job = wait(media_stack, key, f"/v1/virtual-tryon/jobs/{r.json()['job_id']}")
    assert job["status"] == "completed", job
    assert job["inference_time_ms"] > 0
    result = np.asarray(Image.open(io.BytesIO(base64.b64decode(job["result_image_b64"]))))
    assert result.shape == person.shape
    changed = np.any(result != person, axis=2)
    # The body mask covers the suit below the neck ring, never the whole photo: the
    # face and the sky at the top stay the photo's own pixels, bit for bit.
    assert 0.03 < changed.mean() < 0.8, changed.mean()
    assert not changed[:120].any()
    assert balance(media_stack, key) == before - 25


def test_pixelapi_style_examples_in_python_and_javascript(
    media_stack: RunningStack, key: Key, tmp_path: Path
) -> None:
    """examples/pixelapi_media.py (requests) and examples/pixelapi_media.mjs (Node's
    fetch), written the way PixelAPI's docs write clients, run against the stack."""
    from tests.stack.test_clients import run_example

    out = run_example(
        media_stack.url,
        key.key,
        "pixelapi_media.py",
        "audio",
        "soft piano",
        str(tmp_path / "a.wav"),
        "5",
    )
    assert "completed: wav" in out.stdout
    with wave.open(str(tmp_path / "a.wav")) as audio:
        assert audio.getnframes() == 5 * 32000

    person = load_photo("astronaut").rgb
    (tmp_path / "person.png").write_bytes(encode(person, "PNG"))
    (tmp_path / "garment.jpg").write_bytes(encode(np.full((128, 128, 3), 90, np.uint8), "JPEG"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    env.update(LIGHTBOX_BASE_URL=media_stack.url, LIGHTBOX_API_KEY=key.key)
    example = Path(__file__).resolve().parents[2] / "examples" / "pixelapi_media.mjs"
    for args in (
        ("audio", "soft piano", str(tmp_path / "b.wav"), "6"),
        (
            "tryon",
            str(tmp_path / "person.png"),
            str(tmp_path / "garment.jpg"),
            "upperbody",
            str(tmp_path / "t.png"),
        ),
    ):
        done = subprocess.run(
            ["node", str(example), *args], env=env, capture_output=True, text=True, timeout=240
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "completed" in done.stdout
    with wave.open(str(tmp_path / "b.wav")) as audio:
        assert audio.getnframes() == 6 * 32000
    assert Image.open(tmp_path / "t.png").size == (person.shape[1], person.shape[0])
    # A refusal reaches the script as the documented error, and it exits non-zero.
    bad = subprocess.run(
        [
            "node",
            str(example),
            "tryon",
            str(tmp_path / "person.png"),
            str(tmp_path / "garment.jpg"),
            "hat",
            str(tmp_path / "x.png"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "422 invalid_category" in bad.stderr


def test_models_lists_the_three_as_available_once_deployed(
    media_stack: RunningStack, key: Key
) -> None:
    r = requests.get(f"{media_stack.url}/v1/models", headers=key.headers, timeout=10)
    ops = {o["operation"]: o for o in r.json()["operations"]}
    for name in ("audio-generate", "video-generate", "virtual-tryon"):
        assert ops[name]["available"] is True, ops[name]
        assert all(stage["deployed"] for stage in ops[name]["stages"]), ops[name]
