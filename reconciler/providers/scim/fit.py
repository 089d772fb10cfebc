"""What the provider can store decides what is planned: the desired attributes fitted to its ``/Schemas``.

Pure: no I/O. An attribute the provider does not store, or holds read-only, is not planned (a plan note
names it and the members it concerns), unless the config insists on it: an entry of a member's
``attributes``, or an ``ownership_attribute`` the provider cannot store, is a plan error at its
file:line:col. An attribute the provider requires on create that a new member lacks is a plan error
naming the member. ``name.formatted``, where it is required, is made from the given and family names.
Without a schema (no ``/Schemas``) everything is planned as declared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.config.models import Member, ScimProvider
from reconciler.providers.scim.client import ENTERPRISE, GROUP, USER
from reconciler.providers.scim.schema import ProviderSchema

# plan key -> the member field that sets it (for messages)
FIELDS = {"name.givenName": "given_name", "name.familyName": "family_name", "displayName": "display_name",
          "title": "title", "roles": "roles", "enterprise:department": "department",
          "enterprise:employeeNumber": "employee_number", "enterprise:costCenter": "cost_center",
          "enterprise:organization": "organization", "enterprise:division": "division",
          "enterprise:manager": "manager", "emails": "email", "active": "active"}


def schema_path(key: str) -> str:
    """The /Schemas path of a plan key."""
    return f"{ENTERPRISE}:{key[11:]}" if key.startswith("enterprise:") else key


def plan_key(path: str) -> str:
    return "enterprise:" + path[len(ENTERPRISE) + 1:] if path.startswith(ENTERPRISE + ":") else path


def mark_key(p: ScimProvider) -> str:
    """The attribute that holds reconciler's ownership mark on a user (externalId unless configured)."""
    return plan_key(p.ownership_attribute)


@dataclass
class Fitted:
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mark_dropped: bool = False  # users cannot carry the ownership mark here
    group_mark_dropped: bool = False


class UserFitter:
    """Fits each member's desired attributes (in place, one member at a time: ``fit``) to what the
    provider stores; ``done`` says what it dropped and refused, over every member."""

    def __init__(self, p: ScimProvider, schema: ProviderSchema | None) -> None:
        self.p, self.schema, self.out = p, schema, Fitted()
        self.on = schema is not None and USER in schema.schemas
        if schema is None or not self.on:
            return
        self.mark = mark_key(p)
        self.why_mark = schema.refusal(schema_path(self.mark), USER)
        if self.why_mark:
            if "ownership_attribute" in p.model_fields_set:
                self.out.errors.append(f"{p.locate('ownership_attribute')}: providers.{p.name}.ownership_attribute "
                                       f"{p.ownership_attribute} cannot hold the ownership mark on this provider "
                                       f"({self.why_mark}); name an attribute it stores")
            else:
                self.out.mark_dropped = True
                self.out.notes.append(f"scim.{p.name}: {p.ownership_attribute} cannot hold the ownership mark here "
                                      f"({self.why_mark}): users reconciler creates are not marked, so a member "
                                      "removed from the config is left on the provider; set ownership_attribute "
                                      "to an attribute the provider stores, or authoritative: true (docs/scim.md)")
        self.required = schema.required(USER)
        self.derive = "name.formatted" in self.required and not schema.refusal("name.formatted", USER)
        self.dropped: dict[str, tuple[str, list[str]]] = {}
        self.refusals: dict[str, str | None] = {}  # by plan key: the schema's answer is the same for every member

    def fit(self, m: Member, want: dict[str, Any], res: dict[str, Any] | None) -> None:
        if not self.on or self.schema is None:
            return
        out, schema, p = self.out, self.schema, self.p
        if self.derive and want.get("name.formatted") is None:
            full = " ".join(str(want[k]) for k in ("name.givenName", "name.familyName") if want.get(k))
            if full or want.get("displayName"):
                want["name.formatted"] = full or want["displayName"]
        for key in list(want):
            if key == "userName":
                continue
            if key == self.mark:
                if out.mark_dropped or self.why_mark:
                    del want[key]
                continue
            if key in self.refusals:
                why = self.refusals[key]
            else:
                why = schema.refusal(schema_path(key), USER)
                if why is None and key == "emails":
                    why = schema.refusal("emails.value", USER)
                self.refusals[key] = why
            if why is None:
                continue
            if key in (m.attributes or {}):
                out.errors.append(f"{m.locate('attributes')}: member {m.key}: attribute {key} cannot be stored "
                                  f"by provider {p.name} ({why}); remove it, or keep this member off the "
                                  "provider (providers: [...])")
                continue
            del want[key]
            self.dropped.setdefault(key, (why, []))[1].append(m.key)
        if res is None:
            for path in self.required:
                key = plan_key(path)
                if want.get(key) is None:
                    hint = FIELDS.get(key) or ("given_name and family_name" if key == "name.formatted" else None)
                    how = f"set {hint}" if hint else f"set attributes: {{{path}: ...}}"
                    out.errors.append(f"{m.locate('email')}: member {m.key}: provider {p.name} requires {path} "
                                      f"to create a user, and the config gives none ({how})")

    def done(self) -> Fitted:
        for key in sorted(getattr(self, "dropped", {})):
            why, who = self.dropped[key]
            shown = ", ".join(who[:5]) + (f" and {len(who) - 5} more" if len(who) > 5 else "")
            label = f"{schema_path(key)} ({FIELDS[key]})" if FIELDS.get(key, key) != key else schema_path(key)
            self.out.notes.append(f"scim.{self.p.name}: {label} is not stored by this provider ({why}); not sent "
                                  f"for {shown}")
        return self.out


def fit_users(found: list[tuple[Member, dict[str, Any], dict[str, Any] | None]], p: ScimProvider,
              schema: ProviderSchema | None) -> Fitted:
    """Fit each member's desired attributes (in place) to what the provider stores."""
    fitter = UserFitter(p, schema)
    for m, want, res in found:
        fitter.fit(m, want, res)
    return fitter.done()


def fit_group(want: dict[str, Any], schema: ProviderSchema | None) -> bool:
    """Drop what a group cannot store (its ownership mark, where externalId is read-only); True if dropped."""
    if schema is None or GROUP not in schema.schemas or not schema.refusal("externalId", GROUP):
        return False
    want.pop("externalId", None)
    return True


def email_meta(schema: ProviderSchema | None) -> bool:
    """Whether emails may carry ``type`` and ``primary`` (Canaille refuses them: 'Extra inputs')."""
    if schema is None or USER not in schema.schemas:
        return True
    return not schema.refusal("emails.type", USER) and not schema.refusal("emails.primary", USER)


def member_refs_required(schema: ProviderSchema | None) -> bool:
    """Whether a group's members need ``$ref`` on create (Canaille: required in POST and PUT)."""
    if schema is None:
        return False
    a, _ = schema.attr("members.$ref", GROUP)
    return a is not None and a.required


def rename_refused(schema: ProviderSchema | None) -> str | None:
    """Why a group cannot be renamed in place (None: it can): displayName immutable, as on Canaille."""
    a = schema.attr("displayName", GROUP)[0] if schema is not None and GROUP in schema.schemas else None
    return f"displayName is {a.mutability} in /Schemas" if a is not None and a.mutability != "readWrite" else None


def describe_schema(schema: ProviderSchema | None, note: str | None = None) -> str:
    """One line for ``check``: what the provider's /Schemas say it stores, where that matters."""
    if schema is None:
        return (note or "no /Schemas") + ": attributes are sent as declared"
    users = schema.schemas.get(USER, {})
    bits = [f"User: {len(users)} attributes" if users else "no User schema"]
    if ENTERPRISE in schema.schemas and (schema.extensions is None or ENTERPRISE in schema.extensions.get(USER, set())):
        bits.append("enterprise extension")
    if schema.refusal("externalId", USER):
        bits.append("externalId read-only (see ownership_attribute)")
    required = [r for r in schema.required(USER) if r not in ("userName", "active")]
    if required:
        bits.append("required on create: " + ", ".join(required))
    return "; ".join(bits)
