"""What reconciler manages on a SCIM resource, both ways: live resources and config items normalised to
comparable attributes (the plan's before and after), and those attributes turned back into request bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reconciler.config.base import lower
from reconciler.config.models import Member, ScimProvider, Team
from reconciler.errors import (
    ReconcilerError,
)
from reconciler.plan.model import AttributeChange, Precondition
from reconciler.providers.digest import digest as canonical_digest
from reconciler.providers.scim.client import ENTERPRISE, USER, Capabilities
from reconciler.providers.scim.wire import member_values

# member field -> plan attribute key; enterprise attributes are keyed "enterprise:<name>"
_ENT_FIELDS = {"department": "department", "employee_number": "employeeNumber", "cost_center": "costCenter",
               "organization": "organization", "division": "division"}
_ENT_KEYS = {f: f"enterprise:{attr}" for f, attr in _ENT_FIELDS.items()}  # one text per key, not per member
_SIMPLE_FIELDS = {"given_name": "name.givenName", "family_name": "name.familyName",
                  "display_name": "displayName", "title": "title"}
# the member fields whose value is the plan's attribute as it is, by field name: one lookup per member
_DECLARABLE = {**_SIMPLE_FIELDS, **_ENT_KEYS}


# --- normalisation: live SCIM resources and config items -> comparable attributes ---------------

def _get(res: dict[str, Any], dotted: str) -> Any:
    cur: Any = res
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _primary_email(res: dict[str, Any]) -> str | None:
    emails = res.get("emails") or []
    if not emails:
        return None
    for e in emails:
        if isinstance(e, dict) and e.get("primary"):
            return str(e.get("value"))
    first = emails[0]
    return str(first.get("value")) if isinstance(first, dict) else None


def _live_attr(res: dict[str, Any], key: str) -> Any:
    """A live value by the name a config's ``attributes`` uses: ``nickName``, ``name.middleName`` or a full
    URN path such as ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter``."""
    if key.startswith("urn:"):
        urn, attr = key.rsplit(":", 1)
        ext = res.get(urn)
        return _get(ext, attr) if isinstance(ext, dict) else None
    return _get(res, key)


def _manager(res: dict[str, Any], usernames: dict[str, str]) -> Any:
    mgr = (res.get(ENTERPRISE) or {}).get("manager")
    mid = mgr.get("value") if isinstance(mgr, dict) else None
    return usernames.get(str(mid), f"id:{mid}") if mid else None


def _path(dotted: str) -> Callable[[dict[str, Any], dict[str, str]], Any]:
    top, _, sub = dotted.partition(".")
    if not sub:
        return lambda res, _: res.get(top)

    def get(res: dict[str, Any], _: dict[str, str]) -> Any:
        v = res.get(top)
        return v.get(sub) if isinstance(v, dict) else None
    return get


def _enterprise(attr: str) -> Callable[[dict[str, Any], dict[str, str]], Any]:
    return lambda res, _: (res.get(ENTERPRISE) or {}).get(attr)


# plan key -> how a live user gives it: every attribute reconciler manages on a user
_LIVE: dict[str, Callable[[dict[str, Any], dict[str, str]], Any]] = {
    "userName": lambda res, _: res.get("userName"),
    "emails": lambda res, _: _primary_email(res),
    "active": lambda res, _: res.get("active", True) if res.get("active") is not None else True,
    "externalId": lambda res, _: res.get("externalId"),
    "roles": lambda res, _: sorted(str(r.get("value")) for r in res.get("roles") or [] if isinstance(r, dict)),
    **{attr: _path(attr) for attr in _SIMPLE_FIELDS.values()},
    **{f"enterprise:{attr}": _enterprise(attr) for attr in _ENT_FIELDS.values()},
    "enterprise:manager": _manager,
}


def live_user(res: dict[str, Any], usernames: dict[str, str], extra: Iterable[str] = ()) -> dict[str, Any]:
    """The attributes reconciler can manage, as the plan shows them; ``extra`` names the other attributes
    the config declares (a member's ``attributes``)."""
    return live_values(res, usernames, dict.fromkeys([*_LIVE, *extra]))


def live_values(res: dict[str, Any], usernames: dict[str, str], keys: Iterable[str]) -> dict[str, Any]:
    """``live_user`` for ``keys`` only (what a member declares: all a diff against it reads)."""
    out = {}
    for key in keys:
        get = _LIVE.get(key)
        out[key] = get(res, usernames) if get is not None else _live_attr(res, key)
    return out


def desired_user(m: Member, p: ScimProvider, key: str | None = None) -> dict[str, Any]:
    """Only what the config declares is managed (unset is not empty). ``key``: the member's, where the
    caller has it already."""
    out: dict[str, Any] = {
        "userName": m.email,
        "emails": m.email,
        "active": m.active,
        # the ownership mark (scim/fit.py drops it where the provider cannot store it)
        _mark_key(p): p.ownership_prefix + (m.external_id or key or m.key),
    }
    declared = m.model_fields_set
    values = m.__dict__
    for f, attr in _DECLARABLE.items():  # in this order: the plan shows them so
        if f in declared:
            out[attr] = values[f]
    if "roles" in declared:
        out["roles"] = sorted(m.roles or [])
    if "manager" in declared:
        out["enterprise:manager"] = m.manager.lower() if m.manager else None
    for k, v in (m.attributes or {}).items():
        out[k] = v
    return out


def desired_mark(m: Member, p: ScimProvider) -> Any:
    """The ownership mark ``desired_user`` gives the member (before it is fitted), without the rest."""
    key = _mark_key(p)
    attrs = m.attributes or {}
    return attrs[key] if key in attrs else p.ownership_prefix + (m.external_id or m.key)


def _mark_key(p: ScimProvider) -> str:
    a = p.ownership_attribute
    return "enterprise:" + a[len(ENTERPRISE) + 1:] if a.startswith(ENTERPRISE + ":") else a


def mark_of(res: dict[str, Any], p: ScimProvider) -> str:
    """The ownership mark a live user carries ('' for none)."""
    return str(_live_attr(res, p.ownership_attribute) or "")


def live_group(res: dict[str, Any], usernames: dict[str, str], p: ScimProvider) -> dict[str, Any]:
    out: dict[str, Any] = {
        "displayName": res.get("displayName"),
        "externalId": res.get("externalId"),
        "members": sorted(usernames.get(str(v), f"id:{v}") for v in member_values(res.get("members"))),
    }
    ts = p.team_schema
    if ts is not None:
        ext = res.get(ts.urn) or {}
        if ts.description:
            out["description"] = ext.get(ts.description)
        if ts.roles:
            out["permissions.roles"] = sorted(_values(ext.get(ts.roles)))
        if ts.collections:
            out["permissions.collections"] = sorted(_values(ext.get(ts.collections)))
    return out


def _values(v: Any) -> list[str]:
    if not v:
        return []
    if isinstance(v, list):
        return [str(x.get("value")) if isinstance(x, dict) else str(x) for x in v]
    return [str(v)]


def desired_group(t: Team, p: ScimProvider, managed_ext: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "displayName": t.name,
        "externalId": p.ownership_prefix + t.name,
        "members": sorted(map(lower, t.members)),
    }
    if "description" in managed_ext and "description" in t.model_fields_set:
        out["description"] = t.description
    if t.permissions is not None:
        if "roles" in managed_ext:
            out["permissions.roles"] = sorted(t.permissions.roles)
        if "collections" in managed_ext:
            out["permissions.collections"] = sorted(t.permissions.collections)
    return out


def _same(key: str, want: Any, have: Any) -> bool:
    if key in ("userName", "emails") and isinstance(want, str) and isinstance(have, str):
        return want.lower() == have.lower()
    return bool(want == have)


def live_diff(want: dict[str, Any], res: dict[str, Any], usernames: dict[str, str]) -> list[AttributeChange]:
    """``attribute_diff(want, live_values(res, usernames, want))``, each live value read and compared in
    turn: a member that is as declared (most of them, in most plans) costs no dict of live values."""
    diff: list[AttributeChange] = []
    for k, v in want.items():
        get = _LIVE.get(k)
        h = get(res, usernames) if get is not None else _live_attr(res, k)
        if v != h and not _same(k, v, h):
            diff.append(AttributeChange(k, h, v))
    return diff


def attribute_diff(want: dict[str, Any], have: dict[str, Any]) -> list[AttributeChange]:
    return [AttributeChange(k, have.get(k), v) for k, v in want.items()
            if v != have.get(k) and not _same(k, v, have.get(k))]


def digest(res: dict[str, Any]) -> str:
    """A digest of a live object, for preconditions where the provider has no ETags."""
    # meta changes with every write; a user's groups is derived (read-only, RFC 7643 §4.1.2) and changes
    # when a group it is in changes or goes, which is no change to the user itself
    clean = {k: v for k, v in res.items() if k not in ("meta", "groups")}
    if "members" in clean:  # a group's members by value: what a listed group keeps (wire.trim_group)
        clean["members"] = [{"value": v} for v in member_values(clean["members"])]
    return canonical_digest(clean)


def precondition(res: dict[str, Any], caps: Capabilities) -> Precondition:
    version = (res.get("meta") or {}).get("version")
    return Precondition(etag=str(version) if version and caps.etag else None, digest=digest(res))


def address(provider: str, kind: str, key: str) -> str:
    return f'scim.{provider}.{kind}["{key}"]'


# --- payloads ---------------------------------------------------------------

def _emails(v: Any, meta: bool) -> list[dict[str, Any]]:
    return [{"value": v, "type": "work", "primary": True} if meta else {"value": v}]


def user_body(after: dict[str, Any], refs: dict[str, str], email_meta: bool = True) -> dict[str, Any]:
    """The body of a create; ``email_meta``: emails carry type and primary (where /Schemas has them)."""
    body: dict[str, Any] = {"schemas": [USER], "userName": after["userName"], "active": after["active"]}
    if "externalId" in after:
        body["externalId"] = after["externalId"]
    if "emails" in after:
        body["emails"] = _emails(after["emails"], email_meta)
    # one pass over the attributes (this runs once per member created)
    name: dict[str, Any] = {}
    ent: dict[str, Any] = {}
    rest: list[tuple[str, Any]] = []
    for k, v in after.items():
        if v is None or k in _KNOWN_KEYS:
            continue
        if k.startswith("name."):
            name[k[5:]] = v
        elif k.startswith("enterprise:"):
            attr = k[11:]
            if attr == "manager":
                if v not in refs:
                    raise ReconcilerError(f"manager {v} has no id on the provider (not created)")
                ent["manager"] = {"value": refs[v]}
            else:
                ent[attr] = v
        else:
            rest.append((k, v))
    if name:
        body["name"] = name
    for k in ("displayName", "title"):
        if after.get(k) is not None:
            body[k] = after[k]
    if after.get("roles"):
        body["roles"] = [{"value": r} for r in after["roles"]]
    if ent:
        body["schemas"].append(ENTERPRISE)
        body[ENTERPRISE] = ent
    for k, v in rest:
        if k.startswith("urn:"):
            urn, attr = k.rsplit(":", 1)
            body.setdefault(urn, {})[attr] = v
            if urn not in body["schemas"]:
                body["schemas"].append(urn)
        else:
            body[k] = v
    return body


_KNOWN_KEYS = {"userName", "active", "externalId", "emails", "displayName", "title", "roles"}


def user_ops(diff: Iterable[AttributeChange], refs: dict[str, str], email_meta: bool = True) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for d in diff:
        k, v = d.path, d.after
        if k == "emails":
            ops.append({"op": "replace", "path": "emails", "value": _emails(v, email_meta)})
        elif k == "roles":
            ops.append({"op": "replace", "path": "roles", "value": [{"value": r} for r in v or []]})
        elif k.startswith("enterprise:"):
            attr = k.split(":", 1)[1]
            path = f"{ENTERPRISE}:{attr}"
            if attr == "manager":
                if v is None:
                    ops.append({"op": "remove", "path": path})
                elif v not in refs:
                    raise ReconcilerError(f"manager {v} has no id on the provider (not created)")
                else:
                    ops.append({"op": "replace", "path": path, "value": {"value": refs[v]}})
            elif v is None:
                ops.append({"op": "remove", "path": path})
            else:
                ops.append({"op": "replace", "path": path, "value": v})
        elif v is None:
            ops.append({"op": "remove", "path": k})
        else:
            ops.append({"op": "replace", "path": k, "value": v})
    return ops


def group_ext(after: dict[str, Any], p: ScimProvider) -> dict[str, Any]:
    ts = p.team_schema
    if ts is None:
        return {}
    ext: dict[str, Any] = {}
    if "description" in after and ts.description:
        ext[ts.description] = after["description"]
    if "permissions.roles" in after and ts.roles:
        ext[ts.roles] = [{"value": r} for r in after["permissions.roles"]]
    if "permissions.collections" in after and ts.collections:
        ext[ts.collections] = [{"value": c} for c in after["permissions.collections"]]
    return ext


def group_attr_ops(diff: Iterable[AttributeChange], p: ScimProvider) -> list[dict[str, Any]]:
    ops = []
    ts = p.team_schema
    for d in diff:
        if d.path == "members":
            continue
        if d.path in ("displayName", "externalId"):
            ops.append({"op": "replace", "path": d.path, "value": d.after})
        elif ts is not None:
            attr = {"description": ts.description, "permissions.roles": ts.roles,
                    "permissions.collections": ts.collections}.get(d.path)
            if attr:
                value = d.after if d.path == "description" else [{"value": x} for x in d.after or []]
                ops.append({"op": "replace", "path": f"{ts.urn}:{attr}", "value": value})
    return ops


def apply_user_ops_to(resource: dict[str, Any], after: dict[str, Any], refs: dict[str, str],
                      email_meta: bool = True) -> dict[str, Any]:
    """For providers without PATCH: the full resource to PUT, the live one with the desired values."""
    body = {k: v for k, v in resource.items() if k not in ("meta", "id")}
    fresh = user_body(after, refs, email_meta)
    for k, v in fresh.items():
        if k == "schemas":
            body["schemas"] = sorted(set(body.get("schemas", [])) | set(v))
        elif isinstance(v, dict) and isinstance(body.get(k), dict):
            body[k] = {**body[k], **v}
        else:
            body[k] = v
    return body



