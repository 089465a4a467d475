"""/v1 catalog routes (docs/catalogs.md): profiles, uploads, batches and the
published JSON Schemas. Thin: the checks live in profiles, uploads and
batches; the state lives in the jobs service (CatalogService)."""

# No `from __future__ import annotations`: FastAPI resolves annotations from module
# globals, and the routes' Annotated[Account, Depends(auth)] is a local.
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from lightbox.v1 import catalog_pb2
from pydantic import ValidationError

from services.common.errors import LightboxError, NotFound
from services.gateway.auth import Account, Authenticator
from services.gateway.batches import BatchCreator, BatchIn, read_json
from services.gateway.catalog_views import batch_body, profile_body
from services.gateway.context import Gateway
from services.gateway.openapi import _inline, errors, ok
from services.gateway.profiles import (
    ProfileIn,
    check_profile,
    json_schemas,
    parse_ref,
    profile_json,
)
from services.gateway.submit import Submitter, validation_error
from services.gateway.uploads import Uploads, upload_body

_BATCH_ID = re.compile(r"^[0-9a-f]{32}$")
SCHEMAS = json_schemas()


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI request body from a model's JSON Schema, its $defs inlined."""
    inlined = _inline(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inlined}}}}


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "JPEG, PNG or WebP, <= 10 MB",
                        }
                    },
                    "required": ["image"],
                }
            }
        },
    }
}


def _batch_id(batch_id: str) -> str:
    if not _BATCH_ID.match(batch_id):
        raise NotFound("No such batch.", guidance="GET /v1/batches lists this account's batches.")
    return batch_id


def catalog_router(gw: Gateway, auth: Authenticator, submitter: Submitter) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Acct = Annotated[Account, Depends(auth)]
    uploads = Uploads(gw, submitter)
    creator = BatchCreator(gw, submitter, submitter.profiles)

    # -- profiles ------------------------------------------------------------

    @router.post(
        "/profiles",
        tags=["catalogs"],
        status_code=201,
        response_model=None,
        responses={
            201: ok("The stored version: name, version, created_at and the profile."),
            **errors(400, 401, 415, 422, 429, 503),
        },
        openapi_extra=_json_body(ProfileIn.model_json_schema()),
    )
    async def create_profile(request: Request, acct: Acct) -> JSONResponse:
        """Create a profile, or the next version of one (versions are immutable)."""
        _json_only(request)
        raw = await read_json(request)
        try:
            profile = ProfileIn.model_validate(raw)
        except ValidationError as exc:
            raise validation_error(exc) from None
        check_profile(profile)
        msg = await gw.call(
            gw.clients.catalog.CreateProfile,
            catalog_pb2.CreateProfileRequest(
                account_id=acct.id, name=profile.name, body_json=profile_json(profile)
            ),
        )
        return JSONResponse(profile_body(msg), status_code=201)

    @router.get(
        "/profiles",
        tags=["catalogs"],
        response_model=None,
        responses={200: ok("profiles: name, latest_version, operation."), **errors(401, 429)},
    )
    async def list_profiles(acct: Acct) -> JSONResponse:
        """This account's profiles with their latest version."""
        resp = await gw.call(
            gw.clients.catalog.ListProfiles, catalog_pb2.ListProfilesRequest(account_id=acct.id)
        )
        return JSONResponse(
            {
                "profiles": [
                    {
                        "name": p.name,
                        "latest_version": p.latest_version,
                        "operation": p.operation,
                        "updated_at": p.updated_at.ToJsonString(),
                    }
                    for p in resp.profiles
                ]
            }
        )

    @router.get(
        "/profiles/{name}",
        tags=["catalogs"],
        response_model=None,
        responses={200: ok("Every version, oldest first."), **errors(401, 404, 422, 429)},
    )
    async def get_profile(name: str, acct: Acct) -> JSONResponse:
        """Every version of one profile, oldest first."""
        profile_name, _ = parse_ref(name)
        resp = await gw.call(
            gw.clients.catalog.ListProfileVersions,
            catalog_pb2.ListProfileVersionsRequest(account_id=acct.id, name=profile_name),
        )
        versions = [profile_body(v) for v in resp.versions]
        return JSONResponse(
            {"name": profile_name, "latest_version": versions[-1]["version"], "versions": versions}
        )

    @router.get(
        "/profiles/{name}/versions/{version}",
        tags=["catalogs"],
        response_model=None,
        responses={200: ok("One version."), **errors(401, 404, 422, 429)},
    )
    async def get_profile_version(name: str, version: str, acct: Acct) -> JSONResponse:
        """One version (`latest` allowed)."""
        profile_name, number = parse_ref(f"{name}@{version}")
        msg = await gw.call(
            gw.clients.catalog.GetProfile,
            catalog_pb2.GetProfileRequest(
                account_id=acct.id, name=profile_name, version=number or 0
            ),
        )
        return JSONResponse(profile_body(msg))

    @router.get(
        "/schemas/{filename}",
        tags=["catalogs"],
        response_model=None,
        responses={
            200: {"description": "A JSON Schema (draft 2020-12)."},
            **errors(404, 429),
        },
    )
    async def json_schema(filename: str) -> JSONResponse:
        """JSON Schemas: profile.json, catalog-row.json (no key needed)."""
        schema = SCHEMAS.get(filename)
        if schema is None:
            raise NotFound(
                f"There is no schema {filename[:64]!r}.",
                guidance=f"One of: {', '.join(sorted(SCHEMAS))}.",
            )
        return JSONResponse(schema, media_type="application/schema+json")

    # -- uploads ---------------------------------------------------------------

    @router.post(
        "/uploads",
        tags=["catalogs"],
        status_code=201,
        response_model=None,
        responses={
            201: ok("upload_id, width, height, format, bytes, expires_at."),
            **errors(400, 401, 413, 415, 422, 429, 503),
        },
        openapi_extra=UPLOAD_BODY,
    )
    async def create_upload(request: Request, acct: Acct) -> JSONResponse:
        """Store an image (multipart field `image`) for batches; answers its upload_id."""
        stored = await uploads.create(request, acct)
        return JSONResponse(upload_body(stored), status_code=201)

    # -- batches ---------------------------------------------------------------

    @router.post(
        "/batches",
        tags=["catalogs"],
        status_code=202,
        response_model=None,
        responses={
            202: ok("Queued: the batch body without items."),
            **errors(400, 401, 402, 403, 404, 409, 413, 415, 422, 429, 503),
        },
        openapi_extra=_json_body(BatchIn.model_json_schema()),
    )
    async def create_batch(request: Request, acct: Acct) -> JSONResponse:
        """Queue up to 1,000 items, each an ordinary job; all or nothing."""
        _json_only(request)
        created = await creator.create(await read_json(request), acct)
        body = batch_body(created, gw.base_url(request), gw.settings.signing_secret)
        return JSONResponse(body, status_code=202)

    @router.get(
        "/batches",
        tags=["catalogs"],
        response_model=None,
        responses={200: ok("batches (newest first), next_cursor."), **errors(401, 422, 429)},
    )
    async def list_batches(
        request: Request,
        acct: Acct,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str, Query(max_length=512)] = "",
    ) -> JSONResponse:
        """This account's batches, newest first (without items)."""
        resp = await gw.call(
            gw.clients.catalog.ListBatches,
            catalog_pb2.ListBatchesRequest(account_id=acct.id, limit=limit, cursor=cursor),
        )
        base = gw.base_url(request)
        return JSONResponse(
            {
                "batches": [batch_body(b, base, gw.settings.signing_secret) for b in resp.batches],
                "next_cursor": resp.next_cursor or None,
            }
        )

    @router.get(
        "/batches/{batch_id}",
        tags=["catalogs"],
        response_model=None,
        responses={
            200: ok("The batch body with one page of items."),
            **errors(401, 404, 422, 429),
        },
    )
    async def get_batch(
        batch_id: str,
        request: Request,
        acct: Acct,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str, Query(max_length=16)] = "",
    ) -> JSONResponse:
        """Counts, progress and one page of items (by index)."""
        msg = await gw.call(
            gw.clients.catalog.GetBatch,
            catalog_pb2.GetBatchRequest(
                account_id=acct.id, batch_id=_batch_id(batch_id), limit=limit, cursor=cursor
            ),
        )
        return JSONResponse(
            batch_body(msg, gw.base_url(request), gw.settings.signing_secret, items=True)
        )

    @router.delete(
        "/batches/{batch_id}",
        tags=["catalogs"],
        response_model=None,
        responses={200: ok("The batch body after canceling."), **errors(401, 404, 429)},
    )
    async def cancel_batch(batch_id: str, request: Request, acct: Acct) -> JSONResponse:
        """Cancel (and refund) every item still queued."""
        msg = await gw.call(
            gw.clients.catalog.CancelBatch,
            catalog_pb2.CancelBatchRequest(account_id=acct.id, batch_id=_batch_id(batch_id)),
        )
        return JSONResponse(batch_body(msg, gw.base_url(request), gw.settings.signing_secret))

    return router


def _json_only(request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise LightboxError(
            f"Content type {ctype or 'none'!r} is not accepted here.",
            code="unsupported_media_type",
            guidance="Send a JSON object (Content-Type: application/json).",
        )
