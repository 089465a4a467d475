"""clients/python/src/lightbox_client/errors.py: every API error code maps onto its
typed exception, carrying what the caller needs (field, retry_after, errors)."""

from __future__ import annotations

import pytest
from lightbox_client import errors as e


def detail(code: str, **extra: object) -> dict[str, object]:
    return {"detail": {"error": code, "message": "m", "guidance": "g", **extra}}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_image", e.InvalidImage),
        (400, "image_url_not_allowed", e.InvalidRequest),
        (401, "unauthorized", e.Unauthorized),
        (402, "insufficient_credits", e.InsufficientCredits),
        (403, "forbidden", e.Forbidden),
        (404, "not_found", e.NotFound),
        (404, "profile_not_found", e.ProfileNotFound),
        (404, "upload_not_found", e.NotFound),
        (409, "idempotency_conflict", e.IdempotencyConflict),
        (409, "conflict", e.Conflict),
        (410, "link_expired", e.LinkExpired),
        (413, "file_too_large", e.FileTooLarge),
        (415, "unsupported_media_type", e.UnsupportedMediaType),
        (422, "invalid_parameter", e.InvalidParameter),
        (422, "image_too_large", e.ImageTooLarge),
        (422, "image_too_small", e.ImageTooSmall),
        (422, "unknown_placement", e.UnknownPlacement),
        (422, "wrong_aspect_ratio", e.WrongAspectRatio),
        (422, "invalid_category", e.InvalidCategory),
        (422, "body_segmentation_failed", e.BodySegmentationFailedAnswer),
        (503, "gpu_out_of_memory", e.GpuOutOfMemoryAnswer),
        (429, "rate_limited", e.RateLimited),
        (503, "model_unavailable", e.ModelUnavailable),
        (503, "overloaded", e.Overloaded),
        (503, "service_unavailable", e.ServiceUnavailable),
        (500, "internal_error", e.ServerError),
    ],
)
def test_codes_map_to_their_exceptions(status: int, code: str, cls: type[e.APIError]) -> None:
    exc = e.error_from_response(status, detail(code), {"X-Request-ID": "r1"})
    assert type(exc) is cls
    assert (exc.status_code, exc.code, exc.message, exc.guidance) == (status, code, "m", "g")
    assert exc.request_id == "r1"


def test_invalid_parameter_names_its_field() -> None:
    exc = e.error_from_response(422, detail("invalid_parameter", field="scale"))
    assert isinstance(exc, e.InvalidParameter) and exc.field == "scale"


def test_photo_size_codes_carry_received_size() -> None:
    exc = e.error_from_response(422, detail("image_too_small", received_size=[99, 150]))
    assert isinstance(exc, e.ImageTooSmall) and exc.received_size == (99, 150)
    exc = e.error_from_response(422, detail("wrong_aspect_ratio", received_size=[200, 150]))
    assert isinstance(exc, e.WrongAspectRatio) and exc.received_size == (200, 150)
    assert e.error_from_response(422, detail("invalid_category")).received_size is None


def test_job_ending_codes_are_one_class_for_an_answer_and_a_failed_job() -> None:
    answer = e.error_from_response(503, detail("gpu_out_of_memory"), {"Retry-After": "9"})
    assert isinstance(answer, e.GpuOutOfMemory) and isinstance(answer, e.ServiceUnavailable)
    assert answer.retry_after == 9.0
    answer = e.error_from_response(422, detail("body_segmentation_failed"))
    assert isinstance(answer, e.BodySegmentationFailed) and isinstance(answer, e.InvalidParameter)
    assert issubclass(e.JobGpuOutOfMemory, e.GpuOutOfMemory)
    assert issubclass(e.JobBodySegmentationFailed, e.BodySegmentationFailed)
    assert e.JOB_FAILED_BY_CODE["gpu_out_of_memory"] is e.JobGpuOutOfMemory


def test_rate_limited_and_unavailable_keep_retry_after() -> None:
    exc = e.error_from_response(429, detail("rate_limited"), {"Retry-After": "7"})
    assert isinstance(exc, e.RateLimited) and exc.retry_after == 7.0
    exc = e.error_from_response(503, detail("model_unavailable"), {"retry-after": "5"})
    assert isinstance(exc, e.ModelUnavailable) and exc.retry_after == 5.0


def test_batch_errors_list_every_row() -> None:
    rows = [{"index": 3, "sku": "A", "field": "placement", "message": "unknown"}]
    exc = e.error_from_response(422, detail("invalid_batch", errors=rows))
    assert isinstance(exc, e.BatchInvalid) and exc.errors == rows


def test_a_body_not_in_the_api_shape_still_gets_its_status_class() -> None:
    exc = e.error_from_response(502, "<html>bad gateway</html>")
    assert type(exc) is e.ServerError and exc.code == "http_502"
    exc = e.error_from_response(404, {"detail": "Not Found"})
    assert type(exc) is e.NotFound and exc.message == "Not Found"
