"""API-key authentication and the per-key rate limit, as one FastAPI dependency.

Keys are resolved by the jobs service (which holds only their hashes) and the
answer is cached briefly in this process, unknown keys included, so that
neither polling nor key guessing costs an RPC per request. Failed attempts
count against the caller's address, so guessing is rate limited too."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from lightbox.v1 import accounts_pb2
from pydantic import BaseModel

from services.common.errors import LightboxError, Unauthorized
from services.gateway.context import Gateway
from services.gateway.ratelimit import Decision

_CACHE_MAX = 10_000

bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <key>`; keys come from `lightbox admin create-key`.",
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

    async def _refuse(self, request: Request, message: str) -> Unauthorized:
        decision = await self.gw.limiter.hit(
            f"ip:{client_ip(request)}", self.gw.settings.anonymous_rate_limit_per_minute
        )
        request.state.rate = decision
        if not decision.allowed:
            raise rate_limited(decision)
        return Unauthorized(message)

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Account:
        # HTTPBearer documents the scheme; the header is parsed here so that every
        # malformed variant gets the same 401 body.
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key or len(key) > 256 or not key.isascii():
            raise await self._refuse(request, "Missing or malformed Authorization header.")
        acct = await self._lookup(key)
        if acct is None:
            raise await self._refuse(request, "The API key is unknown or revoked.")
        decision = await self.gw.limiter.hit(f"key:{acct.key_id}", acct.rate_limit_per_minute)
        request.state.rate = decision
        if not decision.allowed:
            raise rate_limited(decision)
        return acct
