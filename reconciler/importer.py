"""Import: members and teams YAML generated from a live SCIM provider, to bootstrap a config.

The output is what the planner compares, read back from the live objects
(``providers.scim.live_user`` / ``live_group``), so planning the imported
config shows no attribute changes. What remains is ownership: reconciler marks
what it manages in ``externalId`` (``<ownership_prefix><external_id or
email>``). A live user whose externalId is not marked keeps it as
``external_id``; the first apply (or ``import --adopt``) writes the mark. The
output order is stable (by email, by team name) so a re-import diffs cleanly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from reconciler.config.base import check_email
from reconciler.config.models import ScimProvider
from reconciler.errors import ReconcilerError
from reconciler.plan.model import Change
from reconciler.providers import scim
from reconciler.providers.scim.client import client_for
from reconciler.schemas import BASE_ID
from reconciler.session import Session

SCHEMA_URL = BASE_ID + "config.schema.json"

# plan attribute (as live_user / desired_user name it) -> member field in the YAML, in output order
MEMBER_FIELDS = {
    "name.givenName": "given_name",
    "name.familyName": "family_name",
    "displayName": "display_name",
    "title": "title",
    "enterprise:department": "department",
    "enterprise:employeeNumber": "employee_number",
    "enterprise:costCenter": "cost_center",
    "enterprise:organization": "organization",
    "enterprise:division": "division",
    "enterprise:manager": "manager",
}


@dataclass
class Imported:
    provider: str
    members: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def import_provider(session: Session, name: str) -> Imported:
    """Read one provider's users and groups (paged lists) and turn them into members and teams."""
    try:
        p = session.config.provider(name)
    except KeyError:
        known = ", ".join(sorted(x.name for x in session.config.providers)) or "(none)"
        raise ReconcilerError(f"--provider {name}: no such provider in the config; valid: {known}") from None
    client = client_for(session, name)
    client.discover()
    live = client.read()
    return build(p, live.users, live.groups)


def build(p: ScimProvider, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> Imported:
    """Pure: live SCIM resources -> YAML-ready members and teams (sorted) and notes on what was left out."""
    out = Imported(p.name)
    usernames = {str(u.get("id")): str(u.get("userName", "")).lower() for u in users}
    valid: set[str] = set()
    for u in users:
        try:
            check_email(str(u.get("userName", "")))
            valid.add(str(u.get("userName")).lower())
        except ValueError:
            out.notes.append(f"user {u.get('userName')!r} (id {u.get('id')}) skipped: its userName is not an email")
    for u in sorted(users, key=lambda u: str(u.get("userName", "")).lower()):
        email = str(u.get("userName", ""))
        if email.lower() not in valid:
            continue
        out.members.append(_member(p, u, usernames, valid, out.notes))
    for g in sorted(groups, key=lambda g: str(g.get("displayName", ""))):
        out.teams.append(_team(p, g, usernames, valid, out.notes))
    return out


def _member(p: ScimProvider, u: dict[str, Any], usernames: dict[str, str], valid: set[str],
            notes: list[str]) -> dict[str, Any]:
    have = scim.live_user(u, usernames)
    email = str(u["userName"])
    m: dict[str, Any] = {"email": email}
    for attr, fld in MEMBER_FIELDS.items():
        v = have.get(attr)
        if v is None:
            continue
        if fld == "manager":
            if str(v).startswith("id:") or v not in valid:
                notes.append(f"{email}: manager {v} is not an importable member; manager left out")
                continue
        m[fld] = v
    if have.get("roles"):
        m["roles"] = list(have["roles"])
    if have.get("active") is False:
        m["active"] = False
    ext = str(have.get("externalId") or "")
    prefix = p.ownership_prefix
    own = ext[len(prefix):] if prefix and ext.startswith(prefix) else ext
    if own and own != email.lower():  # desired_user writes the lower-cased email when external_id is unset
        m["external_id"] = own
    primary = have.get("emails")
    if primary and str(primary).lower() != email.lower():
        notes.append(f"{email}: primary email {primary} differs from userName; reconciler sets the primary email "
                     "to the userName")
    return m


def _team(p: ScimProvider, g: dict[str, Any], usernames: dict[str, str], valid: set[str],
          notes: list[str]) -> dict[str, Any]:
    have = scim.live_group(g, usernames, p)
    name = str(have["displayName"])
    members = []
    for e in have.get("members", []):
        if e in valid:
            members.append(e)
        else:
            notes.append(f"team {name}: member {e} is not an importable member (a nested group, an unknown id, "
                         "or a userName that is not an email); left out")
    t: dict[str, Any] = {"name": name}
    if have.get("description") is not None:
        t["description"] = have["description"]
    t["members"] = sorted(members)
    roles, collections = have.get("permissions.roles") or [], have.get("permissions.collections") or []
    if roles or collections:
        t["permissions"] = {"roles": list(roles), "collections": list(collections)}
    return t


# --- YAML -------------------------------------------------------------------------------------------

def _yaml() -> YAML:
    y = YAML()
    y.default_flow_style = False
    y.width = 120
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _commented(data: Any) -> Any:
    if isinstance(data, dict):
        cm = CommentedMap()
        for k, v in data.items():
            cm[k] = _commented(v)
        return cm
    if isinstance(data, list):
        return CommentedSeq([_commented(v) for v in data])
    return data


def render_yaml(kind: str, items: list[dict[str, Any]], provider: str, schema_url: str = SCHEMA_URL) -> str:
    buf = io.StringIO()
    buf.write(f"# yaml-language-server: $schema={schema_url}\n")
    buf.write(f"# Imported from the SCIM provider '{provider}' by `reconciler import`.\n")
    if not items:
        buf.write(f"{kind}: []\n")
        return buf.getvalue()
    _yaml().dump(_commented({kind: items}), buf)
    return buf.getvalue()


def write_files(imported: Imported, out: Path, *, force: bool = False, schema_url: str = SCHEMA_URL) -> list[Path]:
    """Write members.yaml and teams.yaml under ``out``; refuse to overwrite unless ``force``."""
    files = {"members.yaml": ("members", imported.members), "teams.yaml": ("teams", imported.teams)}
    existing = [out / n for n in files if (out / n).exists()]
    if existing and not force:
        raise ReconcilerError(f"{', '.join(str(e) for e in existing)} already exist(s); pass --force to "
                              "overwrite, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, (kind, items) in files.items():
        path = out / fname
        path.write_text(render_yaml(kind, items, imported.provider, schema_url), encoding="utf-8")
        written.append(path)
    return written


# --- adoption ---------------------------------------------------------------------------------------

def split_adoption(changes: list[Change]) -> tuple[list[Change], list[Change]]:
    """(changes that only write the ownership mark, every other change)."""
    adopt = [c for c in changes if c.action.value == "update" and [d.path for d in c.diff] == ["externalId"]]
    ids = {id(c) for c in adopt}
    return adopt, [c for c in changes if id(c) not in ids]
