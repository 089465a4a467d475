"""The Python client and CLI (clients/python) on the audio, video and virtual try-on
endpoints of the running stack, which has none of their weights: each method raises
ModelUnavailable with the install hint, once (not retried) and uncharged; the try-on
photos' documented validation codes arrive as their typed errors; the `audio`,
`video` and `tryon` commands exit 1 with the server's message and hint and write
nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from lightbox_client import (
    AsyncLightbox,
    ImageTooSmall,
    InvalidCategory,
    Lightbox,
    ModelUnavailable,
    WrongAspectRatio,
)

from services.common import models
from tests.gateway.stackutil import Key, encode, make_key
from tests.stack.conftest import RunningStack
from tests.stack.test_api_media import hint
from tests.stack.test_client_cli import cli_env

pytestmark = pytest.mark.stack


def photo(w: int, h: int, fmt: str = "PNG") -> bytes:
    rgb = np.full((h, w, 3), 210, np.uint8)
    rgb[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = (40, 70, 160)
    return encode(rgb, fmt)


PERSON = photo(120, 180)
GARMENT = photo(110, 100, "JPEG")


class Counting(httpx.BaseTransport):
    """Forwards to the stack and counts the submits that reach it."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.posts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.posts += request.method == "POST"
        return self.real.handle_request(request)


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=200)


CALLS: dict[str, tuple[str, Callable[[Lightbox], object]]] = {
    "audio": (models.MUSICGEN, lambda lb: lb.generate_audio("lofi hip hop beat", duration=10)),
    "video": (
        models.WAN_T2V,
        lambda lb: lb.generate_video("a cat on a sofa", duration=2, resolution="720p"),
    ),
    "tryon": (
        models.CATVTON,
        lambda lb: lb.virtual_tryon(PERSON, GARMENT, category="upperbody", wait=True),
    ),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_method_raises_model_unavailable_once_with_the_hint_uncharged(
    sqlite_stack: RunningStack, key: Key, name: str
) -> None:
    model, call = CALLS[name]
    counting = Counting()
    with Lightbox(sqlite_stack.url, key.key, transport=counting) as lb:
        before = lb.balance().credits_remaining
        with pytest.raises(ModelUnavailable) as info:
            call(lb)
        assert info.value.status_code == 503 and info.value.model == model
        assert info.value.guidance == hint(model)
        assert counting.posts == 1  # a 503 model_unavailable is not retried
        assert lb.balance().credits_remaining == before


def test_tryon_photo_errors_are_typed(sqlite_stack: RunningStack, key: Key) -> None:
    with Lightbox(sqlite_stack.url, key.key) as lb:
        with pytest.raises(WrongAspectRatio) as landscape:
            lb.virtual_tryon(photo(200, 150), GARMENT, category="dress")
        assert landscape.value.received_size == (200, 150)
        assert landscape.value.field == "person_image"
        with pytest.raises(ImageTooSmall) as small:
            lb.virtual_tryon(PERSON, photo(140, 60), category="dress")
        assert small.value.received_size == (140, 60) and small.value.field == "garment_image"
        with pytest.raises(InvalidCategory) as category:
            lb.virtual_tryon(PERSON, GARMENT, category="hat")
        assert category.value.field == "category"


def test_the_async_client_raises_the_same(sqlite_stack: RunningStack, key: Key) -> None:
    async def run() -> None:
        async with AsyncLightbox(sqlite_stack.url, key.key) as lb:
            with pytest.raises(ModelUnavailable) as info:
                await lb.virtual_tryon(PERSON, GARMENT, category="lowerbody")
            assert info.value.model == models.CATVTON

    asyncio.run(run())


def test_the_cli_exits_1_with_the_message_and_the_hint(
    sqlite_stack: RunningStack, key: Key, tmp_path: Path
) -> None:
    (tmp_path / "person.png").write_bytes(PERSON)
    (tmp_path / "garment.jpg").write_bytes(GARMENT)
    commands = {
        models.MUSICGEN: ["audio", "lofi beat", "--duration", "10", "-o", "out.wav"],
        models.WAN_T2V: ["video", "waves at dusk", "--resolution", "480p", "-o", "out.mp4"],
        models.CATVTON: ["tryon", "person.png", "garment.jpg", "--category", "upperbody",
                         "-o", "out.png"],
    }  # fmt: skip
    for model, args in commands.items():
        out = subprocess.run(
            [sys.executable, "-m", "lightbox_client", *args],
            env=cli_env(sqlite_stack.url, key),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert "lightbox-client: 503 model_unavailable: " in out.stderr
        assert hint(model) in out.stderr
        assert out.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garment.jpg", "person.png"]
