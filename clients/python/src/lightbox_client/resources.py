"""The account, profile, upload and batch bodies, as small typed records. Each keeps
the whole body in `data`, so fields the server adds later are still reachable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Balance:
    credits_remaining: float
    plan: str
    rate_limit_per_minute: int

    @classmethod
    def of(cls, body: dict[str, Any]) -> Balance:
        return cls(
            float(body["credits_remaining"]), str(body["plan"]), int(body["rate_limit_per_minute"])
        )


@dataclass(frozen=True)
class UsagePage:
    jobs: list[dict[str, Any]]
    next_cursor: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> UsagePage:
        return cls(list(body.get("jobs") or []), body.get("next_cursor"))


@dataclass(frozen=True)
class Profile:
    """One immutable version of a generation profile."""

    name: str
    version: int
    operation: str
    fields: dict[str, Any]
    locked: list[str]
    placements: dict[str, dict[str, Any]]
    prompts: dict[str, str]
    data: dict[str, Any] = field(repr=False)

    @property
    def ref(self) -> str:
        """`name@version`, as jobs record it."""
        return f"{self.name}@{self.version}"

    @classmethod
    def of(cls, body: dict[str, Any]) -> Profile:
        return cls(
            name=str(body["name"]),
            version=int(body["version"]),
            operation=str(body.get("operation") or ""),
            fields=dict(body.get("fields") or {}),
            locked=list(body.get("locked") or []),
            placements=dict(body.get("placements") or {}),
            prompts=dict(body.get("prompts") or {}),
            data=body,
        )


def split_profile_ref(ref: str) -> tuple[str, int | None]:
    """`name`, `name@latest` -> (name, None); `name@3` -> (name, 3)."""
    name, _, version = ref.partition("@")
    if not name:
        raise ValueError(f"profile {ref!r}: expected NAME or NAME@VERSION")
    if version in ("", "latest"):
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ValueError(f"profile {ref!r}: the version must be a number >= 1 or 'latest'")
    return name, int(version)


def latest_version(body: dict[str, Any]) -> dict[str, Any]:
    """The newest version in a `GET /v1/profiles/{name}` body."""
    versions = [v for v in body.get("versions") or [] if isinstance(v, dict)]
    if not versions:
        raise ValueError(f"profile {body.get('name')!r} has no versions")
    newest = max(versions, key=lambda v: int(v["version"]))
    newest.setdefault("name", body.get("name"))
    return newest


@dataclass(frozen=True)
class Upload:
    upload_id: str
    width: int
    height: int
    format: str
    bytes: int
    expires_at: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Upload:
        return cls(
            str(body["upload_id"]),
            int(body["width"]),
            int(body["height"]),
            str(body["format"]),
            int(body["bytes"]),
            body.get("expires_at"),
        )


@dataclass(frozen=True)
class Batch:
    """A batch body; `items` is one page of them, `next_cursor` finds the next."""

    batch_id: str
    status: str
    counts: dict[str, int]
    items: list[dict[str, Any]]
    next_cursor: str | None
    data: dict[str, Any] = field(repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("completed", "canceled")

    @classmethod
    def of(cls, body: dict[str, Any]) -> Batch:
        return cls(
            batch_id=str(body["batch_id"]),
            status=str(body.get("status") or ""),
            counts={k: int(v) for k, v in (body.get("counts") or {}).items()},
            items=list(body.get("items") or []),
            next_cursor=body.get("next_cursor"),
            data=body,
        )
