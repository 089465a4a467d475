"""The Python client (clients/python) against the running stack: every operation with
every kind of input, every typed error, and a retried submit charged once.

(Here rather than in tests/clients: the session stack fixture is visible only under
tests/stack, and importing it elsewhere would start a second stack.)"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from lightbox_client import (
    IdempotencyConflict,
    InsufficientCredits,
    InvalidImage,
    InvalidParameter,
    JobBlocked,
    Lightbox,
    ModelUnavailable,
    NotFound,
    RateLimited,
    Unauthorized,
    WaitTimeout,
)
from PIL import Image

from tests.gateway.localserver import Answer, local_server
from tests.gateway.stackutil import Key, encode, make_key, product, service
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=1000)


@pytest.fixture(scope="module")
def lb(sqlite_stack: RunningStack, key: Key) -> Iterator[Lightbox]:
    with Lightbox(sqlite_stack.url, key.key) as client:
        yield client


def image_of(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_every_served_operation_from_a_path_bytes_and_a_file(lb: Lightbox, tmp_path: Path) -> None:
    photo = product(96, 128)
    path = tmp_path / "box.png"
    path.write_bytes(photo)
    mask = np.zeros((128, 96), np.uint8)
    mask[40:80, 40:60] = 255
    before = lb.balance().credits_remaining
    with open(path, "rb") as f:
        jobs = {
            "product-photo": lb.product_photo(path, preset="white-studio", aspect_ratio="4:5"),
            "remove-background": lb.remove_background(photo),
            "replace-background": lb.replace_background(f, prompt="#336699"),
            "upscale": lb.upscale(photo, scale=2),
            "remove-object": lb.remove_object(photo, mask=encode(mask)),
        }
    prices = {o["operation"]: o["credits"] for o in lb.models()["operations"]}
    for op, job in jobs.items():
        assert job.operation == op and job.credits_used == prices[op]
        job.wait(timeout=120, poll_interval=0.2)
        assert job.status == "completed", job.data
    assert lb.balance().credits_remaining == pytest.approx(before - sum(prices[o] for o in jobs))

    out = jobs["product-photo"].download(tmp_path)
    assert out == tmp_path / f"{jobs['product-photo'].id}.jpg"
    w, h = Image.open(out).size
    assert abs(w / h - 4 / 5) < 0.01
    cutout = image_of(jobs["remove-background"].read())
    assert cutout.mode == "RGBA" and cutout.size == (96, 128)
    assert image_of(jobs["upscale"].read()).size == (192, 256)
    assert image_of(jobs["replace-background"].read()).size == (96, 128)
    assert image_of(jobs["remove-object"].read()).size == (96, 128)
    listed = {j["id"] for j in lb.usage(limit=20).jobs}
    assert {j.id for j in jobs.values()} <= listed


def test_a_url_and_wait_true(sqlite_stack: RunningStack, key: Key) -> None:
    with (
        local_server() as server,
        service(sqlite_stack, "gateway", LIGHTBOX_ALLOW_LOOPBACK_URLS="true") as gw,
        Lightbox(gw.url, key.key) as client,
    ):
        server.routes["/bottle.jpg"] = Answer(200, product(120, 160, "JPEG"))
        seen: list[str] = []
        job = client.product_photo(
            server.url("/bottle.jpg"),
            preset="marble",
            wait=True,
            timeout=120,
            on_progress=lambda j: seen.append(j.status),
        )
        assert job.status == "completed" and seen[-1] == "completed"
        assert job.data["parameters"]["preset"] == "marble"
        assert image_of(job.read()).size == (120, 160)


@pytest.mark.parametrize(
    "call",
    [
        lambda lb: lb.generate("a lamp on a desk"),
        lambda lb: lb.restore_face(product()),
        lambda lb: lb.remove_object(product(), prompt="the red box"),
    ],
    ids=["generate", "restore-face", "remove-object-by-prompt"],
)
def test_operations_without_their_model_raise_model_unavailable_uncharged(
    lb: Lightbox, call
) -> None:
    before = lb.balance().credits_remaining
    with pytest.raises(ModelUnavailable) as info:
        call(lb)
    assert info.value.status_code == 503 and info.value.guidance
    assert lb.balance().credits_remaining == before


def test_typed_errors(sqlite_stack: RunningStack, lb: Lightbox) -> None:
    url = sqlite_stack.url
    with pytest.raises(InvalidParameter) as bad:
        lb.upscale(product(), scale=3)
    assert bad.value.field == "scale" and bad.value.code == "invalid_parameter"
    with pytest.raises(InvalidImage):
        lb.remove_background(product(fmt="JPEG")[:200])
    with pytest.raises(NotFound):
        lb.job("x" * 24)
    with pytest.raises(Unauthorized):
        Lightbox(url, "lb_live_nope").balance()
    poor = make_key(sqlite_stack, credits=1)
    with pytest.raises(InsufficientCredits) as short:
        Lightbox(url, poor.key).product_photo(product())
    assert short.value.status_code == 402
    slow = make_key(sqlite_stack, rpm=1)
    client = Lightbox(url, slow.key, max_retries=0)
    client.balance()
    with pytest.raises(RateLimited) as limited:
        client.balance()
    assert limited.value.retry_after and limited.value.retry_after > 0
    lb.remove_background(product(), idempotency_key="conflict-1")
    with pytest.raises(IdempotencyConflict):
        lb.remove_background(product(), idempotency_key="conflict-1", crop=True)


def test_blocked_job_raises_with_the_job_and_a_wait_timeout_keeps_the_id(lb: Lightbox) -> None:
    with pytest.raises(JobBlocked) as blocked:
        lb.product_photo(
            product(), preset="custom", background_prompt="a nude figure", wait=True, timeout=30
        )
    assert blocked.value.job.status == "blocked" and blocked.value.code == "content_blocked"
    assert blocked.value.job.credits_used == 0
    job = lb.remove_background(product())
    with pytest.raises(WaitTimeout) as timeout:
        job.wait(timeout=0.01, poll_interval=0.005)
    assert timeout.value.job_id == job.id
    assert lb.job(job.id).status in ("queued", "processing", "completed")  # it goes on


class Flaky(httpx.BaseTransport):
    """Forwards to the stack, except the first submit: refused with a 503 before the
    server sees it, or sent and its answer lost on the way back."""

    def __init__(self, mode: str) -> None:
        self.real = httpx.HTTPTransport()
        self.mode = mode
        self.submit_keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.submit_keys.append(request.headers["idempotency-key"])
            if len(self.submit_keys) == 1:
                if self.mode == "503":
                    body = {"detail": {"error": "overloaded", "message": "busy", "guidance": ""}}
                    return httpx.Response(503, json=body, headers={"Retry-After": "0"})
                answer = self.real.handle_request(request)
                answer.read()
                answer.close()
                raise httpx.ReadError("connection reset before the answer arrived")
        return self.real.handle_request(request)


@pytest.mark.parametrize("mode", ["503", "answer-lost"])
def test_a_retried_submit_is_one_job_charged_once(sqlite_stack: RunningStack, mode: str) -> None:
    account = make_key(sqlite_stack, credits=100)
    flaky = Flaky(mode)
    client = Lightbox(sqlite_stack.url, account.key, transport=flaky)
    job = client.remove_background(product())
    assert len(flaky.submit_keys) == 2 and flaky.submit_keys[0] == flaky.submit_keys[1]
    assert client.balance().credits_remaining == 98
    assert [j["id"] for j in client.usage().jobs] == [job.id]
