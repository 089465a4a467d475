"""clients/python/src/lightbox_client/_http.py and jobs.py without a server (httpx
MockTransport): what is retried and what is raised at once, the Idempotency-Key
kept across attempts, and waiting on a job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from lightbox_client import (
    AsyncLightbox,
    ConnectionFailed,
    InvalidParameter,
    JobFailed,
    Lightbox,
    ModelUnavailable,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    WaitTimeout,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
JOB = {"generation_id": "j1", "id": "j1", "status": "queued", "operation": "upscale"}


def error(status: int, code: str, retry_after: str | None = None, **extra: object):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"detail": {"error": code, "message": code, "guidance": "", **extra}}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """Answers requests in order from a list; records every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **kw: object) -> Lightbox:
        return Lightbox("http://lb.test", "k", transport=httpx.MockTransport(self), **kw)

    @property
    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests]


def submit(lb: Lightbox) -> object:
    return lb.upscale(PNG, scale=2)


@pytest.mark.parametrize(
    "first",
    [
        error(503, "overloaded", "0"),
        error(429, "rate_limited", "0"),
        httpx.ConnectError("refused"),
        httpx.ReadError("connection reset after the request was sent"),
    ],
    ids=["503", "429", "connect", "read"],
)
def test_a_retried_submit_keeps_its_idempotency_key(first: httpx.Response | Exception) -> None:
    script = Script(first, httpx.Response(202, json=JOB))
    job = submit(script.client())
    assert job.id == "j1"  # type: ignore[attr-defined]
    assert len(script.requests) == 2
    assert script.keys[0] and script.keys[0] == script.keys[1]
    assert script.requests[0].headers["authorization"] == "Bearer k"


def test_each_submit_has_its_own_key_and_a_given_key_is_sent() -> None:
    script = Script(*(httpx.Response(202, json=JOB) for _ in range(3)))
    lb = script.client()
    submit(lb)
    submit(lb)
    lb.upscale(PNG, idempotency_key="sku-1:main:upscale")
    assert len(set(script.keys)) == 3 and script.keys[2] == "sku-1:main:upscale"


@pytest.mark.parametrize(
    ("answer", "exc"),
    [
        (error(422, "invalid_parameter", field="scale"), InvalidParameter),
        (error(503, "model_unavailable", "5"), ModelUnavailable),
        (error(500, "internal_error"), ServerError),
        (error(429, "rate_limited", "3600"), RateLimited),
    ],
    ids=["422", "model_unavailable", "500-on-post", "retry-after-too-long"],
)
def test_not_retried(answer: httpx.Response, exc: type[Exception]) -> None:
    script = Script(answer)
    with pytest.raises(exc):
        submit(script.client())
    assert len(script.requests) == 1


def test_invalid_parameter_names_the_field() -> None:
    script = Script(error(422, "invalid_parameter", field="scale"))
    with pytest.raises(InvalidParameter) as info:
        submit(script.client())
    assert info.value.field == "scale"


def test_5xx_on_get_is_retried_and_retries_run_out() -> None:
    script = Script(error(502, "bad_gateway"), httpx.Response(200, json={**JOB, "status": "done"}))
    assert script.client().job("j1").status == "done"
    assert [r.method for r in script.requests] == ["GET", "GET"]
    script = Script(*(error(503, "overloaded", "0") for _ in range(3)))
    with pytest.raises(ServiceUnavailable):
        script.client(max_retries=2).balance()
    assert len(script.requests) == 3
    script = Script(httpx.ConnectError("down"))
    with pytest.raises(ConnectionFailed):
        script.client(max_retries=0).balance()


def test_url_images_go_as_json_and_files_as_multipart() -> None:
    script = Script(httpx.Response(202, json=JOB), httpx.Response(202, json=JOB))
    lb = script.client()
    lb.product_photo("https://img.test/a.jpg", preset="marble", lighting=False, vars={"a": "b"})
    lb.product_photo(PNG, preset="marble", lighting=False, vars={"a": "b"})
    as_json = json.loads(script.requests[0].content)
    assert as_json == {
        "image_url": "https://img.test/a.jpg",
        "preset": "marble",
        "lighting": False,
        "vars": {"a": "b"},
    }
    body = script.requests[1].content
    assert script.requests[1].headers["content-type"].startswith("multipart/form-data")
    assert b'name="lighting"\r\n\r\nfalse' in body and b'{"a": "b"}' in body
    assert b"image/png" in body


def polling(*statuses: str, final: dict[str, object] | None = None) -> Callable:
    bodies = [{**JOB, "status": s} for s in statuses]
    if final:
        bodies[-1].update(final)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json=JOB)
        return httpx.Response(200, json=bodies.pop(0) if len(bodies) > 1 else bodies[0])

    return answer


def test_wait_reports_progress_and_raises_job_failed_with_the_job() -> None:
    error_body = {"error": {"error": "invalid_image", "message": "cannot decode"}}
    transport = httpx.MockTransport(polling("processing", "failed", final=error_body))
    lb = Lightbox("http://lb.test", "k", transport=transport)
    seen: list[str] = []
    job = lb.upscale(PNG)
    with pytest.raises(JobFailed) as info:
        job.wait(poll_interval=0.01, on_progress=lambda j: seen.append(j.status))
    assert seen == ["queued", "processing", "failed"]
    assert info.value.job.id == "j1" and info.value.code == "invalid_image"


def test_wait_timeout_keeps_the_job_id() -> None:
    transport = httpx.MockTransport(polling("processing"))
    job = Lightbox("http://lb.test", "k", transport=transport).upscale(PNG)
    with pytest.raises(WaitTimeout) as info:
        job.wait(timeout=0.05, poll_interval=0.01)
    assert info.value.job_id == "j1" and info.value.status == "processing"


def test_async_twin_waits_and_retries_the_same_way() -> None:
    calls: list[httpx.Request] = []
    answers = [error(503, "overloaded", "0"), httpx.Response(202, json=JOB)]
    done = {**JOB, "status": "completed", "output_url": "http://lb.test/o", "format": "png"}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.method == "POST":
            return answers.pop(0)
        if request.url.path == "/o":
            return httpx.Response(200, content=PNG)
        return httpx.Response(200, json=done)

    async def run() -> bytes:
        async with AsyncLightbox(
            "http://lb.test", "k", transport=httpx.MockTransport(handler)
        ) as lb:
            job = await lb.upscale(PNG, wait=True, timeout=5)
            assert job.status == "completed"
            return await job.read()

    assert asyncio.run(run()) == PNG
    posts = [r for r in calls if r.method == "POST"]
    assert (
        len(posts) == 2
        and posts[0].headers["idempotency-key"] == posts[1].headers["idempotency-key"]
    )
    assert posts[0].headers["prefer"] == "wait=5"
    assert "authorization" not in calls[-1].headers  # the output link gets no key
