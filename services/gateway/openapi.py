"""OpenAPI descriptions the routes cannot derive themselves: request bodies that
come as multipart or JSON, the optional submit headers, the error bodies of
each status code, and the headers every response carries. Also /docs, Swagger
UI served from the files the swagger-ui-bundle-v2 package ships (Apache-2.0), so
the page renders on a machine without internet."""

from __future__ import annotations

import copy
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from services.gateway.views import ErrorBody

DOCS_ASSETS = "/docs/assets"

ERROR_TEXT = {
    400: "Malformed request, undecodable image, both or neither image inputs, a refused "
    "URL, or two different API keys (`invalid_request`, `invalid_image`, `image_required`, "
    "`ambiguous_image`, `image_url_not_allowed`, `image_fetch_failed`, `ambiguous_api_key`).",
    401: "Missing, malformed or unknown API key (`unauthorized`).",
    402: "Not enough credits (`insufficient_credits`; `required` and `available` say how many).",
    403: "This key may not use the operation (`forbidden`).",
    404: "Unknown id, or not yours: the same answer (`not_found`).",
    406: "Not enough credits (`insufficient_credits`; `required` and `available` say how "
    "many): Segmind's code, on /v2 and the synchronous /v1/{slug} calls.",
    409: "Idempotency-Key reused with a different request (`idempotency_conflict`), or a "
    "cancel of a job that is not queued (`conflict`).",
    410: "The signed link has expired (`link_expired`).",
    413: "Upload over 10 MB (`file_too_large`).",
    415: "A content type this endpoint does not take (`unsupported_media_type`).",
    422: "A field out of range or of the wrong type (`invalid_parameter`, `field` names it), "
    "or an image over 4096 px or under 16 px a side (`image_too_large`, `image_too_small`).",
    429: "Rate limited (`rate_limited`); `Retry-After` says when to retry.",
    503: "The model an operation needs is not deployed (`model_unavailable`, guidance names "
    "it; nothing charged), or a service is down (`service_unavailable`, `overloaded`). "
    "`Retry-After` is set.",
    504: "The synchronous call's job outlived its wait (`still_running`): it goes on; poll "
    "`status_url` with `request_id` from the body.",
}

_INT_HEADER = {"schema": {"type": "integer"}}
RESPONSE_HEADERS = {
    "X-Request-ID": {
        "description": "The request's id: the client's X-Request-ID if it sent one.",
        "schema": {"type": "string"},
    },
    "X-RateLimit-Limit": {"description": "Requests allowed per minute.", **_INT_HEADER},
    "X-RateLimit-Remaining": {"description": "Requests left this minute.", **_INT_HEADER},
    "X-RateLimit-Reset": {"description": "Seconds until the window resets.", **_INT_HEADER},
}

SUBMIT_HEADERS: list[dict[str, Any]] = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Up to 255 characters. The same key from the same account within 24 h "
        "returns the original job (200) and charges nothing; with a different request, 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": "`wait=N` (N <= 60): hold the answer up to N s; a job that ends in "
        "that time is answered 200 with its full body.",
        "schema": {"type": "string", "pattern": "^wait=[0-9]{1,2}$"},
    },
]


def errors(*codes: int, body: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"model": body, "description": ERROR_TEXT[code], "headers": RESPONSE_HEADERS}
        for code in codes
    }


def ok(description: str, model: type[BaseModel] | None = None, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "headers": RESPONSE_HEADERS, **more}
    if model is not None:
        out["model"] = model
    return out


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """Replace local $refs with the definitions themselves, so the schema can sit
    inside a request body (where '#/$defs/...' would point nowhere)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            # Keep what sits beside the $ref (a field's default and description).
            target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
            beside = {k: v for k, v in schema.items() if k != "$ref"}
            return _inline({**target, **beside}, defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


_IMAGE_FILE = {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP, <= 10 MB"}
_URL = {"type": "string", "maxLength": 2048, "description": "http(s) URL on a public address"}


def request_body(
    schema: type[BaseModel],
    *,
    takes_image: bool = True,
    takes_mask: bool = False,
    json_only: bool = False,
    inline_image: bool = False,
) -> dict[str, Any]:
    """Both ways of submitting (API.md): multipart upload, or JSON with image_url."""
    raw = schema.model_json_schema()
    fields = _inline(raw, raw.get("$defs", {}))
    props = fields.get("properties", {})
    required = list(fields.get("required", []))
    content: dict[str, Any] = {}
    as_json: dict[str, Any] = {
        "type": "object",
        "properties": dict(props),
        "additionalProperties": False,
    }
    if takes_image:
        as_json["properties"] = {
            "image_url": {**_URL, "description": "The input image's URL."},
            **props,
        }
        if inline_image:
            as_json["properties"]["image"] = {
                "type": "string",
                "description": "Segmind style: the image as a URL or base64 (a data: URI too).",
            }
        if takes_mask:
            as_json["properties"]["mask_url"] = {**_URL, "description": "The mask's URL."}
    json_required = (["image_url"] if takes_image and not inline_image else []) + required
    if json_required:
        as_json["required"] = json_required
    content["application/json"] = {"schema": as_json}
    if not json_only:
        multipart: dict[str, Any] = {
            "type": "object",
            "properties": {"image": _IMAGE_FILE, **props} if takes_image else dict(props),
            "required": (["image"] if takes_image else []) + required,
        }
        if takes_mask:
            multipart["properties"]["mask"] = {
                **_IMAGE_FILE,
                "description": "Same size as the image; white = remove, black = keep.",
            }
        content["multipart/form-data"] = {"schema": multipart}
    return {"requestBody": {"required": True, "content": content}, "parameters": SUBMIT_HEADERS}


def with_error_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents its own 422 body (a list of pydantic errors); the API
    answers every error in the {"detail": {...}} shape, so say that instead.
    Every keyed operation may also answer 400 for two different keys."""
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    ours = {"description": ERROR_TEXT[422], "headers": RESPONSE_HEADERS, "content": error_body}
    two_keys = {
        "description": "Two different API keys in one request (`ambiguous_api_key`).",
        "headers": RESPONSE_HEADERS,
        "content": error_body,
    }
    for item in document.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            response = responses.get("422")
            if response is not None and "HTTPValidationError" in str(response):
                responses["422"] = copy.deepcopy(ours)
            if operation.get("security") and "400" not in responses:
                responses["400"] = copy.deepcopy(two_keys)
    schemas = document.get("components", {}).get("schemas", {})
    if "HTTPValidationError" not in str(document.get("paths")):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its script, styles and icon from this server.
    (The app is created with docs_url=None and redoc_url=None: FastAPI's own pages
    load them from a CDN.)"""
    app.mount(
        DOCS_ASSETS,
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="docs-assets",
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            # Swagger UI would otherwise ask a public validator about the document.
            swagger_ui_parameters={"validatorUrl": None},
        )
