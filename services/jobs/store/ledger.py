"""The credit ledger: balances are the sum of append-only rows.

Owns: manual grants and adjustments, balances, `verify_ledger`, a job's
refund (at most one per job: the unique constraint, not the caller, makes it
so) and the InsufficientCredits error. Charges are written by submit.py in the
submit's transaction, with `_INSERT_LEDGER` from here. Must not: update or
delete a ledger row (triggers refuse it), or write `accounts.balance_milli`
(a trigger keeps it equal to the sum).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from services.common.errors import InsufficientCredits, InvalidParameter
from services.jobs.models import accounts, jobs, ledger
from services.jobs.store.accounts import AccountsMixin
from services.jobs.store.plumbing.sql import _insert_ignoring_conflicts
from services.jobs.store.plumbing.tx import _retry_once
from services.jobs.store.records import LedgerMismatch, _credits, _to_milli

# Reasons add_credits accepts; "charge" and "refund" rows belong to jobs only.
MANUAL_LEDGER_REASONS = ("grant", "adjustment")


class LedgerMixin(AccountsMixin):
    """Balances, grants, refunds (see the module docstring)."""

    @_retry_once
    def add_credits(self, account_id: str, amount: float, reason: str = "grant") -> float:
        """Append a ledger row and return the new balance. A negative amount (an
        "adjustment") may not take the balance below zero."""
        if reason not in MANUAL_LEDGER_REASONS:
            raise InvalidParameter(
                "reason", f"reason must be one of {', '.join(MANUAL_LEDGER_REASONS)}."
            )
        milli = _to_milli(amount, "amount")
        if milli == 0:
            raise InvalidParameter("amount", "amount must be non-zero (in steps of 0.001).")
        with self._tx() as conn:
            self._lock_account(conn, account_id)
            balance = self._balance_milli(conn, account_id)
            if balance + milli < 0:
                raise InsufficientCredits(
                    f"Removing {_credits(-milli)} credits would leave a negative balance "
                    f"(available: {_credits(balance)}).",
                    extra={"required": _credits(-milli), "available": _credits(balance)},
                )
            conn.execute(
                insert(ledger).values(
                    account_id=account_id,
                    delta_milli=milli,
                    reason=reason,
                    created_at=self._clock(),
                )
            )
            return _credits(balance + milli)

    @_retry_once
    def balance(self, account_id: str) -> float:
        with self._tx(write=False) as conn:
            self._load_account(conn, account_id)
            return _credits(self._balance_milli(conn, account_id))

    @_retry_once
    def verify_ledger(self) -> list[LedgerMismatch]:
        """Accounts whose running balance differs from the sum of their ledger
        rows (none, unless someone wrote to the tables around the store)."""
        sums = (
            select(ledger.c.account_id, func.sum(ledger.c.delta_milli).label("total"))
            .group_by(ledger.c.account_id)
            .subquery()
        )
        derived = func.coalesce(sums.c.total, 0)
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(accounts.c.id, accounts.c.balance_milli, derived)
                .select_from(accounts.outerjoin(sums, sums.c.account_id == accounts.c.id))
                .where(accounts.c.balance_milli != derived)
                .order_by(accounts.c.id)
            ).all()
        return [LedgerMismatch(r[0], _credits(r[1]), _credits(int(r[2]))) for r in rows]

    def _balance_milli(self, conn: Connection, account_id: str) -> int:
        return int(conn.execute(_BALANCE, {"account_id": account_id}).scalar_one())

    def _refund(self, conn: Connection, row: Row[Any], now: datetime) -> None:
        if not row.credits_milli:
            return
        refund = (
            _insert_ignoring_conflicts(self._dialect, ledger)
            .values(
                account_id=row.account_id,
                job_id=row.id,
                delta_milli=row.credits_milli,
                reason="refund",
                created_at=now,
            )
            .returning(ledger.c.id)
        )
        # No row back: this job was refunded before (the unique constraint held).
        if conn.execute(refund).first() is not None:
            conn.execute(update(jobs).where(jobs.c.id == row.id).values(refunded_at=now))


_BALANCE = select(accounts.c.balance_milli).where(accounts.c.id == bindparam("account_id"))
_INSERT_LEDGER = insert(ledger)


def _insufficient_credits(milli: int, available: int) -> InsufficientCredits:
    return InsufficientCredits(
        f"This request needs {_credits(milli)} credits; the account has {_credits(available)}.",
        extra={"required": _credits(milli), "available": _credits(available)},
    )
