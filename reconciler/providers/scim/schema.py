"""What a SCIM provider says it supports and stores: ServiceProviderConfig (``Capabilities``), and
``/Schemas`` with ``/ResourceTypes`` (``ProviderSchema``): which attributes exist, which may be written,
which are required.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Capabilities:
    """What discovery says the provider supports (defaults when it has no ServiceProviderConfig)."""

    patch: bool = True
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0
    etag: bool = False
    filter: bool = True
    max_results: int | None = None
    discovered: bool = False
    schemas: dict[str, set[str]] | None = None  # URN -> attribute names (read only when needed)
    schema: ProviderSchema | None = None  # /Schemas and /ResourceTypes (None: not read, or not served)
    schema_note: str | None = None  # why /Schemas could not be used, when it was served but failed

    def describe(self) -> str:
        bits = [f"patch={'yes' if self.patch else 'no'}",
                f"bulk={'yes (max ' + str(self.bulk_max_operations) + ' ops)' if self.bulk else 'no'}",
                f"etag={'yes' if self.etag else 'no'}", f"filter={'yes' if self.filter else 'no'}",
                f"maxResults={self.max_results or 'unset'}"]
        return ", ".join(bits) + ("" if self.discovered else " (no ServiceProviderConfig; assumed)")


@dataclass(frozen=True)
class Attr:
    """One attribute as ``/Schemas`` describes it (RFC 7643 §7)."""

    name: str
    mutability: str = "readWrite"
    required: bool = False
    sub: dict[str, Attr] = field(default_factory=dict)  # by lower-case name

    @property
    def writable(self) -> bool:
        return self.mutability in ("readWrite", "writeOnly", "immutable")


# Attributes every resource has (RFC 7643 §3.1): a server rarely lists them in its schema; absent there
# they are taken as the RFC defines them.
COMMON = {"id", "externalid", "meta", "schemas"}


@dataclass
class ProviderSchema:
    """What ``/Schemas`` and ``/ResourceTypes`` say a provider stores.

    ``schemas`` maps each URN to its attributes by lower-case name; ``extensions`` maps a core schema
    URN to the extension URNs its resource type carries (None: no ``/ResourceTypes``, every extension
    advertised in ``/Schemas`` is taken as usable)."""

    schemas: dict[str, dict[str, Attr]]
    extensions: dict[str, set[str]] | None = None

    def attr(self, path: str, core: str) -> tuple[Attr | None, str]:
        """The attribute at ``path`` (``name.familyName``, ``emails.type``, ``<urn>:department``) of the
        resource whose core schema is ``core``, and why it is missing when it is (else '')."""
        urn, rest = core, path
        if path.lower().startswith("urn:"):
            urn, rest = path.rsplit(":", 1)
            if urn not in self.schemas:
                return None, f"the schema {urn} is not in /Schemas"
            if self.extensions is not None and urn != core and urn not in self.extensions.get(core, set()):
                return None, f"the schema {urn} is not an extension of this resource type"
        attrs = self.schemas.get(urn)
        if attrs is None:
            return None, f"the schema {urn} is not in /Schemas"
        top, _, sub = rest.partition(".")
        a = attrs.get(top.lower())
        if a is None:
            if urn == core and top.lower() in COMMON:
                return Attr(top), ""
            return None, "not in /Schemas"
        if sub:
            s = a.sub.get(sub.lower())
            return (s, "") if s is not None else (None, f"{top} has no sub-attribute {sub} in /Schemas")
        return a, ""

    def refusal(self, path: str, core: str) -> str | None:
        """Why the provider cannot store a value at ``path`` (None: it can)."""
        a, why = self.attr(path, core)
        if a is None:
            return why
        top = self.attr(path.split(".", 1)[0], core)[0] if "." in path and not path.startswith("urn:") else a
        for x in (a, top):
            if x is not None and not x.writable:
                return f"{x.mutability} in /Schemas"
        return None

    def required(self, core: str) -> list[str]:
        """Paths a client must give on create: required, writable attributes, and the required sub-attributes
        of a required complex one."""
        out: list[str] = []
        for a in self.schemas.get(core, {}).values():
            if not a.required or not a.writable or a.name.lower() in COMMON:
                continue
            subs = [s for s in a.sub.values() if s.required and s.writable]
            if subs:
                out += [f"{a.name}.{s.name}" for s in subs]
            elif not a.sub:
                out.append(a.name)
        return out


def _attr(raw: Any) -> Attr | None:
    if not isinstance(raw, dict) or not raw.get("name"):
        return None
    subs = [s for s in (_attr(x) for x in raw.get("subAttributes") or []) if s is not None]
    return Attr(str(raw["name"]), str(raw.get("mutability") or "readWrite"), bool(raw.get("required")),
                {s.name.lower(): s for s in subs})


def parse_schemas(body: Any) -> dict[str, dict[str, Attr]]:
    out: dict[str, dict[str, Attr]] = {}
    for s in body.get("Resources", []) if isinstance(body, dict) else []:
        if isinstance(s, dict) and s.get("id"):
            attrs = [a for a in (_attr(x) for x in s.get("attributes") or []) if a is not None]
            out[str(s["id"])] = {a.name.lower(): a for a in attrs}
    return out


def parse_resource_types(body: Any) -> dict[str, set[str]] | None:
    items = body.get("Resources") if isinstance(body, dict) else body if isinstance(body, list) else None
    if not isinstance(items, list):
        return None
    out: dict[str, set[str]] = {}
    for rt in items:
        if isinstance(rt, dict) and rt.get("schema"):
            out[str(rt["schema"])] = {str(e.get("schema")) for e in rt.get("schemaExtensions") or []
                                      if isinstance(e, dict)}
    return out or None
