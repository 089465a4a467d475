"""The job bodies of the audio, video and try-on operations (services/gateway/views.py):
PixelAPI's fields beside the job body, no pixel size or QA for audio, the try-on
result as base64 PNG with its time, and a failed try-on's error and refund."""

from __future__ import annotations

import base64
import io

from google.protobuf import struct_pb2
from lightbox.v1 import jobs_pb2
from PIL import Image

from services.gateway.views import job_body, tryon_body, v2_result_body

SECRET = "s" * 40
BASE = "http://api.test"


def _job(operation: str, status: int, params: dict, **fields: object) -> jobs_pb2.Job:
    struct = struct_pb2.Struct()
    struct.update(params)
    job = jobs_pb2.Job(
        id="job123", operation=operation, status=status, params=struct, credits_used=25, **fields
    )
    job.output_expires_at.seconds = 4_000_000_000
    return job


def test_a_completed_audio_job_has_no_pixel_size_and_no_qa() -> None:
    job = _job(
        "audio-generate",
        jobs_pb2.JOB_STATUS_COMPLETED,
        {"prompt": "rain", "duration": 20.0, "model": "musicgen-small"},
        output_key="outputs/20260101/abcdefghijklmnopqrstuv.wav",
        format="wav",
        processing_ms=1234,
    )
    body = job_body(job, BASE, SECRET)
    assert (body["model"], body["duration"], body["format"]) == ("musicgen-small", 20, "wav")
    assert body["width"] is None and body["height"] is None and body["qa"] is None
    assert ".wav?expires=" in body["output_url"]
    result = v2_result_body(job, BASE, SECRET)
    assert (result["format"], result["width"]) == ("wav", None)


def test_video_body_carries_duration_resolution_and_size() -> None:
    job = _job(
        "video-generate",
        jobs_pb2.JOB_STATUS_COMPLETED,
        {"prompt": "sea", "duration": 3.0, "resolution": "720p"},
        output_key="outputs/20260101/abcdefghijklmnopqrstuv.mp4",
        format="mp4",
        width=1280,
        height=720,
        processing_ms=9000,
    )
    body = job_body(job, BASE, SECRET)
    assert (body["duration"], body["resolution"], body["width"], body["height"]) == (
        3,
        "720p",
        1280,
        720,
    )
    assert body["processing_ms"] == 9000 and body["generation_id"] == "job123"


def test_tryon_body_has_the_png_as_base64_and_the_time() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (120, 160), (10, 20, 30)).save(buf, "PNG")
    job = _job(
        "virtual-tryon",
        jobs_pb2.JOB_STATUS_COMPLETED,
        {"category": "dress"},
        output_key="outputs/20260101/abcdefghijklmnopqrstuv.png",
        format="png",
        width=120,
        height=160,
        processing_ms=777,
    )
    body = tryon_body(job, BASE, SECRET, buf.getvalue())
    assert body["job_id"] == body["id"] == "job123" and body["status"] == "completed"
    assert body["inference_time_ms"] == 777 and body["credits_used"] == 25
    with Image.open(io.BytesIO(base64.b64decode(body["result_image_b64"]))) as png:
        assert (png.format, png.size) == ("PNG", (120, 160))


def test_a_failed_tryon_shows_its_error_and_refund() -> None:
    job = _job("virtual-tryon", jobs_pb2.JOB_STATUS_FAILED, {"category": "upperbody"})
    job.error.code, job.error.message = "body_segmentation_failed", "No upper body found."
    body = tryon_body(job, BASE, SECRET, None)
    assert body["status"] == "failed" and body["result_image_b64"] is None
    assert body["error"] == {"error": "body_segmentation_failed", "message": "No upper body found."}
    assert (body["credits_used"], body["credits_refunded"]) == (0.0, 25)
    assert body["inference_time_ms"] is None
