"""Domain errors shared by every service, and their gRPC / HTTP mapping.

A service raises a `LightboxError` subclass; the gRPC layer (`grpcutil`) turns it
into a status code plus trailing metadata carrying the API error code and
guidance; the gateway turns that back into the API.md error body. One table
here decides the codes on both sides.
"""

from __future__ import annotations

from typing import Any

import grpc

# API error code -> (gRPC status, HTTP status). Unknown codes fall back on the
# gRPC status alone (see `http_status_for`).
ERROR_TABLE: dict[str, tuple[grpc.StatusCode, int]] = {
    "image_required": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "ambiguous_image": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "invalid_image": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "invalid_request": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "image_url_not_allowed": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "image_fetch_failed": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "ambiguous_api_key": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "unauthorized": (grpc.StatusCode.UNAUTHENTICATED, 401),
    "insufficient_credits": (grpc.StatusCode.FAILED_PRECONDITION, 402),
    "forbidden": (grpc.StatusCode.PERMISSION_DENIED, 403),
    "not_found": (grpc.StatusCode.NOT_FOUND, 404),
    "link_expired": (grpc.StatusCode.NOT_FOUND, 410),
    "idempotency_conflict": (grpc.StatusCode.ALREADY_EXISTS, 409),
    "conflict": (grpc.StatusCode.ABORTED, 409),
    "file_too_large": (grpc.StatusCode.INVALID_ARGUMENT, 413),
    "unsupported_media_type": (grpc.StatusCode.INVALID_ARGUMENT, 415),
    "invalid_parameter": (grpc.StatusCode.INVALID_ARGUMENT, 422),
    "image_too_large": (grpc.StatusCode.INVALID_ARGUMENT, 422),
    "image_too_small": (grpc.StatusCode.INVALID_ARGUMENT, 422),
    "rate_limited": (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    "model_unavailable": (grpc.StatusCode.UNAVAILABLE, 503),
    "overloaded": (grpc.StatusCode.UNAVAILABLE, 503),
    "service_unavailable": (grpc.StatusCode.UNAVAILABLE, 503),
    "internal_error": (grpc.StatusCode.INTERNAL, 500),
    # Catalogs (docs/catalogs.md).
    "profile_not_found": (grpc.StatusCode.NOT_FOUND, 404),
    "upload_not_found": (grpc.StatusCode.NOT_FOUND, 404),
    "unknown_placement": (grpc.StatusCode.INVALID_ARGUMENT, 422),
    "invalid_batch": (grpc.StatusCode.INVALID_ARGUMENT, 422),
    # PixelAPI's virtual try-on (issue 19).
    "wrong_aspect_ratio": (grpc.StatusCode.INVALID_ARGUMENT, 422),
    "invalid_category": (grpc.StatusCode.INVALID_ARGUMENT, 422),
    "body_segmentation_failed": (grpc.StatusCode.INVALID_ARGUMENT, 422),
    # A GPU ran out of memory for this request: the job fails uncharged; retry later or
    # ask for less (shorter video, lower resolution).
    "gpu_out_of_memory": (grpc.StatusCode.RESOURCE_EXHAUSTED, 503),
}

GRPC_TO_HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (422, "invalid_parameter"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "conflict"),
    grpc.StatusCode.ABORTED: (409, "conflict"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "conflict"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "forbidden"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "unauthorized"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limited"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (503, "service_unavailable"),
}

# Trailing-metadata keys that carry the API error across a gRPC hop.
MD_CODE = "lightbox-error-code"
MD_GUIDANCE = "lightbox-error-guidance"
MD_FIELD = "lightbox-error-field"
MD_EXTRA = "lightbox-error-extra"  # JSON object: the error's extra body fields


class LightboxError(Exception):
    """An error with an API code, a human message and guidance for the caller."""

    code: str = "internal_error"
    default_guidance: str = "Retry later; if it persists, contact the operator."

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        guidance: str | None = None,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.guidance = guidance or self.default_guidance
        self.field = field
        self.extra = dict(extra or {})
        if field:
            self.extra.setdefault("field", field)

    @property
    def grpc_status(self) -> grpc.StatusCode:
        return ERROR_TABLE.get(self.code, (grpc.StatusCode.INTERNAL, 500))[0]

    @property
    def http_status(self) -> int:
        return ERROR_TABLE.get(self.code, (grpc.StatusCode.INTERNAL, 500))[1]

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "error": self.code,
            "message": self.message,
            "guidance": self.guidance,
        }
        detail.update(self.extra)
        return {"detail": detail}


class InvalidParameter(LightboxError):
    code = "invalid_parameter"
    default_guidance = "Fix the named field; GET /docs lists every field and its range."

    def __init__(self, field: str, message: str, guidance: str | None = None) -> None:
        super().__init__(message, guidance=guidance, field=field)


class InvalidImage(LightboxError):
    code = "invalid_image"
    default_guidance = "Send a complete JPEG, PNG or WebP file."


class NotFound(LightboxError):
    code = "not_found"
    default_guidance = "Check the id; jobs are visible only to the account that made them."


class Conflict(LightboxError):
    code = "conflict"
    default_guidance = "Read the job's current state with GET before acting on it."


class Unauthorized(LightboxError):
    code = "unauthorized"
    default_guidance = (
        "Send 'Authorization: Bearer <key>' with a key from `lightbox admin create-key`."
    )


class InsufficientCredits(LightboxError):
    code = "insufficient_credits"
    default_guidance = "Add credits with `lightbox admin add-credits` or use a cheaper operation."


class ModelUnavailable(LightboxError):
    code = "model_unavailable"
    default_guidance = "Install the model with `lightbox models install` (see README, Models)."


class ServiceUnavailable(LightboxError):
    """A dependency is down or timed out: transient, worth retrying."""

    code = "service_unavailable"


class BodySegmentationFailed(LightboxError):
    """Virtual try-on found no body region to dress for the category (a permanent,
    per-photo failure: the job fails and its credits come back)."""

    code = "body_segmentation_failed"
    default_guidance = (
        "Send a photo of one person, standing, seen from the front, with the body part "
        "for the category in view."
    )


class GpuOutOfMemory(LightboxError):
    """The inference server ran out of GPU memory for this request."""

    code = "gpu_out_of_memory"
    default_guidance = "Retry later, or ask for less (a shorter or smaller video)."


def http_status_for(code: str, grpc_code: grpc.StatusCode | None = None) -> int:
    if code in ERROR_TABLE:
        return ERROR_TABLE[code][1]
    if grpc_code is not None and grpc_code in GRPC_TO_HTTP:
        return GRPC_TO_HTTP[grpc_code][0]
    return 500
