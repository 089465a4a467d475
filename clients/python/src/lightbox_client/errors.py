"""Typed exceptions, one per API error code, and the one table that maps an error
answer (`{"detail": {"error", "message", "guidance", ...}}`) onto them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightbox_client.jobs import JobBase


class LightboxError(Exception):
    """Base of every error this client raises."""


class APIError(LightboxError):
    """The server answered with an error body. `code` is the API's error code
    (`detail.error`), `detail` the whole detail object (extra fields included)."""

    code: str = ""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str,
        guidance: str = "",
        detail: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.message = message
        self.status_code = status_code
        self.code = code
        self.guidance = guidance
        self.detail: dict[str, Any] = dict(detail or {})
        self.request_id = request_id


class InvalidRequest(APIError):
    """400: malformed request, both or neither image inputs, a refused image URL."""


class InvalidImage(InvalidRequest):
    """400 invalid_image: the bytes are not a complete JPEG, PNG or WebP."""


class Unauthorized(APIError):
    """401: missing or unknown API key."""


class InsufficientCredits(APIError):
    """402: the account has fewer credits than the operation costs."""


class Forbidden(APIError):
    """403: this key may not use the operation."""


class NotFound(APIError):
    """404: unknown id, or another account's."""


class ProfileNotFound(NotFound):
    """404 profile_not_found: no such profile or profile version."""


class LinkExpired(APIError):
    """410: an output link past its expiry."""


class Conflict(APIError):
    """409: e.g. canceling a job that already runs."""


class IdempotencyConflict(Conflict):
    """409 idempotency_conflict: the key was used for a different request."""


class FileTooLarge(APIError):
    """413: the upload is over the size limit (`detail['max_bytes']`)."""


class UnsupportedMediaType(APIError):
    """415: a content type the endpoint does not take."""


class InvalidParameter(APIError):
    """422: a field out of range or of the wrong type; `field` names it."""

    @property
    def field(self) -> str | None:
        value = self.detail.get("field")
        return str(value) if value is not None else None

    @property
    def received_size(self) -> tuple[int, int] | None:
        """(width, height) of the refused photo, for the codes that report it
        (image_too_small, image_too_large, wrong_aspect_ratio)."""
        value = self.detail.get("received_size")
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return int(value[0]), int(value[1])
        return None


class ImageTooLarge(InvalidParameter):
    """422 image_too_large: over 4096 px a side."""


class ImageTooSmall(InvalidParameter):
    """422 image_too_small: under 16 px a side (under 100 px for a try-on photo);
    `received_size` is the photo's (width, height)."""


class WrongAspectRatio(InvalidParameter):
    """422 wrong_aspect_ratio: the try-on person photo is landscape (wider than tall);
    `received_size` is its (width, height)."""


class InvalidCategory(InvalidParameter):
    """422 invalid_category: a try-on `category` other than upperbody, lowerbody, dress."""


class UnknownPlacement(InvalidParameter):
    """422 unknown_placement: the profile has no such placement (`detail` lists them)."""


class BatchInvalid(InvalidParameter):
    """422 on a batch: `errors` lists every bad item (index, sku, field, message)."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.detail.get("errors") or [])


class RateLimited(APIError):
    """429: too many requests; `retry_after` is the server's Retry-After in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServiceUnavailable(APIError):
    """503: a dependency is down or the server is overloaded (`overloaded`)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Overloaded(ServiceUnavailable):
    """503 overloaded."""


class ModelUnavailable(ServiceUnavailable):
    """503 model_unavailable: the model behind the operation is not deployed; the
    guidance names what to install (`detail['model']` names the model). Not retried:
    waiting does not install it."""

    @property
    def model(self) -> str | None:
        value = self.detail.get("model")
        return str(value) if value is not None else None


# Two codes that end a job rather than refuse a submit. On /v1 they arrive as a failed
# job's `error` (so `wait` raises them as a JobFailed); an error answer with the code
# (/v2 reports a failed request that way) raises them as an APIError. Each is one class
# to catch for both forms: the concrete classes below inherit from it and from their
# family (JobFailed or APIError).


class BodySegmentationFailed(LightboxError):
    """body_segmentation_failed: virtual try-on found no body region for the category
    in the person photo (a per-photo failure: send another photo; refunded)."""


class GpuOutOfMemory(LightboxError):
    """gpu_out_of_memory: the inference server ran out of GPU memory for the request;
    the job failed at once and was refunded. Not retried by the client: a retry under
    the same Idempotency-Key answers the same failed job, and the server does not retry
    it either. Submit again (a new key) later, or ask for less (shorter video, 480p)."""


class BodySegmentationFailedAnswer(InvalidParameter, BodySegmentationFailed):
    """422 body_segmentation_failed as an error answer."""


class GpuOutOfMemoryAnswer(ServiceUnavailable, GpuOutOfMemory):
    """503 gpu_out_of_memory as an error answer."""


class ServerError(APIError):
    """5xx other than 503."""


class ConnectionFailed(LightboxError):
    """The server could not be reached (after the retries)."""


class JobError(LightboxError):
    """A job ended without an output; `job` is the job as last seen."""

    def __init__(self, job: JobBase, message: str | None = None) -> None:
        error = job.error or {}
        what = message or f"{error.get('error', '')} {error.get('message', '')}".strip()
        super().__init__(f"job {job.id} {job.status}: {what}")
        self.job = job
        self.code = str(error.get("error", ""))


class JobFailed(JobError):
    """The job failed (its credits are refunded)."""


class JobBodySegmentationFailed(JobFailed, BodySegmentationFailed):
    """A try-on job failed with body_segmentation_failed."""


class JobGpuOutOfMemory(JobFailed, GpuOutOfMemory):
    """A job failed with gpu_out_of_memory."""


# A failed job's `error.error` -> its class (any other code: JobFailed).
JOB_FAILED_BY_CODE: dict[str, type[JobFailed]] = {
    "body_segmentation_failed": JobBodySegmentationFailed,
    "gpu_out_of_memory": JobGpuOutOfMemory,
}


class JobBlocked(JobError):
    """The content policy blocked the job (never charged)."""


class JobCanceled(JobError):
    """The job was canceled (refunded)."""


class WaitTimeout(LightboxError):
    """`wait` gave up before the job finished; the job goes on, `job_id` finds it."""

    def __init__(self, job_id: str, status: str, waited: float) -> None:
        super().__init__(f"job {job_id} still {status} after {waited:.0f} s")
        self.job_id = job_id
        self.status = status
        self.waited = waited


_BY_CODE: dict[str, type[APIError]] = {
    "invalid_image": InvalidImage,
    "unauthorized": Unauthorized,
    "insufficient_credits": InsufficientCredits,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "profile_not_found": ProfileNotFound,
    "link_expired": LinkExpired,
    "idempotency_conflict": IdempotencyConflict,
    "conflict": Conflict,
    "file_too_large": FileTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "invalid_parameter": InvalidParameter,
    "image_too_large": ImageTooLarge,
    "image_too_small": ImageTooSmall,
    "wrong_aspect_ratio": WrongAspectRatio,
    "invalid_category": InvalidCategory,
    "body_segmentation_failed": BodySegmentationFailedAnswer,
    "gpu_out_of_memory": GpuOutOfMemoryAnswer,
    "unknown_placement": UnknownPlacement,
    "invalid_batch": BatchInvalid,
    "upload_not_found": NotFound,
    "rate_limited": RateLimited,
    "model_unavailable": ModelUnavailable,
    "overloaded": Overloaded,
    "service_unavailable": ServiceUnavailable,
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    402: InsufficientCredits,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: LinkExpired,
    413: FileTooLarge,
    415: UnsupportedMediaType,
    422: InvalidParameter,
    429: RateLimited,
    503: ServiceUnavailable,
}


def retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(
    status_code: int, body: Any, headers: dict[str, str] | None = None
) -> APIError:
    """The typed exception for an error answer. A body that is not the API's error
    shape (a proxy's page) still gives the status code's class."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        text = detail if isinstance(detail, str) else str(body)[:300]
        detail = {"error": "", "message": text}
    code = str(detail.get("error") or "")
    if status_code == 422 and isinstance(detail.get("errors"), list):
        cls: type[APIError] = BatchInvalid
    else:
        cls = (
            _BY_CODE.get(code)
            or _BY_STATUS.get(status_code)
            or (ServerError if status_code >= 500 else APIError)
        )
    kw: dict[str, Any] = dict(
        status_code=status_code,
        code=code or f"http_{status_code}",
        guidance=str(detail.get("guidance") or ""),
        detail=detail,
        request_id=headers.get("x-request-id"),
    )
    if issubclass(cls, (RateLimited, ServiceUnavailable)):
        kw["retry_after"] = retry_after_seconds(headers.get("retry-after"))
    return cls(str(detail.get("message") or ""), **kw)
