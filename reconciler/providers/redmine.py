"""Redmine provider: teams -> groups, integrations -> project memberships, tracker and a record page.

Live state is read with paged list calls (``offset`` / ``limit`` / ``total_count``)
plus one GET per declared group (Redmine lists group members nowhere else) and
per integrated project. Planning is pure (``plan_connection``); apply runs a
plan's changes in dependency order. Members become Redmine logins through user
maps. An integration's resolved settings live on a wiki page of its project,
the Redmine counterpart of a Jira project property: it marks the integration
as activated, lets the plan show drift in its mappings, and records the roles
it granted, so that an integration removed from the config is found (one paged
search for reconciler's record pages across all projects) and exactly what it
recorded is removed.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import httpx

from reconciler.config.models import Config, Member, Team
from reconciler.contract import Check, CheckResult
from reconciler.errors import (
    AuthError,
    ConflictError,
    ConnectError,
    NotFoundError,
    PlanError,
    ProviderError,
    ReconcilerError,
    ServerError,
    StalePlanError,
)
from reconciler.execute import Outcome, run_changes
from reconciler.plan.model import Action, AttributeChange, Change, Precondition
from reconciler.plan.safety import check_removals
from reconciler.providers._http import Http, Recorder, build_client, ca_path, check_url
from reconciler.providers.paging import Page, read_pages
from reconciler.providers.paths import seg
from reconciler.providers.tracker import select_by_prefix, stale_by_replanning
from reconciler.secrets import redact, resolve
from reconciler.usermaps import identities_for

if TYPE_CHECKING:
    from reconciler.integrations.models import Integration, RedmineConnection
    from reconciler.session import Session

PREFIX = "redmine."
# Redmine's own cap on `limit` for list calls.
MAX_PAGE = 100
# The identity system user maps name for Redmine logins.
SYSTEM = "redmine"
RECORD_PREFIX = "Reconciler-integration-"
RECORD_TITLE = RECORD_PREFIX + "{name}"
_RECORD_URL = re.compile(r"/projects/(?P<project>[^/]+)/wiki/(?P<title>[^/?#]+)$")
TEST_SUBJECT = "reconciler activation test: {name}"
_RECORD_JSON = re.compile(r"<pre>\s*(\{.*\})\s*</pre>", re.S)


# --- the wire protocol ------------------------------------------------------

class RedmineApiKey(httpx.Auth):
    """Redmine's REST API key header (kept out of URLs, where ``?key=`` would leak into logs)."""

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["X-Redmine-API-Key"] = self._key
        yield request


class RedmineClient:
    """Redmine's REST API for one connection: paged reads, lookups, writes."""

    def __init__(self, http: Http, name: str, page_size: int = MAX_PAGE) -> None:
        self.http = http
        self.name = name
        self.page_size = max(1, min(page_size, MAX_PAGE))
        self.pages = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict[str, str] | None = None, what: str = "") -> Any:
        body = self.http.get_json(path, params=params or {}, what=what or f"cannot read {path}")
        with self._lock:
            self.pages += 1
        return body

    def list_all(self, path: str, key: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a list endpoint. Pages with offset/limit until total_count; an endpoint that
        answers without total_count (groups, trackers ...) is not paged and is read in one call."""
        def fetch(offset: int) -> Page:
            q = {"offset": str(offset), "limit": str(self.page_size), **(params or {})}
            body = self.get(path, q, f"cannot list {key.replace('_', ' ')}")
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise ServerError(f"the answer to {path} has no '{key}' list", "GET", self.http._full(path))
            total = body.get("total_count")
            if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
                raise ServerError(f"the answer to {path}: total_count is {str(total)[:40]!r}, not a count", "GET",
                                  self.http._full(path))
            # no total_count: an endpoint that is not paged (groups, trackers ...) answered whole
            return Page([x for x in body[key] if isinstance(x, dict)], total, True if total is None else None)

        out, _ = read_pages(fetch, page_size=self.page_size, url=self.http._full(path),
                            key=lambda x: x.get("id"))
        return out

    def current_user(self) -> dict[str, Any]:
        """Who the API key belongs to; the first call of every session, so its errors say what to fix."""
        try:
            body = self.get("users/current.json", what="cannot read the current user")
        except AuthError as exc:
            hint = ("the API key was refused; check api_key, and that the REST API is enabled "
                    "(Administration > Settings > API)") if exc.status == 401 else \
                "the REST API refused the request; enable it (Administration > Settings > API)"
            raise AuthError(f"redmine connection '{self.name}': {hint}", exc.method, exc.url, exc.status) from None
        except ConnectError as exc:
            reason = exc.message.split(": ", 1)[-1]  # Http says "cannot reach <provider>: <reason>"
            raise ConnectError(f"redmine connection '{self.name}': cannot reach "
                               f"{exc.url.rsplit('/users', 1)[0]}: {reason}", exc.method, exc.url, None,
                               exc.detail) from None
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, dict):
            raise ServerError(f"redmine connection '{self.name}': users/current.json has no user; is base_url "
                              "a Redmine?", "GET", self.http._full("users/current.json"))
        return user

    # reads
    def users(self) -> list[dict[str, Any]]:
        # status= (empty) lists active, registered and locked users alike
        return self.list_all("users.json", "users", {"status": ""})

    def groups(self) -> list[dict[str, Any]]:
        return self.list_all("groups.json", "groups")

    def group(self, gid: int) -> dict[str, Any]:
        body = self.get(f"groups/{seg(gid)}.json", {"include": "users"}, f"cannot read group {gid}")
        return dict(body["group"])

    def project(self, ident: str) -> dict[str, Any] | None:
        try:
            body = self.get(f"projects/{quote(ident, safe='')}.json", {"include": "trackers,enabled_modules"},
                            f"cannot read project {ident}")
        except NotFoundError:
            return None
        return dict(body["project"])

    def projects(self) -> list[dict[str, Any]]:
        return self.list_all("projects.json", "projects")

    def memberships(self, ident: str) -> list[dict[str, Any]]:
        return self.list_all(f"projects/{quote(ident, safe='')}/memberships.json", "memberships")

    def enumeration(self, path: str, key: str) -> list[dict[str, Any]]:
        return self.list_all(path, key)

    def wiki_page(self, ident: str, title: str) -> dict[str, Any] | None:
        try:
            body = self.get(f"projects/{quote(ident, safe='')}/wiki/{quote(title, safe='')}.json",
                            what=f"cannot read wiki page {title} of project {ident}")
        except NotFoundError:
            return None
        return dict(body["wiki_page"])

    def record_pages(self) -> list[tuple[str, str]]:
        """(project identifier, title) of every record page reconciler wrote, in every project: Redmine's
        search over wiki page titles is one paged call across projects (offset / limit / total_count)."""
        out: list[tuple[str, str]] = []
        offset = 0
        while True:
            body = self.get("search.json", {"q": RECORD_PREFIX, "wiki_pages": "1", "titles_only": "1",
                                            "offset": str(offset), "limit": str(self.page_size)},
                            "cannot search the record pages")
            results = [r for r in body.get("results") or [] if isinstance(r, dict)]
            for r in results:
                m = _RECORD_URL.search(str(r.get("url", "")))
                if r.get("type") == "wiki-page" and m:
                    title = unquote(m.group("title"))
                    if title.startswith(RECORD_PREFIX):  # the search matches anywhere, in any case
                        out.append((unquote(m.group("project")), title))
            offset += len(results)
            if not results or offset >= int(body.get("total_count") or 0):
                return sorted(set(out))

    def find_user(self, login: str) -> dict[str, Any] | None:
        body = self.get("users.json", {"name": login, "status": ""}, f"cannot search user {login}")
        for u in body.get("users", []):
            if str(u.get("login", "")).lower() == login.lower():
                return dict(u)
        return None

    def find_group(self, name: str) -> dict[str, Any] | None:
        for g in self.groups():
            if g.get("name") == name:
                return g
        return None

    def find_issue(self, project_id: int, subject: str) -> dict[str, Any] | None:
        body = self.get("issues.json", {"project_id": str(project_id), "status_id": "*", "subject": "~" + subject},
                        "cannot search issues")
        for i in body.get("issues", []):
            if i.get("subject") == subject:
                return dict(i)
        return None

    # writes
    def create(self, path: str, body: dict[str, Any], lookup: Callable[[], dict[str, Any] | None],
               what: str) -> dict[str, Any]:
        """POST after a lookup: Redmine answers a duplicate with 422, and a retried create whose first
        answer was lost must find what the first attempt made instead of failing."""
        found = lookup()
        if found is not None:
            return found
        r = self.http.request("POST", path, json=body, what=what, ok=(422,), recover=lambda: _wrap(lookup()))
        if isinstance(r, _Found):
            return r.resource
        if r.status_code == 422:
            found = lookup()
            if found is not None:
                return found
            raise _unprocessable(r, what)
        data = r.json() if r.content else None
        if not isinstance(data, dict) or len(data) != 1:
            raise ServerError(f"{what}: the answer has no object", "POST", self.http._full(path), r.status_code)
        return dict(next(iter(data.values())))

    def write(self, method: str, path: str, body: dict[str, Any] | None, what: str,
              ok: tuple[int, ...] = ()) -> None:
        r = self.http.request(method, path, json=body, what=what, ok=(422, *ok))
        if r.status_code == 422:
            raise _unprocessable(r, what)


def _unprocessable(r: httpx.Response, what: str) -> ProviderError:
    try:
        errors = [str(e) for e in r.json().get("errors", [])]
    except (ValueError, AttributeError):
        errors = []
    detail = redact(redact("; ".join(errors))[:300])
    cls = ConflictError if any("already been taken" in e for e in errors) else ServerError
    return cls(what, r.request.method, redact(str(r.request.url.copy_with(query=None))), 422, detail)


@dataclass
class _Found:
    resource: dict[str, Any]


def _wrap(found: dict[str, Any] | None) -> _Found | None:
    return _Found(found) if found is not None else None


def connect(conn: RedmineConnection, *, transport: httpx.BaseTransport | None = None,
            recorder: Recorder | None = None, base_dir: str | None = None,
            sleep: Callable[[float], None] | None = None, attempts: int = 5) -> RedmineClient:
    key = resolve(conn.api_key, f"{conn.locate('api_key')}: connections.{conn.name}.api_key", base_dir)
    client = build_client(conn.base_url, auth=RedmineApiKey(key), timeout=conn.timeout,
                          ca_bundle=ca_path(conn, base_dir),
                          transport=transport, headers={"Accept": "application/json"},
                          max_connections=max(_opt(conn, "concurrency", 4), 4))
    kw: dict[str, Any] = {"recorder": recorder, "attempts": attempts}
    if sleep is not None:
        kw["sleep"] = sleep
    return RedmineClient(Http(client, f"redmine.{conn.name}", **kw), conn.name,
                         _opt(conn, "page_size", MAX_PAGE))


def _opt(conn: Any, name: str, default: Any) -> Any:
    """A connection setting, or its default (settings are optional in YAML)."""
    value = getattr(conn, name, None)
    return default if value is None else value


# --- the config side ----------------------------------------------------------

def redmine_connections(config: Config) -> list[RedmineConnection]:
    return [c for c in config.connections if c.type == "redmine"]


def integrations_on(config: Config, conn: str) -> list[Integration]:
    return [i for i in config.integrations if i.connection == conn]


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


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


# --- planning (pure) -----------------------------------------------------------------

@dataclass
class ProviderPlan:
    changes: list[Change]
    notes: list[str]
    protected: list[str]
    managed: int


def _canon(value: str, items: list[dict[str, Any]]) -> str | None:
    """The live spelling of a name (Redmine compares names case-insensitively)."""
    for x in items:
        if str(x.get("name", "")).casefold() == value.casefold():
            return str(x["name"])
    return None


def _valid(items: list[dict[str, Any]]) -> str:
    return ", ".join(sorted(str(x.get("name")) for x in items)) or "(none)"


def plan_connection(config: Config, conn: RedmineConnection, live: LiveState) -> ProviderPlan:
    """Pure: desired (config) + live (read) -> changes. Every name an integration uses is checked here,
    and all problems are reported at once with the valid values."""

    c = conn.name
    provider = f"{PREFIX}{c}"
    changes: list[Change] = []
    notes: list[str] = []
    problems: list[str] = []
    protected: list[str] = []

    users_by_login = {str(u.get("login", "")).casefold(): u for u in live.users}
    login_by_id = {int(u["id"]): str(u.get("login")) for u in live.users}
    users_by_mail = {str(u.get("mail", "")).casefold(): u for u in live.users if u.get("mail")}
    members = {m.key: m for m in config.members}

    # users: every active member mapped to a login on this connection
    logins: dict[str, str] = {}  # member key -> login
    for m in config.members:
        ids = identities_for(config, m.email, c)
        if not ids or not m.active:
            continue
        login = ids[0]
        logins[m.key] = login
        addr = address(c, "user", login)
        have = users_by_login.get(login.casefold())
        if have is None:
            other = users_by_mail.get(m.key)
            if other is not None:
                problems.append(f"member {m.email} is mapped to Redmine login '{login}', but Redmine user "
                                f"'{other.get('login')}' already has that email; map {m.email} to "
                                f"'{other.get('login')}' in user_maps")
            elif not conn.create_users:
                problems.append(f"member {m.email} is mapped to Redmine login '{login}', which does not exist; "
                                f"create it in Redmine or set create_users: true on connection '{c}'")
            else:
                changes.append(Change(provider, "user", login, Action.CREATE, addr, after=desired_user(m, login)))
            continue
        want = desired_user(m, login)
        cur = {k: have.get(k) for k in want}
        diff = [AttributeChange(k, cur[k], v) for k, v in want.items()
                if k in _managed_user_fields(m) and cur[k] != v]
        if diff:
            after = dict(cur, **{d.path: d.after for d in diff})
            changes.append(Change(provider, "user", login, Action.UPDATE, addr, before=cur, after=after, diff=diff,
                                  id=str(have["id"]), precondition=Precondition(digest=_digest(have))))

    def user_ref(login: str) -> dict[str, str]:
        u = users_by_login.get(login.casefold())
        return {login: str(u["id"])} if u is not None else {}

    # groups
    groups_by_name = {str(g.get("name")): g for g in live.groups}
    declared_groups: set[str] = set()
    for t in synced_teams(config, conn):
        declared_groups.add(t.name)
        addr = address(c, "group", t.name)
        want_users: set[str] = set()
        unmapped: list[str] = []
        for e in t.members:
            tm = members.get(e.lower())
            if tm is None or not tm.active:
                continue
            if tm.key in logins:
                want_users.add(logins[tm.key])
            else:
                unmapped.append(tm.email)
        if unmapped:
            msg = (f"{addr}: {len(unmapped)} member(s) have no '{c}' login in user_maps and are left out of the "
                   f"group: {', '.join(sorted(unmapped))}")
            if conn.unmapped_members == "error":
                problems.append(msg + f" (unmapped_members: error on connection '{c}')")
            else:
                notes.append(msg)
        g = groups_by_name.get(t.name)
        refs: dict[str, str] = {}
        for login in want_users:
            refs.update(user_ref(login))
        if g is None:
            changes.append(Change(provider, "group", t.name, Action.CREATE, addr,
                                  after={"name": t.name, "users": sorted(want_users, key=str.casefold)},
                                  refs=refs))
            continue
        have_users = sorted((login_by_id.get(i, f"id:{i}") for i in live.group_users.get(int(g["id"]), [])),
                            key=str.casefold)
        have_cf = {x.casefold() for x in have_users}
        if conn.membership == "additive":
            after_users = sorted(set(have_users) | {u for u in want_users if u.casefold() not in have_cf},
                                 key=str.casefold)
        else:
            after_users = sorted(want_users, key=str.casefold)
        if [x.casefold() for x in after_users] != [x.casefold() for x in have_users]:
            for x in have_users:
                refs.update(user_ref(x) if not x.startswith("id:") else {x: x[3:]})
            changes.append(Change(provider, "group", t.name, Action.UPDATE, addr,
                                  before={"name": t.name, "users": have_users},
                                  after={"name": t.name, "users": after_users},
                                  diff=[AttributeChange("users", have_users, after_users)], id=str(g["id"]),
                                  precondition=Precondition(digest=_digest(have_users)), refs=refs))
    managed = len([g for g in live.groups if g.get("name") in declared_groups])
    if conn.authoritative:
        protect = set(conn.protect)
        for g in live.groups:
            name = str(g.get("name"))
            if name in declared_groups:
                continue
            addr = address(c, "group", name)
            if name in protect:
                protected.append(addr)
                continue
            changes.append(Change(provider, "group", name, Action.DELETE, addr, before={"name": name},
                                  id=str(g["id"]), precondition=Precondition(digest=_digest(g))))
        managed = len(live.groups)

    # integrations: names checked against the live Redmine, then memberships and records
    integ = integrations_on(config, c)
    roles_wanted: dict[str, dict[str, set[str]]] = {}  # project -> group -> role names
    authoritative_projects: set[str] = set()
    for i in integ:
        def where(field: str, i: Integration = i) -> str:
            """file:line:col of the offending value first, as every config error is reported."""
            return f"{i.locate(field)}: integration '{i.name}'"
        project = live.projects.get(i.project)
        if project is None:
            choices = sorted(str(p.get("identifier")) for p in live.all_projects)
            problems.append(f"{where('project')}: project '{i.project}' does not exist on Redmine '{c}' (or the "
                            f"API key cannot see it); valid projects: {', '.join(choices) or '(none)'}")
            continue
        tracker = _canon(i.issue_type, live.trackers)
        if tracker is None:
            problems.append(f"{where('issue_type')}: issue_type '{i.issue_type}' is not a Redmine tracker; "
                            f"valid trackers: {_valid(live.trackers)}")
        for sev, name in sorted(i.priorities.items()):
            if _canon(name, live.priorities) is None:
                problems.append(f"{where(f'priorities.{sev}')}: priorities.{sev} '{name}' is not an active "
                                f"Redmine priority; valid priorities: {_valid(live.priorities)}")
        for st, name in sorted(i.statuses.items()):
            if _canon(name, live.statuses) is None:
                problems.append(f"{where(f'statuses.{st}')}: statuses.{st} '{name}' is not a Redmine issue "
                                f"status; valid statuses: {_valid(live.statuses)}")
        for team, role in sorted(i.team_roles.items()):
            canon = _canon(role, live.roles)
            if canon is None:
                problems.append(f"{where(f'team_roles.{team}')}: team_roles.{team} '{role}' is not a Redmine "
                                f"role; valid roles: {_valid(live.roles)}")
                continue
            roles_wanted.setdefault(i.project, {}).setdefault(team, set()).add(canon)
        if i.role_membership == "authoritative":
            authoritative_projects.add(i.project)
        if i.labels:
            notes.append(f"{address(c, 'integration', i.name)}: Redmine has no labels; labels are not managed "
                         "on this connection")
        if tracker is None:
            continue
        changes += _integration_change(provider, c, i, tracker, project, live)

    managed += sum(1 for r in live.records.values() if r is not None)
    revoked, removed_changes, removed_protected = _plan_removed(provider, c, conn, integ, live)
    _plan_departures(integ, live, revoked)
    changes += removed_changes
    protected += removed_protected
    managed += len(live.removed)
    for name, ident in live.moved:
        notes.append(f"{address(c, 'integration', name)}: moved from project {ident}; its record page there is "
                     "left")
    for ident in sorted(roles_wanted.keys() | authoritative_projects | revoked.keys()):
        if live.projects.get(ident) is None:
            continue
        ch, n = _membership_changes(provider, c, ident, roles_wanted.get(ident, {}),
                                    ident in authoritative_projects, live, groups_by_name, login_by_id,
                                    revoked.get(ident), {i.name for i in integ})
        changes += ch
        managed += n
    if problems:
        raise PlanError(f"cannot plan Redmine connection '{c}':", problems)
    return ProviderPlan(changes, notes, protected, managed)


def _plan_removed(provider: str, c: str, conn: RedmineConnection, integ: list[Integration], live: LiveState) \
        -> tuple[dict[str, dict[str, dict[str, set[str]]]], list[Change], list[str]]:
    """Integrations whose record page is still in Redmine but which the config no longer declares: the
    record page goes, the tracker too when reconciler enabled it and no declared integration of the
    project uses it, and the roles the record lists as granted (returned as project -> group -> role ->
    integrations, for the membership planning)."""
    revoked: dict[str, dict[str, dict[str, set[str]]]] = {}
    changes: list[Change] = []
    protected: list[str] = []
    kept = [parse_record(page) or {} for name, (_, page) in live.removed.items() if name in conn.protect]
    for name, (ident, page) in sorted(live.removed.items()):
        addr = address(c, "integration", name)
        if name in conn.protect:
            protected.append(addr)
            continue
        record = parse_record(page) or {}
        project = live.projects.get(ident)
        refs = {"project": ident, "title": record_title(name)}
        notes = []
        found = record.get("activation")
        activation: dict[str, Any] = found if isinstance(found, dict) else {}
        tracker = record.get("tracker")
        in_use = {_canon(i.issue_type, live.trackers) for i in integ if i.project == ident} | \
            {r.get("tracker") for r in kept if r.get("project") == ident}
        enabled = {str(t.get("name")) for t in (project or {}).get("trackers", [])}
        if activation.get("enabled_tracker") and tracker in enabled and tracker not in in_use:
            refs["disable_tracker"] = str(tracker)
            notes.append(f"tracker {tracker}, enabled on {ident} for this integration, is disabled (its issues "
                         "stay)")
        if activation.get("test_issue") and not activation.get("deleted"):
            notes.append(f"its activation test issue #{activation['test_issue']} is an issue and is left")
        changes.append(Change(provider, "integration", name, Action.DELETE, addr, before=record,
                              id=str((project or {}).get("id") or ident), refs=refs, notes=notes,
                              precondition=Precondition(digest=_digest(record))))
        grants = record.get("grants")
        for group, roles in sorted(grants.items() if isinstance(grants, dict) else []):
            for role in roles if isinstance(roles, list) else []:
                revoked.setdefault(ident, {}).setdefault(str(group), {}).setdefault(str(role), set()).add(name)
    return revoked, changes, protected


def _plan_departures(integ: list[Integration], live: LiveState,
                     revoked: dict[str, dict[str, dict[str, set[str]]]]) -> None:
    """Roles a declared integration's record lists as granted to a group that it no longer gives that group
    (the team's role changed, or the team left its team_roles): they go as a removed integration's grants
    do, and the rewritten record no longer lists them (once the revoke succeeded)."""
    for i in integ:
        if live.projects.get(i.project) is None:
            continue
        record = parse_record(live.records.get(i.name)) or {}
        grants = record.get("grants")
        for group, roles in sorted(grants.items() if isinstance(grants, dict) else []):
            role = i.team_roles.get(str(group))
            now = _canon(role, live.roles) if role is not None else None
            for r in roles if isinstance(roles, list) else []:
                if str(r) != now:
                    revoked.setdefault(i.project, {}).setdefault(str(group), {}).setdefault(str(r), set()).add(
                        i.name)


def _managed_user_fields(m: Member) -> set[str]:
    """Unset is not empty: a name is managed only when the member declares it."""
    out = set()
    if "given_name" in m.model_fields_set or "display_name" in m.model_fields_set:
        out.add("firstname")
    if "family_name" in m.model_fields_set:
        out.add("lastname")
    return out


def desired_user(m: Member, login: str) -> dict[str, Any]:
    # Redmine requires a first and last name; without them the email's local part stands in.
    first = m.given_name or m.display_name or m.email.split("@", 1)[0]
    last = m.family_name or "-"
    return {"login": login, "firstname": first, "lastname": last, "mail": m.email}


def _integration_change(provider: str, c: str, i: Integration, tracker: str, project: dict[str, Any],
                        live: LiveState) -> list[Change]:
    addr = address(c, "integration", i.name)
    want: dict[str, Any] = {
        "program": i.program,
        "project": i.project,
        "tracker": tracker,
        "tracker_enabled": True,
        "trigger": i.trigger,
        "priorities": {k: _canon(v, live.priorities) for k, v in sorted(i.priorities.items())},
        "statuses": {k: _canon(v, live.statuses) for k, v in sorted(i.statuses.items())},
        "template": list(i.template),
        "comments": sorted(i.comments),
        "test_issue": i.test_issue,
        "delete_test_issue": i.delete_test_issue,
    }
    enabled = tracker in {str(t.get("name")) for t in project.get("trackers", [])}
    refs = {"project_id": str(project["id"])}
    record = parse_record(live.records.get(i.name))
    want["grants"] = _grants(i, record, live)
    if record is None:
        return [Change(provider, "integration", i.name, Action.CREATE, addr, after=want, refs=refs)]
    activation = record.get("activation")
    if isinstance(activation, dict) and activation.get("test_issue"):
        refs["test_issue"] = str(activation["test_issue"])
    if isinstance(activation, dict) and activation.get("enabled_tracker"):
        refs["enabled_tracker"] = "1"
    have = {k: record.get(k) for k in want}
    have["tracker_enabled"] = enabled
    diff = [AttributeChange(k, have[k], v) for k, v in want.items() if have[k] != v]
    if not diff:
        return []
    return [Change(provider, "integration", i.name, Action.UPDATE, addr, before=have, after=want, diff=diff,
                   id=str(project["id"]), precondition=Precondition(digest=_digest(record)), refs=refs)]


def _own_roles(m: dict[str, Any] | None) -> set[str]:
    """A membership's own roles (not those a user only inherits through a group)."""
    return {str(r["name"]) for r in (m or {}).get("roles", []) if not r.get("inherited")}


def _group_membership(live: LiveState, ident: str, group: str) -> dict[str, Any] | None:
    return next((m for m in live.memberships.get(ident, []) if (m.get("group") or {}).get("name") == group), None)


def _grants(i: Integration, record: dict[str, Any] | None, live: LiveState) -> dict[str, list[str]]:
    """The roles this integration gives each group in its project, recorded on its page so that removing the
    integration removes exactly those. Authoritative: every role it declares. Additive: the roles it adds
    (not held before) and those recorded earlier that the group still holds; a role the group already
    held was not its grant."""
    old = (record or {}).get("grants")
    old = old if isinstance(old, dict) else {}
    out: dict[str, list[str]] = {}
    for team, role in sorted(i.team_roles.items()):
        canon = _canon(role, live.roles)
        if canon is None:
            continue
        own = _own_roles(_group_membership(live, i.project, team))
        if i.role_membership == "authoritative":
            mine = {canon}
        else:  # only the role it gives the team now: one it gave before and took back is revoked
            had = {str(r) for r in old.get(team) or []} if isinstance(old.get(team), list) else set()
            mine = ({canon} & had) | ({canon} - own)
        out[team] = sorted(set(out.get(team, [])) | mine)
    return out


def _membership_changes(provider: str, c: str, ident: str, wanted: dict[str, set[str]], authoritative: bool,
                        live: LiveState, groups_by_name: dict[str, dict[str, Any]],
                        login_by_id: dict[int, str],
                        revoked: dict[str, dict[str, set[str]]] | None = None,
                        declared: set[str] | None = None) -> tuple[list[Change], int]:
    """Project memberships of the granted groups. Roles a membership only inherits (a user's roles through
    a group) are not the membership's own and are left alone. ``revoked``: group -> role -> the integrations
    whose recorded grant of it ends (removed ones, and ``declared`` ones that no longer give the group that
    role); those roles go unless a declared integration grants them."""
    revoked = revoked or {}
    declared = declared or set()

    def ending(gone: dict[str, set[str]]) -> dict[str, str]:
        names = set().union(*gone.values()) if gone else set()
        out = {}
        if names - declared:
            out["removed_integrations"] = ",".join(sorted(names - declared))
        if names & declared:  # their record is rewritten only once this revoke succeeded
            out["revoked_for"] = ",".join(sorted(names & declared))
        return out

    out: list[Change] = []
    managed_roles = {r for roles in wanted.values() for r in roles}
    live_by_principal: dict[str, dict[str, Any]] = {}
    for lm in live.memberships.get(ident, []):
        if "group" in lm:
            principal = str(lm["group"].get("name"))
        elif "user" in lm:
            uid = int(lm["user"]["id"])
            principal = "user:" + login_by_id.get(uid, f"id:{uid}")
        else:
            continue
        live_by_principal[principal] = lm
    for group, roles in sorted(wanted.items()):
        key = f"{ident}/{group}"
        addr = address(c, "membership", key)
        g = groups_by_name.get(group)
        refs = {"project": ident, **({"group_id": str(g["id"])} if g else {})}
        m = live_by_principal.get(group)
        if m is None:
            out.append(Change(provider, "membership", key, Action.CREATE, addr,
                              after={"project": ident, "group": group, "roles": sorted(roles)}, refs=refs))
            continue
        own = sorted(_own_roles(m))
        gone = {r: n for r, n in revoked.get(group, {}).items() if r in own and r not in roles}
        after = sorted(roles) if authoritative else sorted((set(own) | roles) - set(gone))
        refs.update(ending(gone))
        if after != own:
            out.append(Change(provider, "membership", key, Action.UPDATE, addr,
                              before={"project": ident, "group": group, "roles": own},
                              after={"project": ident, "group": group, "roles": after},
                              diff=[AttributeChange("roles", own, after)], id=str(m["id"]), refs=refs,
                              precondition=Precondition(digest=_digest(m))))
    managed = len(live.memberships.get(ident, []))
    # principals the config does not grant: authoritative takes the managed roles away from them, and
    # roles a removed integration recorded granting them go in any mode
    for principal, m in sorted(live_by_principal.items()):
        if principal in wanted:
            continue
        own = sorted(_own_roles(m))
        gone = {r: n for r, n in revoked.get(principal, {}).items() if r in own}
        keep = sorted(set(own) - (managed_roles if authoritative else set()) - set(gone))
        if not own or keep == own:
            continue
        key = f"{ident}/{principal}"
        addr = address(c, "membership", key)
        who = {"group": principal} if not principal.startswith("user:") else {"user": principal[5:]}
        before = {"project": ident, **who, "roles": own}
        refs = ending(gone)
        if keep:
            out.append(Change(provider, "membership", key, Action.UPDATE, addr, before=before,
                              after={**before, "roles": keep}, diff=[AttributeChange("roles", own, keep)],
                              id=str(m["id"]), refs=refs, precondition=Precondition(digest=_digest(m))))
        else:
            out.append(Change(provider, "membership", key, Action.DELETE, addr, before=before, id=str(m["id"]),
                              refs=refs, precondition=Precondition(digest=_digest(m))))
    return out, managed


# --- apply ---------------------------------------------------------------------------

class RedmineApplier:
    """Applies one connection's changes: users, then groups, then integrations and memberships, removals
    last, and the record pages of removed integrations after the role changes that revoke their grants (a
    failed revoke keeps the record, so a re-run finds what is left). A failed change does not stop
    independent ones; one that needs a failed one is skipped, named."""

    def __init__(self, client: RedmineClient, conn: RedmineConnection,
                 observer: Callable[[Outcome], None] | None = None) -> None:
        self.client, self.conn, self.observer = client, conn, observer
        self.ids: dict[str, str] = {}  # "user:<login>" / "group:<name>" -> live id
        self.failed: set[str] = set()  # addresses
        self.failed_changes: list[Change] = []
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._roles: dict[str, int] | None = None
        self._trackers: dict[str, int] | None = None

    def run(self, changes: list[Change]) -> list[Outcome]:
        for ch in changes:
            if ch.kind == "user" and ch.id:
                self.ids["user:" + ch.key.casefold()] = ch.id
            if ch.kind == "group":
                if ch.id:
                    self.ids["group:" + ch.key] = ch.id
                for login, uid in ch.refs.items():
                    self.ids.setdefault("user:" + login.casefold(), uid)
        by = {k: [ch for ch in changes if ch.kind == k] for k in ("user", "group", "integration", "membership")}
        keep = [ch for ch in by["membership"] + by["group"] if ch.action is not Action.DELETE]
        removed = [ch for ch in by["integration"] if ch.action is Action.DELETE]
        # a declared integration whose team left a role is rewritten after the revoke, so that its record
        # keeps the grant when the revoke fails
        waits = {n for ch in by["membership"] for n in ch.refs.get("revoked_for", "").split(",") if n}
        declared = [ch for ch in by["integration"] if ch.action is not Action.DELETE]
        self._parallel(by["user"], self._user)
        self._parallel([ch for ch in keep if ch.kind == "group"], self._group)
        self._parallel([ch for ch in declared if ch.key not in waits], self._integration)
        self._parallel([ch for ch in keep if ch.kind == "membership"], self._membership)
        self._parallel([ch for ch in by["membership"] if ch.action is Action.DELETE], self._delete)
        self._parallel([ch for ch in declared if ch.key in waits], self._after_revokes)
        self._parallel([ch for ch in by["group"] if ch.action is Action.DELETE], self._delete)
        self._parallel(removed, self._remove_integration)
        return self.outcomes

    def _parallel(self, changes: list[Change], fn: Callable[[Change], None]) -> None:
        run_changes(changes, fn, workers=self.conn.concurrency, name=f"apply-redmine-{self.conn.name}",
                    on_done=self._done)

    def _done(self, o: Outcome) -> None:
        with self._lock:
            if not o.ok:
                self.failed.add(o.change.address)
                self.failed_changes.append(o.change)
            self.outcomes.append(o)
        if self.observer is not None:
            self.observer(o)

    def _need(self, kind: str, key: str) -> str:
        ident = self.ids.get(f"{kind}:{key.casefold() if kind == 'user' else key}")
        if ident is None:
            dep = address(self.conn.name, kind, key)
            why = "which failed" if dep in self.failed else "which does not exist"
            raise ReconcilerError(f"skipped: depends on {dep}, {why}")
        return ident

    def _role_ids(self, names: list[str]) -> list[int]:
        if self._roles is None:
            self._roles = {str(r["name"]): int(r["id"]) for r in self.client.enumeration("roles.json", "roles")}
        missing = [n for n in names if n not in self._roles]
        if missing:
            raise ReconcilerError(f"role(s) {', '.join(missing)} no longer exist on Redmine; plan again")
        return [self._roles[n] for n in names]

    def _tracker_id(self, name: str) -> int:
        if self._trackers is None:
            self._trackers = {str(t["name"]): int(t["id"])
                              for t in self.client.enumeration("trackers.json", "trackers")}
        if name not in self._trackers:
            raise ReconcilerError(f"tracker {name} no longer exists on Redmine; plan again")
        return self._trackers[name]

    # users and groups
    def _user(self, ch: Change) -> None:
        assert ch.after is not None
        if ch.action is Action.CREATE:
            body = {"user": {**ch.after, "generate_password": True, "send_information": False}}
            res = self.client.create("users.json", body, lambda: self.client.find_user(ch.key),
                                     f"cannot create user {ch.key}")
            with self._lock:
                self.ids["user:" + ch.key.casefold()] = str(res["id"])
            return
        fields = {d.path: d.after for d in ch.diff}
        self.client.write("PUT", f"users/{seg(ch.id)}.json", {"user": fields}, f"cannot update user {ch.key}")

    def _group(self, ch: Change) -> None:
        assert ch.after is not None
        want = list(ch.after["users"])
        known: dict[str, int] = {}  # login -> id
        missing: list[str] = []
        for login in want:
            uid = self.ids.get("user:" + login.casefold()) or (login[3:] if login.startswith("id:") else None)
            if uid is None:
                missing.append(login)
            else:
                known[login] = int(uid)
        if ch.action is Action.CREATE:
            body = {"group": {"name": ch.key, "user_ids": sorted(known.values())}}
            res = self.client.create("groups.json", body, lambda: self.client.find_group(ch.key),
                                     f"cannot create group {ch.key}")
            gid = str(res["id"])
            with self._lock:
                self.ids["group:" + ch.key] = gid
            # a group found by the lookup (a retried apply) may lack some users
            have = {int(u["id"]) for u in self.client.group(int(gid)).get("users", [])}
            add = sorted(set(known.values()) - have)
            if add:
                self.client.write("POST", f"groups/{seg(gid)}/users.json", {"user_ids": add},
                                  f"cannot add users to group {ch.key}")
        else:
            assert ch.before is not None and ch.id is not None
            before = {x.casefold(): x for x in ch.before["users"]}
            after_cf = {x.casefold() for x in want}
            add = sorted(uid for login, uid in known.items() if login.casefold() not in before)
            if add:
                self.client.write("POST", f"groups/{seg(ch.id)}/users.json", {"user_ids": add},
                                  f"cannot add users to group {ch.key}")
            for cf, login in sorted(before.items()):
                if cf in after_cf:
                    continue
                uid = login[3:] if login.startswith("id:") else ch.refs.get(login)
                if uid is None:
                    raise ReconcilerError(f"cannot remove {login} from group {ch.key}: no id known; plan again")
                self.client.write("DELETE", f"groups/{seg(ch.id)}/users/{seg(uid)}.json", None,
                                  f"cannot remove user {login} from group {ch.key}", ok=(404,))
        if missing:
            raise ReconcilerError(f"group {ch.key}: cannot add {', '.join(missing)}: the user was not created")

    def _delete(self, ch: Change) -> None:
        path = f"groups/{seg(ch.id)}.json" if ch.kind == "group" else f"memberships/{seg(ch.id)}.json"
        self.client.write("DELETE", path, None, f"cannot delete {ch.kind} {ch.key}", ok=(404,))

    # memberships and integrations
    def _membership(self, ch: Change) -> None:
        assert ch.after is not None
        roles = self._role_ids(list(ch.after["roles"]))
        if ch.action is Action.UPDATE:
            self.client.write("PUT", f"memberships/{seg(ch.id)}.json", {"membership": {"role_ids": roles}},
                              f"cannot update membership {ch.key}")
            return
        ident, group = str(ch.after["project"]), str(ch.after["group"])
        gid = ch.refs.get("group_id") or self._need("group", group)

        def lookup() -> dict[str, Any] | None:
            for m in self.client.memberships(ident):
                if str((m.get("group") or {}).get("id")) == gid:
                    return m
            return None

        found = self.client.create(f"projects/{quote(ident, safe='')}/memberships.json",
                                   {"membership": {"user_id": int(gid), "role_ids": roles}}, lookup,
                                   f"cannot create membership {ch.key}")
        own = {int(r["id"]) for r in found.get("roles", []) if not r.get("inherited")}
        if own != set(roles):  # found by the lookup with other roles: make them the planned ones
            self.client.write("PUT", f"memberships/{seg(found['id'])}.json", {"membership": {"role_ids": roles}},
                              f"cannot update membership {ch.key}")

    def _integration(self, ch: Change) -> None:
        assert ch.after is not None
        after = ch.after
        ident = str(after["project"])
        found = self.client.project(ident)
        if found is None:
            raise NotFoundError(f"project {ident} no longer exists; plan again")
        project = found
        pid = int(project["id"])
        tid = self._tracker_id(str(after["tracker"]))
        trackers = [int(t["id"]) for t in project.get("trackers", [])]
        modules = [str(m["name"]) for m in project.get("enabled_modules", [])]
        update: dict[str, Any] = {}
        activation: dict[str, Any] = {}
        if tid not in trackers:
            update["tracker_ids"] = sorted(trackers + [tid])
            activation["enabled_tracker"] = True  # so that removing the integration disables it again
        elif "enabled_tracker" in ch.refs:
            activation["enabled_tracker"] = True
        if "wiki" not in modules:  # the record page needs the project's wiki
            update["enabled_module_names"] = sorted(modules + ["wiki"])
        if update:
            self.client.write("PUT", f"projects/{seg(pid)}.json", {"project": update},
                              f"cannot update project {ident}")
        if "test_issue" in ch.refs:
            activation["test_issue"] = int(ch.refs["test_issue"])
        if ch.action is Action.CREATE and after.get("test_issue"):
            activation.update(self._test_issue(ch.key, pid, tid, bool(after.get("delete_test_issue"))))
        settings = {k: v for k, v in after.items() if k != "tracker_enabled"}
        title = record_title(ch.key)
        self.client.write("PUT", f"projects/{quote(ident, safe='')}/wiki/{quote(title, safe='')}.json",
                          {"wiki_page": {"text": record_text(ch.key, settings, activation),
                                         "comments": "written by reconciler"}},
                          f"cannot write the record page {title} of project {ident}")

    def _after_revokes(self, ch: Change) -> None:
        for f in self.failed_changes:
            if ch.key in f.refs.get("revoked_for", "").split(","):
                raise ReconcilerError(f"skipped: depends on {f.address}, which failed")
        self._integration(ch)

    def _remove_integration(self, ch: Change) -> None:
        """A removed integration: its tracker (when planned), then its record page, the last of its marks."""
        for f in self.failed_changes:
            if ch.key in f.refs.get("removed_integrations", "").split(","):
                raise ReconcilerError(f"skipped: depends on {f.address}, which failed")
        ident, title = str(ch.refs["project"]), str(ch.refs["title"])
        page = self.client.wiki_page(ident, title)
        if page is None:
            return  # removed since the plan was made
        if ch.precondition is not None and _digest(parse_record(page) or {}) != ch.precondition.digest:
            raise StalePlanError(f"{ch.address}: the record page changed since the plan was made; plan again")
        tracker = ch.refs.get("disable_tracker")
        if tracker:
            project = self.client.project(ident)
            tid = self._tracker_id(tracker)
            have = [int(t["id"]) for t in (project or {}).get("trackers", [])]
            if project is not None and tid in have:
                self.client.write("PUT", f"projects/{project['id']}.json",
                                  {"project": {"tracker_ids": sorted(set(have) - {tid})}},
                                  f"cannot disable tracker {tracker} on project {ident}")
        self.client.write("DELETE", f"projects/{quote(ident, safe='')}/wiki/{quote(title, safe='')}.json", None,
                          f"cannot delete the record page {title} of project {ident}", ok=(404,))

    def _test_issue(self, name: str, pid: int, tid: int, delete: bool) -> dict[str, Any]:
        subject = TEST_SUBJECT.format(name=name)
        body = {"issue": {"project_id": pid, "tracker_id": tid, "subject": subject,
                          "description": f"Created by reconciler to prove that integration '{name}' can create "
                                         "issues in this project."}}
        issue = self.client.create("issues.json", body, lambda: self.client.find_issue(pid, subject),
                                   f"cannot create the activation test issue of integration {name}")
        if delete:
            self.client.write("DELETE", f"issues/{issue['id']}.json", None,
                              f"cannot delete the activation test issue {issue['id']}", ok=(404,))
        return {"test_issue": int(issue["id"]), "deleted": delete}


# --- the Planner ---------------------------------------------------------------------

class RedminePlanner:
    """Every redmine connection of a config, as one live system (``reconciler.contract.LiveSystem``)."""

    prefix = PREFIX

    def client(self, session: Session, conn: RedmineConnection) -> RedmineClient:
        key = f"{PREFIX}{conn.name}"
        client: RedmineClient = session.connection(key, lambda: connect(
            conn, transport=session.transports.get(key), recorder=session.recorder, base_dir=session.base_dir,
            sleep=session.sleep, attempts=session.attempts))
        return client

    def plan(self, session: Session) -> ProviderPlan:
        out = ProviderPlan([], [], [], 0)
        for conn in redmine_connections(session.config):
            live = read_live(self.client(session, conn), session.config, conn)
            pp = plan_connection(session.config, conn, live)
            if not session.targets:
                check_removals(f"{PREFIX}{conn.name}", pp.changes, pp.managed, conn.max_removals,
                               conn.max_removal_percent, session.allow_removals)
            out.changes += pp.changes
            out.notes += pp.notes
            out.protected += pp.protected
            out.managed += pp.managed
        return out

    def apply(self, session: Session, changes: list[Change], observer: Callable[[Any], None] | None) \
            -> list[Any]:
        outcomes: list[Any] = []
        for conn in redmine_connections(session.config):
            mine = [ch for ch in changes if ch.provider == f"{PREFIX}{conn.name}"]
            if mine:
                outcomes += RedmineApplier(self.client(session, conn), conn, observer).run(mine)
        return outcomes

    def select(self, changes: list[Change], targets: list[str], config: Config) -> list[Change]:
        return select_by_prefix(changes, targets, config)

    def stale(self, session: Session, changes: list[Change], facts: dict[str, Any]) -> list[Check]:
        return stale_by_replanning(self, session, changes, PREFIX.rstrip("."))

    def check(self, session: Session) -> list[CheckResult]:
        out = []
        for conn in redmine_connections(session.config):
            res = CheckResult(f"{PREFIX}{conn.name}", ok=False)
            out.append(res)
            key = f"{PREFIX}{conn.name}"
            if key not in session.transports:
                try:
                    check_url(conn.base_url)
                except ReconcilerError as exc:
                    res.steps.append(("url", False, str(exc)))
                    continue
            try:
                client = self.client(session, conn)
                me = client.current_user()
            except ReconcilerError as exc:
                res.steps.append(("authentication", False, str(exc)))
                continue
            res.steps.append(("authentication", True, f"API key accepted (user '{me.get('login')}')"))
            if not me.get("admin"):
                res.steps.append(("administrator", False, f"'{me.get('login')}' is not an administrator; "
                                  "users and groups need an administrator's API key"))
                continue
            try:
                n = client.get("users.json", {"limit": "1", "status": ""}).get("total_count")
            except ReconcilerError as exc:
                res.steps.append(("users", False, str(exc)))
                continue
            res.steps.append(("administrator", True, f"can list users ({n} users)"))
            res.ok = True
        return out


planner = RedminePlanner()

__all__ = ["LiveState", "PREFIX", "RedmineApiKey", "RedmineApplier", "RedmineClient", "RedminePlanner",
           "connect", "plan_connection", "planner", "read_live"]
