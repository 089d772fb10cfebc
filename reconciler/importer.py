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
from reconciler.config.loader import load_config
from reconciler.config.models import ScimProvider
from reconciler.config.yamlout import safe_for_reading
from reconciler.errors import ConfigError, ReconcilerError
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
    """Pure: live SCIM resources -> YAML-ready members and teams (sorted) and notes on what was left out.

    What one config cannot declare twice (two groups of one displayName, two userNames equal ignoring case:
    servers that do not enforce uniqueness accept both) refuses the import, naming every id, before any
    file is written."""
    clashes = duplicates(users, groups)
    if clashes:
        raise ReconcilerError(f"cannot import from provider '{p.name}': it holds objects that one config cannot "
                              "declare twice; nothing was written. Rename or remove all but one of each on the "
                              "provider, then import again:\n" + "\n".join(f"  - {c}" for c in clashes))
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
        out.members.append(_no_references(_member(p, u, usernames, valid, out.notes), out.notes))
    for g in sorted(groups, key=lambda g: str(g.get("displayName", ""))):
        out.teams.append(_team(p, g, usernames, valid, out.notes))
    return out


def _no_references(m: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """A live value holding ``${`` would read back as a secret reference, which a config refuses outside
    credential fields: left out, with a note, so that the written config loads."""
    out: dict[str, Any] = {}
    for k, v in m.items():
        if k != "email" and "${" in str(v):
            notes.append(f"{m['email']}: {k} {str(v)[:60]!r} holds '${{', which a config reads as a secret "
                         "reference; left out")
            continue
        out[k] = v
    return out


def duplicates(users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> list[str]:
    """One line per name several live objects share where the config needs it unique: team names (the
    planner matches groups by exact displayName) and member emails (userName, compared ignoring case)."""
    out = []
    by_name: dict[str, list[dict[str, Any]]] = {}
    for g in groups:
        by_name.setdefault(str(g.get("displayName", "")), []).append(g)
    for name, gs in sorted(by_name.items()):
        if len(gs) > 1:
            out.append(f"{len(gs)} groups are named {name!r} (ids {', '.join(sorted(str(g.get('id')) for g in gs))})")
    by_user: dict[str, list[dict[str, Any]]] = {}
    for u in users:
        by_user.setdefault(str(u.get("userName", "")).lower(), []).append(u)
    for key, us in sorted(by_user.items()):
        if len(us) > 1:
            who = ", ".join(f"{str(u.get('userName'))!r} (id {u.get('id')})"
                            for u in sorted(us, key=lambda u: (str(u.get("userName")), str(u.get("id")))))
            out.append(f"{len(us)} users have the userName {key!r} (ignoring case): {who}")
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
            if str(v).lower() == email.lower():  # a config refuses a member who is their own manager
                notes.append(f"{email}: manager {v} is the member themself; manager left out")
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
    members: dict[str, int] = {}
    for e in have.get("members", []):
        if e in valid:
            members[e] = members.get(e, 0) + 1
        else:
            notes.append(f"team {name}: member {e} is not an importable member (a nested group, an unknown id, "
                         "or a userName that is not an email); left out")
    for e, n in sorted(members.items()):
        if n > 1:  # a config lists a member once
            notes.append(f"team {name}: member {e} is listed {n} times on the provider; written once")
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
    _yaml().dump(safe_for_reading(_commented({kind: items})), buf)
    return buf.getvalue()


FILES = ("members.yaml", "teams.yaml")


def check_overwrite(out: Path, force: bool) -> None:
    """Refuse to overwrite members.yaml / teams.yaml unless ``force`` (checked before the provider is read)."""
    existing = [out / n for n in FILES if (out / n).exists()]
    if existing and not force:
        raise ReconcilerError(f"{', '.join(str(e) for e in existing)} already exist(s); pass --force to "
                              "overwrite, or choose another --out")


def write_files(imported: Imported, out: Path, *, force: bool = False, schema_url: str = SCHEMA_URL) -> list[Path]:
    """Write members.yaml and teams.yaml under ``out``; refuse to overwrite unless ``force``.

    Nothing is written unless the config in ``out``, as it will be with these files (next to the files
    already there), loads: every problem is reported, and no file is touched."""
    check_overwrite(out, force)
    texts = {out / "members.yaml": render_yaml("members", imported.members, imported.provider, schema_url),
             out / "teams.yaml": render_yaml("teams", imported.teams, imported.provider, schema_url)}
    try:
        load_config(out, overrides={path: text.encode("utf-8") for path, text in texts.items()})
    except ConfigError as exc:
        raise ReconcilerError(f"cannot import from provider '{imported.provider}': the config in {out} would "
                              "not load with the files import writes; nothing was written:\n"
                              + "\n".join(f"  - {d}" for d in exc.diagnostics)) from None
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# --- adoption ---------------------------------------------------------------------------------------

def split_adoption(changes: list[Change]) -> tuple[list[Change], list[Change]]:
    """(changes that only write the ownership mark, every other change)."""
    adopt = [c for c in changes if c.action.value == "update" and [d.path for d in c.diff] == ["externalId"]]
    ids = {id(c) for c in adopt}
    return adopt, [c for c in changes if id(c) not in ids]
