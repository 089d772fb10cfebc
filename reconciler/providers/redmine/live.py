"""What plan reads from one Redmine: the connection's side of the config (its connections, integrations
and synced teams), the typed live state (``LiveState``, read by ``read_live``), and the record pages that
hold an integration's resolved settings."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.config.models import Config, Team
from reconciler.errors import AuthError
from reconciler.providers.redmine.client import PREFIX, RECORD_PREFIX, RECORD_TITLE, RedmineClient
from reconciler.providers.tracker import integrations_on as integrations_on

if TYPE_CHECKING:
    from reconciler.integrations.models import RedmineConnection

_RECORD_JSON = re.compile(r"<pre>\s*(\{.*\})\s*</pre>", re.S)


# --- the config side ----------------------------------------------------------

def redmine_connections(config: Config) -> list[RedmineConnection]:
    return [c for c in config.connections if c.type == "redmine"]




def synced_teams(config: Config, conn: RedmineConnection) -> list[Team]:
    """The teams converged into groups: those the connection lists (default all), plus every team an
    integration on the connection grants a project role."""
    granted = {t for i in integrations_on(config, conn.name) for t in i.team_roles}
    wanted = None if conn.teams is None else set(conn.teams) | granted
    return [t for t in config.teams if wanted is None or t.name in wanted]


def address(conn: str, kind: str, key: str) -> str:
    return f'{PREFIX}{conn}.{kind}["{key}"]'


# --- live state ------------------------------------------------------------------

@dataclass
class LiveState:
    """What plan reads from one Redmine."""

    me: dict[str, Any]
    users: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    group_users: dict[int, list[int]]  # declared groups only
    trackers: list[dict[str, Any]]
    statuses: list[dict[str, Any]]
    priorities: list[dict[str, Any]]
    roles: list[dict[str, Any]]
    projects: dict[str, dict[str, Any] | None]  # integrated project identifier -> project (None: missing)
    memberships: dict[str, list[dict[str, Any]]]
    records: dict[str, dict[str, Any] | None]  # integration name -> its record wiki page
    all_projects: list[dict[str, Any]] = field(default_factory=list)  # read only to list valid choices
    calls: int = 0
    # integrations the config no longer declares: name -> (project identifier, record page)
    removed: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (name, project) of a declared one's old record


def read_live(client: RedmineClient, config: Config, conn: RedmineConnection) -> LiveState:
    me = client.current_user()
    integ = integrations_on(config, conn.name)
    try:
        users = client.users()
        groups = [g for g in client.groups() if not g.get("builtin")]
    except AuthError as exc:
        raise AuthError(f"redmine connection '{conn.name}': listing users and groups needs an administrator's "
                        f"API key (the key belongs to '{me.get('login')}')", exc.method, exc.url,
                        exc.status) from None
    declared = {t.name for t in synced_teams(config, conn)}
    group_users = {int(g["id"]): [int(u["id"]) for u in client.group(int(g["id"])).get("users", [])]
                   for g in groups if g.get("name") in declared}
    trackers = roles = statuses = priorities = []
    if integ:
        trackers = client.enumeration("trackers.json", "trackers")
        statuses = client.enumeration("issue_statuses.json", "issue_statuses")
        priorities = [p for p in client.enumeration("enumerations/issue_priorities.json", "issue_priorities")
                      if p.get("active", True)]
        roles = client.enumeration("roles.json", "roles")
    projects: dict[str, dict[str, Any] | None] = {}
    memberships: dict[str, list[dict[str, Any]]] = {}
    records: dict[str, dict[str, Any] | None] = {}
    for i in integ:
        if i.project not in projects:
            projects[i.project] = client.project(i.project)
            if projects[i.project] is not None:
                memberships[i.project] = client.memberships(i.project)
        records[i.name] = client.wiki_page(i.project, record_title(i.name)) if projects[i.project] else None
    all_projects = client.projects() if any(p is None for p in projects.values()) else []
    integrated = {i.name: i.project for i in integ}
    removed: dict[str, tuple[str, dict[str, Any]]] = {}
    moved: list[tuple[str, str]] = []
    for ident, title in client.record_pages():
        name = title[len(RECORD_PREFIX):]
        if name in integrated:
            if integrated[name] != ident:
                moved.append((name, ident))
            continue
        page = client.wiki_page(ident, title) if name not in removed else None
        if page is None:
            continue
        removed[name] = (ident, page)
        if ident not in projects:
            projects[ident] = client.project(ident)
            if projects[ident] is not None:
                memberships[ident] = client.memberships(ident)
    return LiveState(me, users, groups, group_users, trackers, statuses, priorities, roles, projects,
                     memberships, records, all_projects, client.pages, removed, moved)


def record_title(name: str) -> str:
    return RECORD_TITLE.format(name=name)


def parse_record(page: dict[str, Any] | None) -> dict[str, Any] | None:
    """The settings a record page holds; {} for a page whose JSON was edited beyond reading."""
    if page is None:
        return None
    m = _RECORD_JSON.search(str(page.get("text") or ""))
    if not m:
        return {}
    try:
        data = json.loads(m.group(1))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def record_text(name: str, settings: dict[str, Any], activation: dict[str, Any]) -> str:
    body = json.dumps({**settings, "activation": activation}, indent=2, sort_keys=True)
    return (f"h1. reconciler integration: {name}\n\n"
            "This page is written by reconciler from the configuration; edits here are planned back.\n\n"
            f"<pre>\n{body}\n</pre>\n")


