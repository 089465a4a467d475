"""Accounts and their API keys.

Owns: creating and reading accounts (an opening grant is the account's
first ledger row), issuing, authenticating, listing and revoking API keys,
rotating the webhook signing secret, and loading or locking an account row
inside a transaction (`_lock_account`: the per-account writer lock, see the
package docstring). Must not: change a balance after creation (ledger.py)
or store a key's plaintext (only its hash, services/jobs/keys.py).
"""

from __future__ import annotations

import secrets

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from services.common.errors import InvalidParameter, NotFound, ServiceUnavailable
from services.jobs import keys as keylib
from services.jobs.models import accounts, api_keys, ledger
from services.jobs.store.base import StoreBase
from services.jobs.store.plumbing.sql import _new_id
from services.jobs.store.plumbing.tx import _retry_once
from services.jobs.store.records import (
    AccountRecord,
    ApiKeyRecord,
    _account_record,
    _key_record,
    _to_milli,
)


class AccountsMixin(StoreBase):
    """Accounts and API keys (see the module docstring)."""

    @_retry_once
    def create_account(
        self,
        name: str,
        *,
        plan: str = "dev",
        credits: float = 0.0,
        rate_limit_per_minute: int = 60,
        allowed_operations: list[str] | None = None,
        max_concurrent_jobs: int = 4,
    ) -> AccountRecord:
        if not name.strip():
            raise InvalidParameter("name", "An account needs a name.")
        if rate_limit_per_minute < 1:
            raise InvalidParameter(
                "rate_limit_per_minute", "rate_limit_per_minute must be at least 1."
            )
        if max_concurrent_jobs < 1:
            raise InvalidParameter("max_concurrent_jobs", "max_concurrent_jobs must be at least 1.")
        milli = _to_milli(credits, "credits")
        if milli < 0:
            raise InvalidParameter("credits", "Initial credits cannot be negative.")
        now = self._clock()
        account_id = _new_id()
        with self._tx() as conn:
            conn.execute(
                insert(accounts).values(
                    id=account_id,
                    name=name,
                    plan=plan,
                    rate_limit_per_minute=rate_limit_per_minute,
                    allowed_operations=list(allowed_operations or []),
                    webhook_secret=secrets.token_hex(32),
                    max_concurrent_jobs=max_concurrent_jobs,
                    created_at=now,
                )
            )
            if milli:
                conn.execute(
                    insert(ledger).values(
                        account_id=account_id, delta_milli=milli, reason="grant", created_at=now
                    )
                )
            return self._load_account(conn, account_id)

    @_retry_once
    def get_account(self, account_id: str) -> AccountRecord:
        with self._tx(write=False) as conn:
            return self._load_account(conn, account_id)

    def create_api_key(self, account_id: str) -> tuple[str, ApiKeyRecord]:
        """A new key for the account: (plaintext, shown once and never stored; record)."""
        for _ in range(3):
            generated = keylib.generate_key()
            try:
                record = self._insert_key(account_id, generated)
            except IntegrityError:
                # 32-bit visible prefixes can collide; the secret part is what
                # matters, so draw a fresh key.
                continue
            return generated.plaintext, record
        raise ServiceUnavailable("Could not allocate a unique API key prefix; try again.")

    @_retry_once
    def _insert_key(self, account_id: str, generated: keylib.GeneratedKey) -> ApiKeyRecord:
        with self._tx() as conn:
            self._load_account(conn, account_id)
            key_id = _new_id()
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    account_id=account_id,
                    prefix=generated.prefix,
                    key_hash=generated.key_hash,
                    created_at=self._clock(),
                    revoked_at=None,
                )
            )
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()
            return _key_record(row)

    @_retry_once
    def authenticate(self, plaintext_key: str) -> tuple[AccountRecord, ApiKeyRecord] | None:
        """The key's account and record, or None for a malformed, unknown or revoked key."""
        prefix = keylib.prefix_of(plaintext_key)
        if prefix is None:
            return None
        with self._tx(write=False) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
            # Compare even when the prefix is unknown, so both answers take as long.
            stored_hash = row.key_hash if row is not None else "0" * 64
            if not keylib.verify_key(plaintext_key, stored_hash) or row is None:
                return None
            if row.revoked_at is not None:
                return None
            return self._load_account(conn, row.account_id), _key_record(row)

    @_retry_once
    def list_keys(self, account_id: str | None = None) -> list[ApiKeyRecord]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if account_id is not None:
            query = query.where(api_keys.c.account_id == account_id)
        with self._tx(write=False) as conn:
            return [_key_record(row) for row in conn.execute(query)]

    @_retry_once
    def revoke_key(self, key_id_or_prefix: str) -> ApiKeyRecord:
        """Revoke by key id or visible prefix; revoking a revoked key changes nothing."""
        match = or_(api_keys.c.id == key_id_or_prefix, api_keys.c.prefix == key_id_or_prefix)
        with self._tx() as conn:
            conn.execute(
                update(api_keys)
                .where(match, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            row = conn.execute(select(api_keys).where(match)).first()
            if row is None:
                raise NotFound(f"No API key with id or prefix {key_id_or_prefix!r}.")
            return _key_record(row)

    @_retry_once
    def rotate_webhook_secret(self, account_id: str) -> AccountRecord:
        """A fresh webhook signing secret for the account; the old one stops
        signing at once (deliveries already in flight were signed with it)."""
        with self._tx() as conn:
            self._lock_account(conn, account_id)
            conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(webhook_secret=secrets.token_hex(32))
            )
            return self._load_account(conn, account_id)

    def _load_account(self, conn: Connection, account_id: str) -> AccountRecord:
        row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        if row is None:
            raise NotFound(f"No account with id {account_id!r}.")
        return _account_record(row)

    def _lock_account(self, conn: Connection, account_id: str) -> AccountRecord:
        # NO KEY UPDATE: serialises balance checks and concurrency counts of one
        # account without blocking foreign-key checks of ledger and job inserts.
        row = conn.execute(_LOCK_ACCOUNT, {"account_id": account_id}).first()
        if row is None:
            raise NotFound(f"No account with id {account_id!r}.")
        return _account_record(row)


_LOCK_ACCOUNT = (
    select(accounts).where(accounts.c.id == bindparam("account_id")).with_for_update(key_share=True)
)
