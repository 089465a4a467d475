"""The client's audio, video and virtual try-on methods (clients/python: client.py,
jobs.py, errors.py, cli.py) without a server (httpx MockTransport): the request each
method sends, polling on each operation's own route, the WAV/MP4 download and the
decoded try-on PNG, the typed errors of the new codes and what is retried, and the
`audio`, `video` and `tryon` commands."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightbox_client import (
    AsyncLightbox,
    BodySegmentationFailed,
    GpuOutOfMemory,
    InvalidCategory,
    InvalidImage,
    JobError,
    JobFailed,
    Lightbox,
    ModelUnavailable,
    ServiceUnavailable,
    WrongAspectRatio,
    cli,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\1" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\2" * 40
WAV = b"RIFF\x24\0\0\0WAVEfmt " + b"\0" * 28
MP4 = b"\0\0\0\x18ftypisom" + b"\0" * 28
OUT = {"audio-generate": WAV, "video-generate": MP4, "virtual-tryon": PNG}
FORMAT = {"audio-generate": "wav", "video-generate": "mp4", "virtual-tryon": "png"}


def error(status: int, code: str, retry_after: str | None = None, **extra: object):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"detail": {"error": code, "message": f"{code} message", "guidance": "do X", **extra}}
    return httpx.Response(status, json=body, headers=headers)


class Server:
    """A fake API for one media job: the submit answers `queued`; each GET of a job
    route walks `statuses`; the last one is `completed` with the output (or
    `failure`). Records every request."""

    def __init__(
        self,
        operation: str,
        statuses: tuple[str, ...] = ("processing", "completed"),
        failure: dict[str, str] | None = None,
        submit: httpx.Response | None = None,
        stored: bool = True,
    ) -> None:
        self.operation = operation
        self.statuses = list(statuses)
        self.failure = failure
        self.submit = submit
        self.stored = stored
        self.requests: list[httpx.Request] = []

    def body(self, status: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "generation_id": "m1",
            "id": "m1",
            "status": status,
            "operation": self.operation,
            "credits_used": 10.0,
            "duration": 20 if self.operation == "audio-generate" else 5,
        }
        if status == "completed":
            body.update(output_url="http://lb.test/o/m1", format=FORMAT[self.operation])
            if self.operation != "audio-generate":
                body.update(width=120, height=180)
        if status == "failed" and self.failure:
            body["error"] = self.failure
        return body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST":
            return self.submit or httpx.Response(202, json=self.body("queued"))
        if path == "/o/m1":
            return httpx.Response(200, content=OUT[self.operation])
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        body = self.body(status)
        if path.startswith("/v1/virtual-tryon/jobs/"):
            done = status == "completed" and self.stored
            body["result_image_b64"] = base64.b64encode(PNG).decode() if done else None
        return httpx.Response(200, json=body)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def client(self, **kw: Any) -> Lightbox:
        return Lightbox("http://lb.test", "k", transport=self.transport, **kw)

    @property
    def gets(self) -> list[str]:
        return [r.url.path for r in self.requests if r.method == "GET"]

    def sent(self) -> dict[str, Any]:
        (post,) = [r for r in self.requests if r.method == "POST"]
        return dict(json.loads(post.content))


def test_audio_sends_its_fields_as_json_and_downloads_the_wav(tmp_path: Path) -> None:
    server = Server("audio-generate")
    lb = server.client()
    job = lb.generate_audio("lofi beat", duration=20, seed=7, idempotency_key="a-1")
    post = server.requests[0]
    assert (post.url.path, post.headers["content-type"]) == (
        "/v1/audio/generate",
        "application/json",
    )
    assert post.headers["idempotency-key"] == "a-1" and post.headers["authorization"] == "Bearer k"
    assert server.sent() == {"prompt": "lofi beat", "duration": 20, "seed": 7}
    assert job.operation == "audio-generate" and job.credits_used == 10.0
    job.wait(poll_interval=0.01)
    assert server.gets == ["/v1/image/m1", "/v1/image/m1"]  # audio has no route of its own
    assert job.duration == 20.0 and job.extension == "wav"
    out = job.download(tmp_path)
    assert out == tmp_path / "m1.wav" and out.read_bytes() == WAV


def test_video_polls_its_own_route_and_video_job_reads_it() -> None:
    server = Server("video-generate", statuses=("completed",))
    lb = server.client()
    job = lb.generate_video(
        "a cat on a sofa", duration=5, resolution="720p", negative_prompt="blur", wait=True
    )
    sent = server.sent()
    assert sent == {"prompt": "a cat on a sofa", "duration": 5, "resolution": "720p",
                    "negative_prompt": "blur"}  # fmt: skip
    assert server.requests[0].url.path == "/v1/video/generate"
    assert server.requests[0].headers["prefer"] == "wait=60"
    assert job.status == "completed" and set(server.gets) == {"/v1/video/m1"}
    assert job.read() == MP4 and job.extension == "mp4"
    assert lb.video_job("m1").status == "completed"
    assert server.gets[-1] == "/v1/video/m1"
    lb.video_job("a/../b")
    assert server.requests[-1].url.raw_path == b"/v1/video/a%2F..%2Fb"


def test_tryon_base64_encodes_paths_and_bytes_and_decodes_the_result(tmp_path: Path) -> None:
    person = tmp_path / "person.png"
    person.write_bytes(PNG)
    server = Server("virtual-tryon", statuses=("completed",))
    lb = server.client()
    job = lb.virtual_tryon(person, JPEG, category="upperbody", seed=3, timeout=5, wait=True)
    sent = server.sent()
    assert server.requests[0].url.path == "/v1/virtual-tryon"
    assert base64.b64decode(sent["person_image"], validate=True) == PNG
    assert base64.b64decode(sent["garment_image"], validate=True) == JPEG
    assert (sent["category"], sent["seed"]) == ("upperbody", 3)
    assert set(server.gets) == {"/v1/virtual-tryon/jobs/m1"}
    gets = len(server.gets)
    assert job.result_image() == PNG and len(server.gets) == gets  # already in the body
    assert lb.tryon_job("m1").result_image() == PNG
    with open(person, "rb") as f:
        lb.virtual_tryon(f, person, category="dress")
    assert base64.b64decode(json.loads(server.requests[-1].content)["person_image"]) == PNG


def test_tryon_result_read_from_its_route_when_the_body_lacks_it() -> None:
    # A body from GET /v1/image/{id} (here `lb.job`) carries no result_image_b64.
    server = Server("virtual-tryon", statuses=("completed",))
    lb = server.client()
    job = lb.job("m1")
    assert job.result_image_b64 is None
    assert job.result_image() == PNG
    assert server.gets == ["/v1/image/m1", "/v1/virtual-tryon/jobs/m1"]
    gone = Server("virtual-tryon", statuses=("completed",), stored=False).client()
    with pytest.raises(JobError, match="no longer stored"):
        gone.tryon_job("m1").result_image()
    queued = Server("virtual-tryon", statuses=("queued",)).client()
    with pytest.raises(JobError, match="not finished"):
        queued.tryon_job("m1").result_image()
    audio = Server("audio-generate", statuses=("completed",)).client()
    with pytest.raises(ValueError, match="not a virtual-tryon"):
        audio.job("m1").result_image()


def test_tryon_refuses_urls_and_media_take_no_upload() -> None:
    server = Server("virtual-tryon")
    lb = server.client()
    with pytest.raises(ValueError, match="person_image: .* not a URL"):
        lb.virtual_tryon("https://img.test/p.jpg", PNG, category="dress")
    with pytest.raises(ValueError, match="takes no image upload"):
        lb.submit("audio-generate", PNG, fields={"prompt": "rain"})
    assert server.requests == []
    lb.submit("audio-generate", fields={"prompt": "rain", "duration": 5})
    assert server.requests[0].url.path == "/v1/audio/generate"
    assert server.sent() == {"prompt": "rain", "duration": 5}


def test_async_twin_covers_all_three() -> None:
    async def run() -> None:
        for op in ("audio-generate", "video-generate", "virtual-tryon"):
            server = Server(op, statuses=("completed",))
            async with AsyncLightbox("http://lb.test", "k", transport=server.transport) as lb:
                if op == "audio-generate":
                    job = await lb.generate_audio("rain on a roof", wait=True, timeout=5)
                elif op == "video-generate":
                    job = await lb.generate_video("waves", wait=True, timeout=5)
                    assert (await lb.video_job("m1")).status == "completed"
                else:
                    job = await lb.virtual_tryon(PNG, JPEG, category="lowerbody", wait=True)
                    assert await job.result_image() == PNG
                    assert await (await lb.tryon_job("m1")).result_image() == PNG
                assert job.status == "completed"
                assert await job.read() == OUT[op]
                (output,) = [r for r in server.requests if r.url.path == "/o/m1"]
                assert "authorization" not in output.headers  # a signed link gets no key

    asyncio.run(run())


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "cls", "family"),
    [
        (error(422, "wrong_aspect_ratio", field="person_image", received_size=[200, 150]),
         WrongAspectRatio, None),
        (error(422, "invalid_category", field="category"), InvalidCategory, None),
        (error(400, "invalid_image", field="garment_image"), InvalidImage, None),
        (error(422, "body_segmentation_failed"), BodySegmentationFailed, "InvalidParameter"),
        (error(503, "gpu_out_of_memory", "0"), GpuOutOfMemory, "ServiceUnavailable"),
        (error(503, "model_unavailable", "0", model="catvton"), ModelUnavailable, None),
    ],
    ids=["aspect", "category", "image", "segmentation", "oom", "model"],
)  # fmt: skip
def test_new_codes_raise_their_class_at_once(
    answer: httpx.Response, cls: type[Exception], family: str | None
) -> None:
    server = Server("virtual-tryon", submit=answer)
    with pytest.raises(cls) as info:
        server.client().virtual_tryon(PNG, PNG, category="upperbody")
    assert len(server.requests) == 1  # none of them is retried, 503s included
    exc = info.value
    if family:
        assert family in [c.__name__ for c in type(exc).__mro__]
    if isinstance(exc, WrongAspectRatio):
        assert exc.received_size == (200, 150) and exc.field == "person_image"
    if isinstance(exc, ModelUnavailable):
        assert exc.model == "catvton" and exc.guidance == "do X"


def test_an_overloaded_media_submit_is_retried_under_one_key() -> None:
    server = Server("video-generate")
    answers = [error(503, "overloaded", "0"), httpx.Response(202, json=server.body("queued"))]

    def handler(request: httpx.Request) -> httpx.Response:
        server.requests.append(request)
        return answers.pop(0)

    lb = Lightbox("http://lb.test", "k", transport=httpx.MockTransport(handler))
    assert lb.generate_video("waves").id == "m1"
    keys = {r.headers["idempotency-key"] for r in server.requests}
    assert len(server.requests) == 2 and len(keys) == 1


@pytest.mark.parametrize(
    ("code", "marker"),
    [("body_segmentation_failed", BodySegmentationFailed), ("gpu_out_of_memory", GpuOutOfMemory)],
)
def test_a_failed_job_raises_the_class_of_its_code(code: str, marker: type[Exception]) -> None:
    failure = {"error": code, "message": "no body region for upperbody"}
    server = Server("virtual-tryon", statuses=("processing", "failed"), failure=failure)
    job = server.client().virtual_tryon(PNG, PNG, category="upperbody")
    with pytest.raises(marker) as info:
        job.wait(poll_interval=0.01)
    assert isinstance(info.value, JobFailed) and info.value.code == code
    assert not isinstance(info.value, ServiceUnavailable)  # a job end, not an answer
    other = Server("virtual-tryon", statuses=("failed",), failure={"error": "internal_error"})
    with pytest.raises(JobFailed) as plain:
        other.client().tryon_job("m1").wait()
    assert type(plain.value) is JobFailed


# -- the CLI -------------------------------------------------------------------------


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    handler: Callable[[httpx.Request], httpx.Response],
    *args: str,
) -> tuple[int, str, str]:
    def client(base_url: str, api_key: str) -> Lightbox:
        return Lightbox(base_url, api_key, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(cli, "Lightbox", client)
    monkeypatch.setenv("LIGHTBOX_BASE_URL", "http://lb.test")
    monkeypatch.setenv("LIGHTBOX_API_KEY", "k")
    status = cli.main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_audio_and_video_write_their_files(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = Server("audio-generate", statuses=("completed",))
    status, out, err = run_cli(
        monkeypatch, capsys, server, "audio", "lofi beat", "--duration", "10",
        "-o", str(tmp_path / "a" / "out.wav"),
    )  # fmt: skip
    assert status == 0, err
    assert (tmp_path / "a" / "out.wav").read_bytes() == WAV
    assert server.sent() == {"prompt": "lofi beat", "duration": 10.0}
    assert "out.wav (m1, 20 s, 10 credits)" in out and "m1: completed" in err
    server = Server("video-generate", statuses=("completed",))
    status, out, err = run_cli(
        monkeypatch, capsys, server, "video", "waves", "--resolution", "720p",
        "--negative-prompt", "blur", "--seed", "4", "-o", str(tmp_path),
    )  # fmt: skip
    assert status == 0, err
    assert (tmp_path / "m1.mp4").read_bytes() == MP4 and "120x180" in out
    assert server.sent() == {"prompt": "waves", "resolution": "720p",
                             "negative_prompt": "blur", "seed": 4}  # fmt: skip


def test_cli_tryon_writes_the_decoded_png(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "p.png").write_bytes(PNG)
    (tmp_path / "g.jpg").write_bytes(JPEG)
    server = Server("virtual-tryon", statuses=("completed",))
    status, out, err = run_cli(
        monkeypatch, capsys, server, "tryon", str(tmp_path / "p.png"), str(tmp_path / "g.jpg"),
        "--category", "upperbody", "-o", str(tmp_path / "out.png"),
    )  # fmt: skip
    assert status == 0, err
    assert (tmp_path / "out.png").read_bytes() == PNG
    assert server.gets == ["/v1/virtual-tryon/jobs/m1"]  # the PNG came in the body
    assert "/o/m1" not in server.gets
    sent = server.sent()
    assert base64.b64decode(sent["garment_image"]) == JPEG and sent["category"] == "upperbody"


def test_cli_failures_exit_non_zero_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "p.png").write_bytes(PNG)
    tryon = ["tryon", str(tmp_path / "p.png"), str(tmp_path / "p.png"), "-o", str(tmp_path)]
    unavailable = Server("audio-generate", submit=error(503, "model_unavailable", "5"))
    status, _, err = run_cli(monkeypatch, capsys, unavailable, "audio", "rain", "-o", "x.wav")
    assert status == 1 and "503 model_unavailable: model_unavailable message" in err
    assert "  do X" in err and len(unavailable.requests) == 1

    bad = Server("virtual-tryon", submit=error(422, "invalid_category", field="category"))
    status, _, err = run_cli(monkeypatch, capsys, bad, *tryon, "--category", "hat")
    assert status == 1 and "422 invalid_category" in err

    failure = {"error": "body_segmentation_failed", "message": "no person was found"}
    failed = Server("virtual-tryon", statuses=("failed",), failure=failure)
    status, _, err = run_cli(monkeypatch, capsys, failed, *tryon, "--category", "dress")
    assert status == 1 and "failed: body_segmentation_failed no person was found" in err
    assert list(tmp_path.glob("m1.*")) == []

    missing = Server("virtual-tryon")
    status, _, err = run_cli(
        monkeypatch, capsys, missing, "tryon", str(tmp_path / "nobody.png"),
        str(tmp_path / "p.png"), "--category", "dress", "-o", "x.png",
    )  # fmt: skip
    assert status == 2 and "no person photo at" in err and missing.requests == []

    with pytest.raises(SystemExit) as usage:  # --category is required
        run_cli(monkeypatch, capsys, missing, *tryon)
    assert usage.value.code == 2


def test_cli_wait_timeout_names_the_job(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    slow = Server("video-generate", statuses=("processing",))
    status, _, err = run_cli(
        monkeypatch, capsys, slow, "video", "waves", "--timeout", "0", "-o", "x.mp4"
    )
    assert status == 1 and "still queued" in err and "lightbox-client job m1" in err
