"""Generation profiles in the gateway (docs/catalogs.md): the profile's schema
and its checks against the operation's own, reading `profile=name@N`, and
composing a request's fields from a profile version, a placement, rendered
prompt templates and the request's own fields (locked fields kept)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lightbox.v1 import catalog_pb2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.errors import InvalidParameter, LightboxError
from services.common.qa_thresholds import QaThresholdOverrides
from services.gateway.auth import Account
from services.gateway.context import Gateway

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
_REF = re.compile(r"^([a-z0-9][a-z0-9._-]{0,63})(?:@(latest|[1-9][0-9]{0,8}))?$")
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_VARS = 50
MAX_VAR_CHARS = 500
# Request fields a profile never holds: per request by nature.
NOT_PROFILE_FIELDS = {"webhook_url"}
# Profile fields handled here, never passed to an operation's schema.
CONTROL_FIELDS = ("profile", "placement", "vars")


class PlacementIn(BaseModel):
    """Where and how large the product sits, per placement."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    aspect_ratio: str | None = Field(None, max_length=64, description="W:H, e.g. 1:1, 4:5.")
    output_size: str | None = Field(None, max_length=11, description="WxH pixels.")
    megapixel: float | None = Field(None, gt=0, le=16.8)
    scale: float | None = Field(None, ge=0.05, le=1.0)
    x: float | None = Field(None, ge=0, le=100)
    y: float | None = Field(None, ge=0, le=100)
    padding: float | None = Field(None, ge=0, le=0.45)


class ProfileIn(BaseModel):
    """A generation profile: POST /v1/profiles (docs/catalogs.md)."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"$id": "https://lightbox.local/schemas/profile.json"},
    )

    name: str = Field(pattern=NAME_PATTERN, description="Lower case; a new name or a new version.")
    operation: str = Field(max_length=64, description="A /v1/image/{operation} name.")
    description: str | None = Field(None, max_length=500)
    fields: dict[str, Any] = Field(
        default_factory=dict, max_length=64, description="Defaults of the operation's fields."
    )
    locked: list[str] = Field(
        default_factory=list, max_length=64, description="Fields a request may not change."
    )
    placements: dict[str, PlacementIn] = Field(
        default_factory=dict, max_length=64, description="Placement name -> framing."
    )
    prompts: dict[str, str] = Field(
        default_factory=dict,
        max_length=16,
        description="Field -> template with {{variables}} (at most 2,000 characters).",
    )
    qa_thresholds: dict[str, Any] | None = Field(None, max_length=64)


class CatalogRow(BaseModel):
    """One row of a CLI catalog (CSV or JSON Lines). Columns other than these
    are template variables (strings)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "$id": "https://lightbox.local/schemas/catalog-row.json",
            "additionalProperties": {"type": "string", "maxLength": MAX_VAR_CHARS},
        },
    )

    sku: str = Field(min_length=1, max_length=128)
    image: str = Field(min_length=1, max_length=2048, description="A local path or an http(s) URL.")
    variant: str = Field("main", min_length=1, max_length=64)
    placement: str | None = Field(None, max_length=64)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The published JSON Schemas (docs/schemas/*.json and /v1/schemas/*.json)."""
    out = {}
    for filename, model in (("profile.json", ProfileIn), ("catalog-row.json", CatalogRow)):
        schema = model.model_json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        out[filename] = schema
    return out


@dataclass(frozen=True)
class ProfileVersion:
    name: str
    version: int
    body: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def operation(self) -> str:
        return str(self.body.get("operation", ""))

    @classmethod
    def from_proto(cls, msg: catalog_pb2.Profile) -> ProfileVersion:
        return cls(msg.name, msg.version, json.loads(msg.body_json))


@dataclass
class Composed:
    fields: dict[str, Any]
    # What the job records: profile (name@N), placement, rendered_prompts.
    recorded: dict[str, Any] = field(default_factory=dict)


def template_vars(template: str) -> list[str]:
    return _VAR.findall(template)


def render(template: str, values: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise InvalidParameter(
                f"vars.{name}",
                f"The prompt template needs the variable {name!r}; vars has none.",
                guidance=f'Send vars with "{name}", e.g. vars={{"{name}": "..."}}.',
            )
        return values[name]

    return _VAR.sub(sub, template)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`name`, `name@latest` or `name@N` -> (name, N or None for the latest)."""
    m = _REF.match(ref.strip())
    if not m:
        raise InvalidParameter(
            "profile", "profile must be NAME, NAME@latest or NAME@N (lower-case name)."
        )
    version = m.group(2)
    return m.group(1), None if version in (None, "latest") else int(version)


def parse_vars(raw: Any) -> dict[str, str]:
    """`vars` as an object (JSON) or a JSON string (multipart) -> name -> text."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            raise InvalidParameter("vars", "vars must be a JSON object.") from None
    if not isinstance(raw, dict):
        raise InvalidParameter("vars", "vars must be a JSON object of names to strings.")
    if len(raw) > MAX_VARS:
        raise InvalidParameter("vars", f"vars holds at most {MAX_VARS} variables.")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not _VAR_NAME.match(str(name)):
            raise InvalidParameter("vars", f"{str(name)[:64]!r} is not a variable name.")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidParameter(f"vars.{name}", f"vars.{name} must be a string or a number.")
        text = str(value)
        if len(text) > MAX_VAR_CHARS:
            raise InvalidParameter(
                f"vars.{name}", f"vars.{name} is longer than {MAX_VAR_CHARS} characters."
            )
        out[str(name)] = text
    return out


def _same(given: Any, fixed: Any) -> bool:
    """Whether a request value (a form string, or JSON) equals a profile value."""
    if given == fixed:
        return True
    if isinstance(fixed, bool) or isinstance(given, bool):
        return str(given).strip().lower() == str(fixed).strip().lower()
    if isinstance(fixed, int | float) or isinstance(given, int | float):
        try:
            return float(given) == float(fixed)
        except (TypeError, ValueError):
            return False
    return str(given).strip() == str(fixed).strip()


def unknown_placement(name: str, valid: list[str]) -> LightboxError:
    return LightboxError(
        f"There is no placement {name[:64]!r} in this profile"
        + (f"; it has {', '.join(valid)}." if valid else "; it has none."),
        code="unknown_placement",
        guidance="Use one of the profile's placements (GET /v1/profiles/{name}).",
        field="placement",
        extra={"placements": valid},
    )


def compose(
    profile: ProfileVersion,
    operation: str,
    request_fields: dict[str, Any],
    placement: str | None,
    vars_: dict[str, str],
    schema_fields: set[str],
) -> Composed:
    """The fields a job runs with: profile fields < placement < rendered
    prompts < request fields, a locked field's value kept (a differing request
    value is 422 naming it)."""
    if profile.operation != operation:
        raise InvalidParameter(
            "profile",
            f"Profile {profile.ref} is for {profile.operation}, not {operation}.",
        )
    body = profile.body
    locked = set(body.get("locked") or [])
    fields: dict[str, Any] = dict(body.get("fields") or {})
    placements: dict[str, Any] = body.get("placements") or {}
    recorded: dict[str, Any] = {"profile": profile.ref}
    if placement:
        if placement not in placements:
            raise unknown_placement(placement, sorted(placements))
        fields.update({k: v for k, v in placements[placement].items() if v is not None})
        recorded["placement"] = placement
    rendered: dict[str, str] = {}
    for name, template in (body.get("prompts") or {}).items():
        if name in request_fields and name not in locked:
            continue  # the request's own text replaces the template
        rendered[name] = render(str(template), vars_)
    fields.update(rendered)
    for name, value in request_fields.items():
        if name in locked and not _same(value, fields.get(name)):
            raise InvalidParameter(
                name,
                f"{name} is locked to {fields.get(name)!r} by profile {profile.ref}; "
                f"the request sends {value!r}.",
                guidance=f"Leave out {name}, or create a profile version without the lock.",
            )
    fields.update({k: v for k, v in request_fields.items() if k not in locked})
    thresholds = body.get("qa_thresholds")
    if thresholds and "qa_thresholds" in schema_fields and "qa_thresholds" not in fields:
        fields["qa_thresholds"] = thresholds
    if rendered:
        recorded["rendered_prompts"] = rendered
    return Composed(fields, recorded)


def check_profile(profile: ProfileIn) -> None:
    """The profile's fields, placements and templates checked with the
    operation's own rules; 422 naming `fields.X`, `placements.P.X` or `prompts.X`."""
    from services.gateway import submit  # submit composes with this module's helpers

    spec = submit.OPERATIONS.get(profile.operation)
    if spec is None:
        raise InvalidParameter(
            "operation",
            f"Unknown operation {profile.operation[:64]!r}; one of {', '.join(submit.OPERATIONS)}.",
        )
    known = set(spec.schema.model_fields) - NOT_PROFILE_FIELDS
    for name in profile.fields:
        if name not in known:
            raise InvalidParameter(
                f"fields.{name}", f"{profile.operation} has no field {name[:64]!r}."
            )
    for name in profile.prompts:
        if name not in known:
            raise InvalidParameter(
                f"prompts.{name}", f"{profile.operation} has no field {name[:64]!r}."
            )
        if len(profile.prompts[name]) > 2000:
            raise InvalidParameter(f"prompts.{name}", "A template is at most 2,000 characters.")
    for name in profile.locked:
        if name not in profile.fields and name not in profile.prompts:
            raise InvalidParameter(
                "locked", f"Locked field {name[:64]!r} has no value in fields or prompts."
            )
    for pname, placement in profile.placements.items():
        if not _NAME.match(pname):
            raise InvalidParameter(
                f"placements.{pname[:64]}", "A placement name is lower case: [a-z0-9._-]."
            )
        for name in placement.model_dump(exclude_none=True):
            if name not in known:
                raise InvalidParameter(
                    f"placements.{pname}.{name}", f"{profile.operation} has no field {name!r}."
                )
    # Every placement (or none) with the templates filled in must be a valid request.
    if profile.qa_thresholds:
        try:
            QaThresholdOverrides.model_validate(profile.qa_thresholds)
        except ValidationError as exc:
            err = submit.validation_error(exc)
            label = f"qa_thresholds.{err.extra.get('field', '')}".rstrip(".")
            raise InvalidParameter(label, f"{label}: {err.message.split(': ', 1)[-1]}") from None
    sample = {var: "x" for template in profile.prompts.values() for var in template_vars(template)}
    for pname in list(profile.placements) or [None]:
        values = dict(profile.fields)
        where: dict[str, str] = {name: f"fields.{name}" for name in values}
        if pname is not None:
            framing = profile.placements[pname].model_dump(exclude_none=True)
            values.update(framing)
            where.update({name: f"placements.{pname}.{name}" for name in framing})
        for name, template in profile.prompts.items():
            values[name] = render(template, sample)
            where[name] = f"prompts.{name}"
        try:
            spec.schema.model_validate(values, context={"has_mask": False})
        except ValidationError as exc:
            err = submit.validation_error(exc)
            name = str(err.extra.get("field", ""))
            label = where.get(name.split(".")[0], name or "fields")
            raise InvalidParameter(label, f"{label}: {err.message.split(': ', 1)[-1]}") from None


class ProfileResolver:
    """Reads profile versions from the jobs service and composes request fields."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def fetch(self, acct: Account, ref: str) -> ProfileVersion:
        name, version = parse_ref(ref)
        msg = await self.gw.call(
            self.gw.clients.catalog.GetProfile,
            catalog_pb2.GetProfileRequest(account_id=acct.id, name=name, version=version or 0),
        )
        return ProfileVersion.from_proto(msg)

    async def apply(
        self, acct: Account, operation: str, schema: type[BaseModel], fields: dict[str, Any]
    ) -> Composed:
        """Take `profile`, `placement` and `vars` out of a submit's fields and
        compose the rest with the profile; fields unchanged without one."""
        ref = fields.pop("profile", None)
        placement = fields.pop("placement", None)
        raw_vars = fields.pop("vars", None)
        if ref is None or ref == "":
            for name, value in (("placement", placement), ("vars", raw_vars)):
                if value not in (None, "", {}):
                    raise InvalidParameter(name, f"{name} needs a profile (profile=NAME@N).")
            return Composed(fields)
        if not isinstance(ref, str):
            raise InvalidParameter("profile", "profile must be a string, NAME@N.")
        if placement is not None and not isinstance(placement, str):
            raise InvalidParameter("placement", "placement must be a string.")
        profile = await self.fetch(acct, ref)
        return compose(
            profile,
            operation,
            fields,
            placement or None,
            parse_vars(raw_vars),
            set(schema.model_fields),
        )


def profile_json(profile: ProfileIn) -> str:
    """What the jobs service stores for a version: the profile without its name."""
    body = profile.model_dump(mode="json", exclude={"name"}, exclude_none=True)
    return json.dumps(body, separators=(",", ":"))
