"""API-key authentication and the per-key rate limit, as one FastAPI dependency.

A key comes as `Authorization: Bearer <key>` (PixelAPI) or `x-api-key: <key>`
(Segmind's SDK); both may be sent if they agree. Keys are resolved by the jobs
service (which holds only their hashes) and the answer is cached briefly in this
process, unknown keys included, so that neither polling nor key guessing costs
an RPC per request. Failed attempts count against the caller's address, so
guessing is rate limited too."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from lightbox.v1 import accounts_pb2
from pydantic import BaseModel

from services.common.errors import LightboxError, Unauthorized
from services.gateway.context import Gateway
from services.gateway.ratelimit import Decision

_CACHE_MAX = 10_000
_MAX_KEY_LENGTH = 256
_GUIDANCE = (
    "Send 'Authorization: Bearer <key>' or 'x-api-key: <key>' with a key from "
    "`lightbox admin create-key`."
)

bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <key>`; keys come from `lightbox admin create-key`.",
)
api_key_header = APIKeyHeader(
    name="x-api-key",
    auto_error=False,
    description="`x-api-key: <key>` (Segmind's header): the same keys as Bearer.",
)


class Account(BaseModel):
    id: str
    plan: str
    rate_limit_per_minute: int
    allowed_operations: list[str]
    key_id: str


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def rate_limited(decision: Decision) -> LightboxError:
    return LightboxError(
        f"Rate limit of {decision.limit} requests per minute exceeded.",
        code="rate_limited",
        guidance=f"Retry after {decision.reset_seconds} seconds.",
        extra={"retry_after": decision.reset_seconds},
    )


class Authenticator:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self._cache: dict[str, tuple[float, Account | None]] = {}

    async def _lookup(self, key: str) -> Account | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            resp = await self.gw.call(
                self.gw.clients.accounts.Authenticate,
                accounts_pb2.AuthenticateRequest(api_key=key),
            )
            acct: Account | None = Account(
                id=resp.id,
                plan=resp.plan,
                rate_limit_per_minute=resp.rate_limit_per_minute,
                allowed_operations=list(resp.allowed_operations),
                key_id=resp.key_id,
            )
        except LightboxError as err:
            if err.code != "unauthorized":
                raise
            acct = None
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + self.gw.settings.auth_cache_seconds, acct)
        return acct

    async def _count_failure(self, request: Request) -> None:
        """A request without one valid key counts against its address."""
        decision = await self.gw.limiter.hit(
            f"ip:{client_ip(request)}", self.gw.settings.anonymous_rate_limit_per_minute
        )
        request.state.rate = decision
        if not decision.allowed:
            raise rate_limited(decision)

    async def _refuse(self, request: Request, message: str) -> Unauthorized:
        await self._count_failure(request)
        return Unauthorized(message, guidance=_GUIDANCE)

    async def _key_of(self, request: Request) -> str:
        """The one key the request carries, from either header (each may repeat)."""
        keys: set[str] = set()
        for header in request.headers.getlist("authorization"):
            scheme, _, key = header.partition(" ")
            key = key.strip()
            if scheme.lower() != "bearer" or not _well_formed(key):
                raise await self._refuse(request, "Malformed Authorization header.")
            keys.add(key)
        for header in request.headers.getlist("x-api-key"):
            key = header.strip()
            if not _well_formed(key):
                raise await self._refuse(request, "Malformed x-api-key header.")
            keys.add(key)
        if not keys:
            raise await self._refuse(request, "Missing API key.")
        if len(keys) > 1:
            # Which one was meant cannot be told; using either would be a guess.
            await self._count_failure(request)
            raise LightboxError(
                "The request carries two different API keys.",
                code="ambiguous_api_key",
                guidance="Send one key, as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
            )
        return keys.pop()

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        x_api_key: Annotated[str | None, Depends(api_key_header)],
    ) -> Account:
        # HTTPBearer and APIKeyHeader document the two schemes; the headers are
        # parsed here so that every malformed variant gets the same 401 body.
        key = await self._key_of(request)
        acct = await self._lookup(key)
        if acct is None:
            raise await self._refuse(request, "The API key is unknown or revoked.")
        decision = await self.gw.limiter.hit(f"key:{acct.key_id}", acct.rate_limit_per_minute)
        request.state.rate = decision
        if not decision.allowed:
            raise rate_limited(decision)
        return acct


def _well_formed(key: str) -> bool:
    return 0 < len(key) <= _MAX_KEY_LENGTH and key.isascii()
