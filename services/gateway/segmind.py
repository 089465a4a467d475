"""What makes a route Segmind-shaped (`/v2/...` and the synchronous `/v1/{slug}`):
the operations offered under Segmind's slugs, the status codes Segmind documents
(406 for insufficient credits, where PixelAPI's routes answer 402), and, beside
API.md's `detail`, the top-level `error` string that Segmind's SDK reads into
its exceptions (`SegmindError.detail`, `InferenceFailed.detail`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from lightbox.v1 import jobs_pb2
from pydantic import BaseModel

from services.common.errors import LightboxError
from services.gateway.schemas import SegmindProductPhotoParams
from services.gateway.submit import OPERATIONS, SEGMIND_PRODUCT_PHOTO, OperationSpec
from services.gateway.views import V2_STATUS, status_of, v2_links

# Slug -> (the operation it runs, the schema its body is validated with).
SLUGS: dict[str, tuple[OperationSpec, type[BaseModel]]] = {
    **{name: (spec, spec.schema) for name, spec in OPERATIONS.items()},
    "ai-product-photography": (SEGMIND_PRODUCT_PHOTO, SegmindProductPhotoParams),
}

# First path segments under /v1 that are PixelAPI's (offered now or planned); a
# Segmind slug answered at /v1/{slug} must never be one of them.
PIXELAPI_V1_SEGMENTS = frozenset(
    {
        "image",
        "models",
        "account",
        "files",
        "profiles",
        "batches",
        "uploads",
        "schemas",
        "audio",
        "video",
        "virtual-tryon",
    }
)

# Codes whose status differs on Segmind-shaped routes.
SEGMIND_STATUS = {"insufficient_credits": 406}

_FAILED_GUIDANCE = {
    "content_blocked": "Change the prompt; blocked requests are not charged.",
    "canceled": "The request was canceled; submit it again if you still need it.",
}


class SegmindShapedError(LightboxError):
    """A LightboxError as a Segmind-shaped route answers it: Segmind's status
    code, API.md's `detail` unchanged, and top-level `error` (the message) plus
    any `top` fields (`request_id`, `status`) beside it."""

    def __init__(
        self, err: LightboxError, *, status: int | None = None, top: dict[str, Any] | None = None
    ) -> None:
        super().__init__(err.message, code=err.code, guidance=err.guidance, extra=err.extra)
        self._status = status or SEGMIND_STATUS.get(err.code, err.http_status)
        self.top = dict(top or {})

    @property
    def http_status(self) -> int:
        return self._status

    def body(self) -> dict[str, Any]:
        return {**super().body(), "error": self.message, **self.top}


class SegmindRoute(APIRoute):
    """Every LightboxError raised while answering (the key check included)
    leaves in Segmind's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def segmind_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SegmindShapedError:
                raise
            except LightboxError as err:
                raise SegmindShapedError(err) from None

        return segmind_handler


def request_failed(job: jobs_pb2.Job, base_url: str) -> SegmindShapedError:
    """422 for a request that ended without a result (failed, blocked, canceled)."""
    status = status_of(job)
    code = job.error.code or ("canceled" if status == "canceled" else "failed")
    err = LightboxError(
        job.error.message or f"The request was {status}.",
        code=code,
        guidance=_FAILED_GUIDANCE.get(
            code, "Check the input and submit again; failed requests are not charged."
        ),
        extra={"request_id": job.id, "status": "FAILED", **v2_links(job.id, base_url)},
    )
    return SegmindShapedError(err, status=422, top={"request_id": job.id, "status": "FAILED"})


def still_running(job: jobs_pb2.Job, base_url: str, waited: int) -> SegmindShapedError:
    """504 for a synchronous call whose job outlived the wait: it goes on, and
    is polled like any /v2 request."""
    links = v2_links(job.id, base_url)
    status = V2_STATUS[status_of(job)]
    err = LightboxError(
        f"The request is still {status.lower()} after {waited} s; it goes on running.",
        code="still_running",
        guidance=f"Poll {links['status_url']} until COMPLETED, then GET "
        f"{links['response_url']}; it is charged once.",
        extra={"request_id": job.id, "status": status, **links},
    )
    return SegmindShapedError(err, status=504, top={"request_id": job.id, "status": status})
