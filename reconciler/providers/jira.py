"""Jira Cloud and Jira Data Center: check integrations against the live Jira, plan and apply the Jira side.

At plan time every name an integration uses (project, issue type, priority, status, resolution,
role, fallback users, mapped accounts) is looked up, and the integration user's permissions on the
project are compared with what the integration needs; every mismatch is one PlanError line that
lists the valid values. Apply converges project role actors, the integration's resolved settings
(a project property), admin webhooks (matched by name) and the activation test issue. An integration
removed from the config is found by reconciler's own marks (its property, its webhook's name) and its
property, webhook and recorded role grants are planned for deletion.

Cloud speaks REST v3 with account IDs and basic auth (email + API token); Data Center speaks REST v2
with usernames and a personal access token. Both are read with paged calls where Jira pages.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from reconciler.config.models import Config
from reconciler.contract import Check, CheckResult
from reconciler.errors import (
    AuthError,
    NotFoundError,
    PlanError,
    ProviderError,
    ReconcilerError,
    ServerError,
    StalePlanError,
)
from reconciler.execute import Outcome, run_changes
from reconciler.integrations.models import Integration, JiraCloudConnection, JiraConnection, RedmineConnection
from reconciler.plan.model import Action, AttributeChange, Change, Precondition
from reconciler.plan.safety import check_removals
from reconciler.providers._http import BasicAuth, BearerToken, Http, build_client, ca_path
from reconciler.providers.paging import Page, read_pages
from reconciler.providers.paths import seg
from reconciler.providers.tracker import select_by_prefix, stale_by_replanning
from reconciler.secrets import redact, resolve
from reconciler.usermaps.resolve import fallback_users, identities_for, mapped_identities

PREFIX = "jira."
JIRA_TYPES = ("jira-cloud", "jira-datacenter")

# What the platform does with the project: (permission key, what Jira's UI calls it).
INTEGRATION_PERMISSIONS = (
    ("BROWSE_PROJECTS", "Browse projects"), ("CREATE_ISSUES", "Create issues"), ("EDIT_ISSUES", "Edit issues"),
    ("TRANSITION_ISSUES", "Transition issues"), ("RESOLVE_ISSUES", "Resolve issues"),
    ("CLOSE_ISSUES", "Close issues"), ("ADD_COMMENTS", "Add comments"),
    ("CREATE_ATTACHMENTS", "Create attachments"),
)
DELETE_PERMISSION = ("DELETE_ISSUES", "Delete issues")
# What reconciler itself needs to store the settings property and manage role actors / admin webhooks.
ADMIN_PROJECT = ("ADMINISTER_PROJECTS", "Administer projects")
ADMIN_GLOBAL = ("ADMINISTER", "Jira administrator (global)")

PROPERTY_SCHEMA = 1
PROPERTY_PREFIX = "reconciler.integration."
# The default webhook name (Integration.webhook_name) and the project a default JQL filter names.
_CONVENTION = re.compile(r"^reconciler (?P<name>[a-z0-9][a-z0-9_-]*)$")
_JQL_PROJECT = re.compile(r'\bproject\s*=\s*"?(?P<one>[A-Z][A-Z0-9_]*)"?|\bproject\s+in\s*\((?P<many>[^)]*)\)', re.I)
TEST_LABEL_PREFIX = "reconciler-test-"
CLOUD_PAGE = 100
USER_CHUNK = 50  # account IDs per /user/bulk call (keeps the URL short)


def address(conn: str, kind: str, key: str) -> str:
    return f'{PREFIX}{conn}.{kind}["{key}"]'


def jira_connections(config: Config) -> list[JiraConnection]:
    return [c for c in config.connections if not isinstance(c, RedmineConnection)]


def integrations_for(config: Config, conn: str) -> list[Integration]:
    return [i for i in config.integrations if i.connection == conn]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _where(i: Integration, field: str | None = None) -> str:
    f, line, col = i.where(field)
    return f"{f}:{line}:{col}"


def _choices(names: Iterable[str]) -> str:
    names = sorted(set(names), key=str.lower)
    if not names:
        return "none exist"
    return "valid: " + ", ".join(f"'{n}'" for n in names)


# --- the wire protocol ------------------------------------------------------------

class JiraClient:
    """The Jira REST calls reconciler makes, for one connection (Cloud v3 or Data Center v2)."""

    def __init__(self, http: Http, conn: JiraConnection) -> None:
        self.http = http
        self.conn = conn
        self.cloud = isinstance(conn, JiraCloudConnection)
        self.api = "rest/api/3" if self.cloud else "rest/api/2"

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, what: str, **params: Any) -> Any:
        return self.http.get_json(f"{self.api}/{path}", what=what, params=params or None)

    def _paged(self, path: str, what: str, **params: Any) -> Iterator[dict[str, Any]]:
        """startAt/maxResults pages, until isLast (or an empty page), bounded (``paging.read_pages``)."""
        def fetch(offset: int) -> Page:
            page = self._get(path, what, startAt=offset, maxResults=CLOUD_PAGE, **params)
            values = page.get("values") if isinstance(page, dict) else None
            if not isinstance(values, list):
                raise ServerError(f"{what}: the answer has no 'values' list", "GET", self.http._full(path))
            total = page.get("total")
            return Page([v for v in values if isinstance(v, dict)],
                        total if isinstance(total, int) and not isinstance(total, bool) else None,
                        bool(page.get("isLast", True)))

        items, _ = read_pages(fetch, page_size=CLOUD_PAGE, url=self.http._full(path),
                              key=lambda v: json.dumps(v, sort_keys=True))
        yield from items

    # identity and projects
    def myself(self) -> dict[str, Any]:
        return dict(self._get("myself", "cannot read the integration user (myself)"))

    def identity_of(self, user: dict[str, Any]) -> str:
        return str(user.get("accountId") if self.cloud else user.get("name"))

    def project(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self._get(f"project/{seg(key)}", f"cannot read project {key}"))
        except NotFoundError:
            return None

    def project_keys(self) -> list[str]:
        if self.cloud:
            return [str(p["key"]) for p in self._paged("project/search", "cannot list projects")]
        return [str(p["key"]) for p in self._get("project", "cannot list projects")]

    def statuses(self, key: str) -> list[dict[str, Any]]:
        return list(self._get(f"project/{seg(key)}/statuses", f"cannot read the statuses of project {key}"))

    def priorities(self) -> list[dict[str, Any]]:
        return list(self._paged("priority/search" if self.cloud else "priority/page", "cannot list priorities"))

    def resolutions(self) -> list[dict[str, Any]]:
        return list(self._paged("resolution/search" if self.cloud else "resolution/page",
                                "cannot list resolutions"))

    def role_ids(self, key: str) -> dict[str, int]:
        roles = self._get(f"project/{seg(key)}/role", f"cannot list the roles of project {key}")
        return {name: int(str(url).rstrip("/").rsplit("/", 1)[-1]) for name, url in roles.items()}

    def role_users(self, key: str, rid: int) -> list[str]:
        role = self._get(f"project/{seg(key)}/role/{seg(rid)}", f"cannot read role {rid} of project {key}")
        out = []
        for a in role.get("actors") or []:
            if a.get("type") != "atlassian-user-role-actor":
                continue
            ident = (a.get("actorUser") or {}).get("accountId") if self.cloud else a.get("name")
            if ident:
                out.append(str(ident))
        return sorted(out)

    def permissions(self, key: str, wanted: list[str]) -> dict[str, bool]:
        params: dict[str, Any] = {"projectKey": key}
        if self.cloud:  # Cloud requires the list; Data Center answers with every permission
            params["permissions"] = ",".join(wanted)
        body = self._get("mypermissions", f"cannot read the integration user's permissions on {key}", **params)
        perms = body.get("permissions") or {}
        return {k: bool((perms.get(k) or {}).get("havePermission")) for k in wanted}

    def users(self, idents: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Look up accounts: Cloud in /user/bulk pages of USER_CHUNK IDs; Data Center by paging /user/list."""
        want = sorted(set(idents))
        if not want:
            return {}
        out: dict[str, dict[str, Any]] = {}
        if self.cloud:
            for n in range(0, len(want), USER_CHUNK):
                chunk = want[n:n + USER_CHUNK]
                for u in self._paged("user/bulk", "cannot look up Jira accounts", accountId=chunk):
                    out[str(u["accountId"])] = u
            return out
        wanted = {w.lower(): w for w in want}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"maxResults": 1000}
            if cursor is not None:
                params["cursor"] = cursor
            page = self._get("user/list", "cannot list Jira users", **params)
            for u in page.get("values") or []:
                name = str(u.get("name", ""))
                if name.lower() in wanted:
                    out[wanted[name.lower()]] = u
            cursor = page.get("nextCursor")
            if page.get("isLast", True) or not cursor or not page.get("values"):
                return out

    # project property
    def get_property(self, key: str, prop: str) -> Any | None:
        try:
            path = f"project/{seg(key)}/properties/{seg(prop)}"
            return self._get(path, f"cannot read property {prop} of {key}")["value"]
        except NotFoundError:
            return None

    def put_property(self, key: str, prop: str, value: Any) -> None:
        self.http.request("PUT", f"{self.api}/project/{seg(key)}/properties/{seg(prop)}", json=value,
                          what=f"cannot store property {prop} on project {key}")

    def property_keys(self, key: str) -> list[str] | None:
        """The keys of a project's properties (one call, unpaged in Jira); None if the project is gone."""
        try:
            body = self._get(f"project/{seg(key)}/properties", f"cannot list the properties of project {key}")
        except NotFoundError:
            return None
        return [str(k.get("key")) for k in body.get("keys") or []]

    def delete_property(self, key: str, prop: str) -> None:
        self.http.request("DELETE", f"{self.api}/project/{seg(key)}/properties/{seg(prop)}", ok=(404,),
                          what=f"cannot delete property {prop} of project {key}")

    # role actors
    def add_role_users(self, key: str, rid: int, idents: list[str]) -> None:
        def recover() -> Any:  # a lost attempt may have added them already
            have = set(self.role_users(key, rid))
            return True if set(idents) <= have else None
        self.http.request("POST", f"{self.api}/project/{seg(key)}/role/{seg(rid)}", json={"user": idents},
                          recover=recover, what=f"cannot add users to role {rid} of project {key}")

    def remove_role_user(self, key: str, rid: int, ident: str) -> None:
        self.http.request("DELETE", f"{self.api}/project/{seg(key)}/role/{seg(rid)}", params={"user": ident}, ok=(404,),
                          what=f"cannot remove a user from role {rid} of project {key}")

    # admin webhooks (not in the OpenAPI descriptions; see docs/jira.md)
    def webhooks(self) -> list[dict[str, Any]]:
        return list(self.http.get_json("rest/webhooks/1.0/webhook", what="cannot list admin webhooks"))

    def create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        def recover() -> Any:
            return next((w for w in self.webhooks() if w.get("name") == body["name"]), None)
        r = self.http.request("POST", "rest/webhooks/1.0/webhook", json=body, recover=recover,
                              what=f"cannot create webhook '{body['name']}'")
        return r.json() if isinstance(r, httpx.Response) else dict(r)  # type: ignore[no-any-return]

    def update_webhook(self, wid: str, body: dict[str, Any]) -> None:
        self.http.request("PUT", f"rest/webhooks/1.0/webhook/{seg(wid)}", json=body,
                          what=f"cannot update webhook '{body['name']}'")

    def delete_webhook(self, wid: str) -> None:
        self.http.request("DELETE", f"rest/webhooks/1.0/webhook/{seg(wid)}", ok=(404,), what="cannot delete a webhook")

    # issues (the activation test issue)
    def labelled_issues(self, project: str, label: str) -> list[dict[str, Any]]:
        jql = f'project = {project} AND labels = "{label}"'
        # Cloud: the enhanced search (the old /search is being removed); Data Center: POST /search, whose
        # body types 'fields' properly (the GET form's parameter is mistyped in the description)
        r = self.http.request("POST", f"{self.api}/search/jql" if self.cloud else f"{self.api}/search",
                              json={"jql": jql, "fields": ["summary", "labels"], "maxResults": 50},
                              what=f"cannot search project {project}")
        return list(r.json().get("issues") or [])

    def create_issue(self, project: str, issue_type_id: str, summary: str, label: str,
                     description: str) -> dict[str, Any]:
        desc: Any = description
        if self.cloud:  # REST v3 takes Atlassian Document Format
            desc = {"type": "doc", "version": 1,
                    "content": [{"type": "paragraph", "content": [{"type": "text", "text": description}]}]}
        body = {"fields": {"project": {"key": project}, "issuetype": {"id": issue_type_id}, "summary": summary,
                           "labels": [label], "description": desc}}

        def recover() -> Any:  # a retried create never creates a second test issue
            found = self.labelled_issues(project, label)
            return found[0] if found else None
        r = self.http.request("POST", f"{self.api}/issue", json=body, recover=recover,
                              what=f"cannot create the test issue in {project}")
        return r.json() if isinstance(r, httpx.Response) else dict(r)  # type: ignore[no-any-return]

    def delete_issue(self, key: str) -> None:
        self.http.request("DELETE", f"{self.api}/issue/{seg(key)}", ok=(404,), what=f"cannot delete issue {key}")


def connect(conn: JiraConnection, *, transport: httpx.BaseTransport | None = None, recorder: Any = None,
            base_dir: str | None = None, sleep: Callable[[float], None] | None = None,
            attempts: int = 5) -> JiraClient:
    auth: httpx.Auth
    if isinstance(conn, JiraCloudConnection):
        token = resolve(conn.api_token, f"{conn.locate('api_token')}: connections.{conn.name}.api_token", base_dir)
        auth = BasicAuth(conn.email, token)
    else:
        auth = BearerToken(resolve(conn.token, f"{conn.locate('token')}: connections.{conn.name}.token", base_dir))
    client = build_client(conn.url, auth=auth, timeout=conn.timeout, ca_bundle=ca_path(conn, base_dir),
                          transport=transport,
                          headers={"Accept": "application/json"}, max_connections=8)
    kw: dict[str, Any] = {"recorder": recorder, "attempts": attempts}
    if sleep is not None:
        kw["sleep"] = sleep
    return JiraClient(Http(client, conn.name, **kw), conn)


# --- planning -----------------------------------------------------------------------

@dataclass
class JiraPlan:
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    managed: int = 0  # integration records and webhooks of reconciler's seen live (the removal threshold's base)


@dataclass
class _Live:
    """What one connection's plan read, shared by its integrations."""

    me: str = ""
    priorities: list[dict[str, Any]] | None = None
    resolutions: list[dict[str, Any]] | None = None
    webhooks: list[dict[str, Any]] | None = None
    project_keys: list[str] | None = None
    users: dict[str, dict[str, Any]] = field(default_factory=dict)


def _by_name(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(x["name"]): x for x in items}


def _renamed(recorded: dict[str, Any] | None, live: Iterable[dict[str, Any]]) -> str:
    """' (id N is now called 'X': renamed in Jira?)' when the settings property remembers the id."""
    if not recorded or "id" not in recorded:
        return ""
    for x in live:
        if str(x.get("id")) == str(recorded["id"]) and x.get("name") != recorded.get("name"):
            return f" (id {recorded['id']}, recorded as '{recorded.get('name')}', is now called '{x['name']}': " \
                   "renamed in Jira?)"
    return ""


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value}


def diff_values(before: Any, after: Any) -> list[AttributeChange]:
    """Leaf-level differences between two JSON values (paths like priorities.critical.id)."""
    b, a = _flatten("", before), _flatten("", after)
    return [AttributeChange(k, b.get(k), a.get(k)) for k in sorted(set(b) | set(a)) if b.get(k) != a.get(k)]


def webhook_body(i: Integration) -> dict[str, Any] | None:
    if i.webhook is None:
        return None
    jql = i.webhook.jql if i.webhook.jql is not None else f"project = {i.project}"
    return {"name": i.webhook_name(), "url": i.webhook.url, "events": sorted(i.webhook.events),
            "filters": {"issue-related-events-section": jql}, "excludeBody": False, "enabled": i.webhook.enabled}


def _live_webhook(w: dict[str, Any]) -> dict[str, Any]:
    return {"name": w.get("name"), "url": w.get("url"), "events": sorted(w.get("events") or []),
            "filters": {"issue-related-events-section": (w.get("filters") or {}).get("issue-related-events-section",
                                                                                    "")},
            "excludeBody": bool(w.get("excludeBody", False)), "enabled": bool(w.get("enabled", True))}


def _idents(value: Any) -> set[str]:
    """The identities a recorded grant lists (anything else in an edited record is ignored)."""
    return {str(u) for u in value} if isinstance(value, list) else set()


def _webhook_id(w: dict[str, Any]) -> str:
    return str(w.get("id") or str(w.get("self", "")).rstrip("/").rsplit("/", 1)[-1])


class ConnectionPlanner:
    """Plans one Jira connection: reads what its integrations use, checks it, and diffs."""

    def __init__(self, config: Config, conn: JiraConnection, client: JiraClient) -> None:
        self.config, self.conn, self.client = config, conn, client
        self.out = JiraPlan()
        self.live = _Live()
        # (project, role) -> (role id, membership mode, wanted identity -> member email)
        self.roles: dict[tuple[str, str], tuple[int, str, dict[str, str]]] = {}
        # integration -> role -> (role id, identities its teams want there)
        self.wanted_by: dict[str, dict[str, tuple[int, set[str]]]] = {}
        # integration -> role -> team -> identities that team wants there
        self.team_wanted: dict[str, dict[str, dict[str, set[str]]]] = {}
        # (project, role) -> (role id, identity -> the integrations whose recorded grant of it ends: removed
        # ones, and declared ones whose team left the role)
        self.retired: dict[tuple[str, str], tuple[int, dict[str, set[str]]]] = {}
        # (project, role) -> identities declared integrations still record granting through a declared team
        self.kept: dict[tuple[str, str], set[str]] = {}
        self.declared: set[str] = set()
        # (project, role) -> (users before, users after) this plan
        self.role_state: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
        # properties are planned last: they record the role grants, known once the roles are planned
        self.pending: list[tuple[Integration, Any, dict[str, Any]]] = []

    def problem(self, i: Integration | None, field: str | None, text: str) -> None:
        where = f"{_where(i, field)}: integration '{i.name}': " if i is not None else ""
        self.out.problems.append(f"{where}{text}")

    def plan(self) -> JiraPlan:
        ints = integrations_for(self.config, self.conn.name)
        self.declared = {i.name for i in ints}
        me = self.client.myself()
        self.live.me = self.client.identity_of(me)
        if me.get("active") is False:
            self.out.problems.append(f"connection '{self.conn.name}': the integration user is deactivated in Jira")
        # every account this connection's config names: mapped identities, fallback users, team members
        mapped = mapped_identities(self.config, self.conn.name)
        fallbacks = [fb for fb in fallback_users(self.config) if fb.system == self.conn.name]
        wanted = set(mapped)
        for fb in fallbacks:
            wanted.update(identities_for(self.config, fb.member, self.conn.name)[:1])
        self.live.users = self.client.users(wanted) if wanted else {}
        self._check_accounts(mapped, fallbacks)
        if any(i.priorities for i in ints):
            self.live.priorities = self.client.priorities()
        if any(i.resolutions for i in ints):
            self.live.resolutions = self.client.resolutions()
        for i in ints:
            self._plan_integration(i)
        if not self.out.problems:
            self._plan_removed(ints)
            self._plan_role_changes()
            for i, recorded, settings in self.pending:
                settings["grants"] = self._grants(i, recorded)
                self._plan_property(i, recorded, settings)
        return self.out

    def _check_accounts(self, mapped: dict[str, str], fallbacks: list[Any]) -> None:
        members = {m.key: m for m in self.config.members}
        kind = "account ID" if self.client.cloud else "username"
        for ident, email in sorted(mapped.items()):
            u = self.live.users.get(ident)
            member = members.get(email.lower())
            if u is None:
                self.out.problems.append(f"user map of {email}: {self.conn.name} {kind} '{ident}' does not exist "
                                         "in Jira")
            elif u.get("active") is False:
                if member is not None and member.active:
                    self.out.problems.append(f"user map of {email}: {self.conn.name} {kind} '{ident}' is "
                                             "deactivated in Jira")
                else:
                    self.out.notes.append(f"{self.conn.name}: {kind} '{ident}' of inactive member {email} is "
                                          "deactivated in Jira")
        for fb in fallbacks:
            ids = identities_for(self.config, fb.member, self.conn.name)
            f, line, col = fb.where()
            if not ids:
                self.out.problems.append(f"{f}:{line}:{col}: {fb.describe()}: {fb.member} has no identity in "
                                         f"{self.conn.name}")
                continue
            u = self.live.users.get(ids[0])
            if u is None or u.get("active") is False:
                state = "does not exist" if u is None else "is deactivated"
                self.out.problems.append(f"{f}:{line}:{col}: {fb.describe()}: {kind} '{ids[0]}' of {fb.member} "
                                         f"{state} in Jira")

    def _project_missing(self, i: Integration) -> None:
        if self.live.project_keys is None:
            self.live.project_keys = self.client.project_keys()
        self.problem(i, "project", f"project '{i.project}' does not exist in {self.conn.name} or the integration "
                                   f"user cannot browse it; {_choices(self.live.project_keys)}")

    def _plan_integration(self, i: Integration) -> None:
        n_problems = len(self.out.problems)
        project = self.client.project(i.project)
        if project is None:
            self._project_missing(i)
            return
        if project.get("key") != i.project:
            self.problem(i, "project", f"project '{i.project}' has moved: Jira now calls it '{project.get('key')}' "
                                       f"(id {project.get('id')}); write project: {project.get('key')}")
            return
        recorded = self.client.get_property(i.project, i.property_key)
        rec: dict[str, Any] = recorded if isinstance(recorded, dict) else {}

        settings: dict[str, Any] = {
            "schema": PROPERTY_SCHEMA, "managedBy": "reconciler", "integration": i.name, "program": i.program,
            "connection": self.conn.name, "project": {"id": str(project["id"]), "key": i.project},
        }
        # issue type, in this project
        types = [t for t in project.get("issueTypes") or [] if not t.get("subtask")]
        it = _by_name(types).get(i.issue_type)
        if it is None:
            self.problem(i, "issue_type", f"issue type '{i.issue_type}' is not available in project {i.project}; "
                                          f"{_choices(t['name'] for t in types)}"
                                          f"{_renamed(rec.get('issueType'), types)}")
        else:
            settings["issueType"] = {"id": str(it["id"]), "name": it["name"]}
        # priorities, resolutions (global) and statuses (of this issue type's workflow in this project)
        settings["priorities"] = self._map(i, "priorities", i.priorities, self.live.priorities or [],
                                           "priority", rec.get("priorities"))
        if i.statuses:
            per_type = {t["name"]: t.get("statuses") or [] for t in self.client.statuses(i.project)}
            statuses = per_type.get(i.issue_type) if it is not None else None
            if statuses is None:
                statuses = list({s["id"]: s for ss in per_type.values() for s in ss}.values())
            settings["statuses"] = self._map(i, "statuses", i.statuses, statuses,
                                             f"status of {i.issue_type} issues in {i.project}", rec.get("statuses"))
        else:
            settings["statuses"] = {}
        settings["resolutions"] = self._map(i, "resolutions", i.resolutions, self.live.resolutions or [],
                                            "resolution", rec.get("resolutions"))
        settings.update({"trigger": i.trigger, "labels": list(i.labels), "template": list(i.template),
                         "comments": list(i.comments), "testIssue": i.test_issue,
                         "deleteTestIssue": i.delete_test_issue, "roleMembership": i.role_membership,
                         "webhook": i.webhook_name()})
        # roles
        role_ids: dict[str, int] = {}
        if i.team_roles:
            role_ids = self.client.role_ids(i.project)
            settings["teamRoles"] = {}
            for team, role in sorted(i.team_roles.items()):
                if role not in role_ids:
                    self.problem(i, f"team_roles.{team}", f"role '{role}' does not exist in project {i.project}; "
                                                         f"{_choices(role_ids)}")
                else:
                    settings["teamRoles"][team] = {"id": str(role_ids[role]), "name": role}
        else:
            settings["teamRoles"] = {}
        # permissions
        self._check_permissions(i)
        if len(self.out.problems) > n_problems:
            return  # no changes for an integration that does not check out

        test_changes, exists = self._plan_test_issue(i, settings, bool(rec.get("testIssueCreated")))
        settings["testIssueCreated"] = exists
        self.out.changes += test_changes
        if recorded is not None:
            self.out.managed += 1
        self.pending.append((i, recorded, settings))
        self._plan_roles(i, role_ids)
        self._plan_departures(i, rec)
        self._plan_webhook(i, rec)

    def _map(self, i: Integration, field: str, mapping: Mapping[Any, str], live: list[dict[str, Any]], what: str,
             recorded: Any) -> dict[str, Any]:
        names = _by_name(live)
        out: dict[str, Any] = {}
        for k, name in sorted(mapping.items()):
            x = names.get(name)
            if x is None:
                rec = recorded.get(k) if isinstance(recorded, dict) else None
                self.problem(i, f"{field}.{k}", f"{what} '{name}' (for '{k}') does not exist in {self.conn.name}; "
                                               f"{_choices(names)}{_renamed(rec, live)}")
            else:
                out[k] = {"id": str(x["id"]), "name": name}
        return out

    def _check_permissions(self, i: Integration) -> None:
        needs = list(INTEGRATION_PERMISSIONS)
        if i.test_issue and i.delete_test_issue:
            needs.append(DELETE_PERMISSION)
        needs.append(ADMIN_PROJECT)
        if i.webhook is not None:
            needs.append(ADMIN_GLOBAL)
        have = self.client.permissions(i.project, [k for k, _ in needs])
        missing = [f"{label} ({k})" for k, label in needs if not have.get(k)]
        if missing:
            self.problem(i, "project", f"the integration user lacks {len(missing)} permission(s) on project "
                                       f"{i.project}: {', '.join(missing)}")

    def _plan_property(self, i: Integration, recorded: Any, settings: dict[str, Any]) -> None:
        a = address(self.conn.name, "integration", i.name)
        refs = {"project": i.project, "property": i.property_key}
        if recorded is None:
            self.out.changes.append(Change(self.conn.name, "integration", i.name, Action.CREATE, a, after=settings,
                                           refs=refs, precondition=Precondition(digest=_digest(None))))
            return
        diff = diff_values(recorded, settings)
        if diff:
            before = recorded if isinstance(recorded, dict) else {"value": recorded}
            self.out.changes.append(Change(self.conn.name, "integration", i.name, Action.UPDATE, a, before=before,
                                           after=settings, diff=diff, id=i.project, refs=refs,
                                           precondition=Precondition(digest=_digest(recorded))))

    def _plan_test_issue(self, i: Integration, settings: dict[str, Any],
                         created: bool) -> tuple[list[Change], bool]:
        """The test issue's changes, and whether it exists or existed (so is never created again)."""
        if not i.test_issue:
            return [], created
        if created and not i.delete_test_issue:
            return [], True
        label = TEST_LABEL_PREFIX + i.name
        a = address(self.conn.name, "test_issue", i.name)
        refs = {"project": i.project, "label": label}
        found = self.client.labelled_issues(i.project, label)
        if found and i.delete_test_issue:
            issue = found[0]
            before = {"key": issue.get("key"), "project": i.project, "label": label}
            return [Change(self.conn.name, "test_issue", i.name, Action.DELETE, a, before=before,
                           id=str(issue.get("key")), refs=refs)], True
        if found or created:
            return [], True  # created once (and perhaps deleted since): never again
        after = {"project": i.project, "issue_type": i.issue_type, "label": label,
                 "summary": f"reconciler: activation test for integration {i.name}",
                 "delete_after_create": i.delete_test_issue}
        refs["issue_type_id"] = str(settings.get("issueType", {}).get("id", ""))
        return [Change(self.conn.name, "test_issue", i.name, Action.CREATE, a, after=after, refs=refs)], True

    def _plan_roles(self, i: Integration, role_ids: dict[str, int]) -> None:
        if not i.team_roles:
            return
        teams = {t.name: t for t in self.config.teams}
        members = {m.key: m for m in self.config.members}
        by_role: dict[str, dict[str, str]] = {}
        for team, role in i.team_roles.items():
            for email in teams[team].members:
                m = members.get(email.lower())
                if m is None or not m.active:
                    continue
                ids = identities_for(self.config, m.email, self.conn.name)
                if not ids:
                    self.out.notes.append(f"{self.conn.name}: {m.email} (team {team}) has no identity in "
                                          f"{self.conn.name}; not added to role '{role}' of {i.project}")
                    continue
                by_role.setdefault(role, {})[ids[0]] = m.email
                self.team_wanted.setdefault(i.name, {}).setdefault(role, {}).setdefault(team, set()).add(ids[0])
        for team, role in i.team_roles.items():  # a team with no member in the role still holds its place
            self.team_wanted.setdefault(i.name, {}).setdefault(role, {}).setdefault(team, set())
        for role in sorted(set(i.team_roles.values())):
            self._role_change(i, role, role_ids[role], by_role.get(role, {}))
            self.wanted_by.setdefault(i.name, {})[role] = (role_ids[role], set(by_role.get(role, {})))

    def _role_change(self, i: Integration, role: str, rid: int, wanted: dict[str, str]) -> None:
        """Remember who the integration wants in the role; several integrations may grant the same one."""
        slot = self.roles.setdefault((i.project, role), (rid, i.role_membership, {}))
        slot[2].update(wanted)

    def _plan_role_changes(self) -> None:
        for project, role in sorted(self.roles.keys() | self.retired.keys()):
            rid, mode, wanted = self.roles.get((project, role)) or (self.retired[(project, role)][0], "additive", {})
            key = f"{project}/{role}"
            a = address(self.conn.name, "project_role", key)
            try:
                live = self.client.role_users(project, rid)
            except NotFoundError:
                if (project, role) in self.roles:
                    raise
                self.out.notes.append(f"{a}: role id {rid}, recorded by a removed integration, no longer exists")
                continue
            if mode == "authoritative":
                after = set(wanted)
                if self.live.me in live and self.live.me not in after:
                    after.add(self.live.me)  # never lock the integration user out of a role it holds
                    self.out.notes.append(f"{a}: the integration user keeps its place in the role")
            else:
                after = set(live) | set(wanted)
            # what removed integrations, and teams that left the role, were recorded granting, unless a declared
            # integration still wants it or still records it as its grant (never the integration user)
            granted_by = self.retired.get((project, role), (rid, {}))[1]
            kept = self.kept.get((project, role), set())
            revoke = {u for u in granted_by
                      if u in live and u not in wanted and u not in kept and u != self.live.me}
            after -= revoke
            self.role_state[(project, role)] = (set(live), set(after))
            before_l, after_l = sorted(live), sorted(after)
            if before_l == after_l:
                continue
            refs = {"project": project, "role_id": str(rid), "membership": mode}
            refs.update({f"member:{ident}": email for ident, email in wanted.items()})
            ending = {n for u in revoke for n in granted_by[u]}
            if ending - self.declared:
                refs["removed_integrations"] = ",".join(sorted(ending - self.declared))
            if ending & self.declared:  # their record is rewritten only once this revoke succeeded
                refs["revoked_for"] = ",".join(sorted(ending & self.declared))
            self.out.changes.append(Change(self.conn.name, "project_role", key, Action.UPDATE, a,
                                           before={"users": before_l}, after={"users": after_l},
                                           diff=[AttributeChange("users", before_l, after_l)], id=str(rid),
                                           refs=refs, precondition=Precondition(digest=_digest(before_l))))

    def _plan_webhook(self, i: Integration, rec: dict[str, Any]) -> None:
        want = webhook_body(i)
        recorded_name = rec.get("webhook")
        if want is None and not recorded_name:
            return
        if self.live.webhooks is None:
            self.live.webhooks = self.client.webhooks()
        by_name = {str(w.get("name")): w for w in self.live.webhooks}
        if want is None:
            old = by_name.get(str(recorded_name))
            if old is not None:
                before = _live_webhook(old)
                self.out.changes.append(Change(self.conn.name, "webhook", str(recorded_name), Action.DELETE,
                                               address(self.conn.name, "webhook", str(recorded_name)), before=before,
                                               id=_webhook_id(old), precondition=Precondition(digest=_digest(before))))
            return
        name = str(want["name"])
        a = address(self.conn.name, "webhook", name)
        live = by_name.get(name)
        if live is None:
            self.out.changes.append(Change(self.conn.name, "webhook", name, Action.CREATE, a, after=want))
        else:
            before = _live_webhook(live)
            diff = diff_values(before, want)
            if diff:
                self.out.changes.append(Change(self.conn.name, "webhook", name, Action.UPDATE, a, before=before,
                                               after=want, diff=diff, id=_webhook_id(live),
                                               precondition=Precondition(digest=_digest(before))))
        if recorded_name and recorded_name != name and str(recorded_name) in by_name:
            old = by_name[str(recorded_name)]
            before = _live_webhook(old)
            self.out.changes.append(Change(self.conn.name, "webhook", str(recorded_name), Action.DELETE,
                                           address(self.conn.name, "webhook", str(recorded_name)), before=before,
                                           id=_webhook_id(old), precondition=Precondition(digest=_digest(before))))

    # --- grants and removed integrations ---------------------------------------------

    def _grants(self, i: Integration, recorded: Any) -> dict[str, Any]:
        """Who this integration put in each role, and through which team, recorded in its property so that
        removing the integration, or a team leaving a role, removes exactly that. Authoritative: its teams'
        members. Additive: those it added (not there before), those recorded earlier that are still in the
        role, and those a team of it wants that it recorded granting before (through a team that has left
        the role, say); someone already in the role was not its grant."""
        rec = recorded.get("grants") if isinstance(recorded, dict) else None
        rec = rec if isinstance(rec, dict) else {}
        out: dict[str, Any] = {}
        for role, (rid, wanted) in sorted(self.wanted_by.get(i.name, {}).items()):
            before, after = self.role_state.get((i.project, role), (set(), set(wanted)))
            found = rec.get(role)
            old: dict[str, Any] = found if isinstance(found, dict) else {}
            had_any = _idents(old.get("users"))
            old_teams = old.get("teams") if isinstance(old.get("teams"), dict) else None
            teams: dict[str, list[str]] = {}
            for team, want in sorted(self.team_wanted.get(i.name, {}).get(role, {}).items()):
                if i.role_membership == "authoritative":
                    users = set(want)
                else:  # a record from before teams were recorded: each team may have granted any of them
                    had = _idents(old_teams.get(team)) if old_teams is not None else had_any
                    users = (had & after) | (want - before) | (want & had_any)
                users.discard(self.live.me)
                teams[team] = sorted(users)
            out[role] = {"id": str(rid), "users": sorted({u for us in teams.values() for u in us}), "teams": teams}
        return out

    def _plan_departures(self, i: Integration, rec: dict[str, Any]) -> None:
        """A declared integration's recorded grants for teams that no longer hold that role in it (the team
        moved to another role, or left the integration's team_roles): they are revoked as a removed
        integration's are, and the rewritten record no longer lists them (once the revoke succeeded)."""
        grants = rec.get("grants")
        if not isinstance(grants, dict):
            return
        now: dict[str, set[str]] = {}
        for team, r in i.team_roles.items():
            now.setdefault(r, set()).add(team)
        for role, g in sorted(grants.items()):
            if not isinstance(g, dict) or not str(g.get("id", "")).isdigit():
                continue
            current = now.get(str(role), set())
            teams = g.get("teams")
            if isinstance(teams, dict):
                left = {u for t, us in teams.items() if t not in current for u in _idents(us)}
                stay = {u for t, us in teams.items() if t in current for u in _idents(us)}
            elif current:  # recorded before grants named their teams: the role is still granted, keep them
                left, stay = set(), _idents(g.get("users"))
            else:  # ... and the integration left the role altogether: all of them go
                left, stay = _idents(g.get("users")), set()
            self.kept.setdefault((i.project, str(role)), set()).update(stay)
            slot = self.retired.setdefault((i.project, str(role)), (int(g["id"]), {}))
            for ident in sorted(left - stay):
                slot[1].setdefault(ident, set()).add(i.name)

    def _plan_removed(self, ints: list[Integration]) -> None:
        """Integrations reconciler recorded on this connection that the config no longer declares.

        Jira has no call that lists a property across projects by key prefix (Cloud's project search takes
        property keys, not a prefix, and Data Center has no property search), so the projects searched are
        those this connection's integrations name, ``scan_projects``, and the projects named by the JQL of
        webhooks that carry reconciler's default name ('reconciler <integration>') for an undeclared
        integration: one property-key list per project, bounded by the config, not by the size of Jira.
        """
        declared = {i.name: i.project for i in ints}
        site = {c.name for c in jira_connections(self.config) if c.url == self.conn.url}
        declared_hooks = {str(i.webhook_name()) for i in self.config.integrations
                          if i.connection in site and i.webhook is not None}
        others = {c.name for c in self.config.connections} - {self.conn.name}
        projects = set(declared.values()) | set(self.conn.scan_projects)
        hooks = self._webhooks_if_allowed()
        by_convention: dict[str, dict[str, Any]] = {}
        for w in hooks or []:
            m = _CONVENTION.match(str(w.get("name")))
            if m is None:
                continue
            # a declared integration's webhook still names the project it is moving away from
            if m.group("name") not in declared and str(w.get("name")) not in declared_hooks:
                by_convention[m.group("name")] = w
            jql = str((w.get("filters") or {}).get("issue-related-events-section") or "")
            for hit in _JQL_PROJECT.finditer(jql):
                keys = [hit.group("one")] if hit.group("one") else re.split(r"[\s,\"]+", hit.group("many") or "")
                projects.update(k.upper() for k in keys if k)
        self.out.managed += sum(1 for w in hooks or [] if str(w.get("name")) in declared_hooks)
        seen: set[str] = set()
        for project in sorted(projects):
            for key in sorted(self.client.property_keys(project) or []):
                name = key[len(PROPERTY_PREFIX):] if key.startswith(PROPERTY_PREFIX) else None
                if not name:
                    continue
                if name in declared and declared[name] == project:
                    continue
                rec = self.client.get_property(project, key)
                if not isinstance(rec, dict) or rec.get("managedBy") != "reconciler":
                    continue
                if name in declared:
                    # moved to another project: its record and role grants here go; its webhook is declared
                    # and follows it; on its new project it is created as any new integration is
                    if rec.get("connection") not in others:
                        self._remove(project, name, key, rec, declared_hooks, hooks, moved_to=declared[name])
                    continue
                if name in seen:
                    continue
                seen.add(name)  # its webhook goes with its record (or stays with it)
                if rec.get("connection") not in others:  # else another connection of this config owns it
                    self._remove(project, name, key, rec, declared_hooks, hooks)
        for name, w in sorted(by_convention.items()):
            if name in seen or name in self.conn.protect:
                continue
            self._delete_webhook(w, name)

    def _webhooks_if_allowed(self) -> list[dict[str, Any]] | None:
        """The admin webhooks, or None when the integration user may not list them: then it cannot have
        created any either (webhooks need a Jira administrator), so there is nothing of reconciler's to find."""
        if self.live.webhooks is None:
            try:
                self.live.webhooks = self.client.webhooks()
            except AuthError:
                return None
        return self.live.webhooks

    def _remove(self, project: str, name: str, key: str, rec: dict[str, Any], declared_hooks: set[str],
                hooks: list[dict[str, Any]] | None, moved_to: str | None = None) -> None:
        # a moved integration's old record has an address of its own: "web@SEC" beside the declared "web"
        gone = f"{name}@{project}" if moved_to else name
        a = address(self.conn.name, "integration", gone)
        self.out.managed += 1
        if name in self.conn.protect:
            self.out.protected.append(a)
            return
        notes = []
        if moved_to:
            notes.append(f"integration '{name}' moved from {project} to {moved_to}: its record and role grants "
                         f"on {project} are removed")
        if rec.get("testIssueCreated") and not rec.get("deleteTestIssue"):
            notes.append(f"its activation test issue (label {TEST_LABEL_PREFIX}{name}) is an issue and is left")
        self.out.changes.append(Change(self.conn.name, "integration", gone, Action.DELETE, a, before=rec, id=project,
                                       refs={"project": project, "property": key}, notes=notes,
                                       precondition=Precondition(digest=_digest(rec))))
        hook = rec.get("webhook")
        if hook and str(hook) not in declared_hooks:
            live = {str(w.get("name")): w for w in hooks or []}.get(str(hook))
            if hooks is None:
                self.out.notes.append(f"{a}: its webhook '{hook}' cannot be removed: listing admin webhooks "
                                      "needs the Jira administrator permission")
            elif live is not None:
                self._delete_webhook(live, name)
        grants = rec.get("grants")
        for role, g in sorted(grants.items() if isinstance(grants, dict) else []):
            if not isinstance(g, dict) or not str(g.get("id", "")).isdigit():
                continue
            slot = self.retired.setdefault((project, str(role)), (int(g["id"]), {}))
            for ident in _idents(g.get("users")):
                slot[1].setdefault(ident, set()).add(gone)

    def _delete_webhook(self, w: dict[str, Any], integration: str) -> None:
        name = str(w.get("name"))
        a = address(self.conn.name, "webhook", name)
        if any(c.address == a for c in self.out.changes):
            return
        self.out.managed += 1
        before = _live_webhook(w)
        self.out.changes.append(Change(self.conn.name, "webhook", name, Action.DELETE, a, before=before,
                                       id=_webhook_id(w), refs={"integration": integration},
                                       precondition=Precondition(digest=_digest(before))))


# --- apply ----------------------------------------------------------------------------

class ConnectionApplier:
    """Applies one connection's changes: roles, then test issues, then settings properties, then webhooks.
    A removed integration's record goes after the role grants it lists (a failed revoke keeps the record, so
    a re-run finds what is left), and its webhook last: until then the webhook's name still leads to it."""

    def __init__(self, client: JiraClient, observer: Callable[[Any], None] | None) -> None:
        self.client = client
        self.observer = observer
        self.outcomes: list[Any] = []
        self.failed: set[str] = set()
        self.failed_changes: list[Change] = []
        self._lock = threading.Lock()

    def run(self, changes: list[Change]) -> list[Any]:
        def removal(c: Change) -> bool:
            return (c.kind == "integration" and c.action is Action.DELETE) or "integration" in c.refs
        phases = [[c for c in changes if c.kind == "project_role"], [c for c in changes if c.kind == "test_issue"],
                  [c for c in changes if c.kind == "integration" and not removal(c)],
                  [c for c in changes if c.kind == "webhook" and not removal(c)],
                  [c for c in changes if c.kind == "integration" and removal(c)],
                  [c for c in changes if c.kind == "webhook" and removal(c)]]
        fns = {"project_role": self._role, "test_issue": self._test_issue, "integration": self._property,
               "webhook": self._webhook}
        for mine in phases:
            run_changes(mine, functools.partial(self._step, fns=fns), workers=4, name="apply-jira",
                        on_done=self._done)
        return self.outcomes

    def _step(self, c: Change, *, fns: Mapping[str, Callable[[Change], None]]) -> None:
        if c.kind == "integration" and f"test_issue:{c.key}" in self.failed:
            raise ReconcilerError(f"skipped: depends on {address(c.provider, 'test_issue', c.key)}, which failed")
        gone = c.key if c.kind == "integration" and c.action is Action.DELETE else c.refs.get("integration")
        if gone:  # a removed integration: its record stays while a grant it lists is still there
            for f in self.failed_changes:
                if gone in f.refs.get("removed_integrations", "").split(",") or (f.kind, f.key) == ("integration",
                                                                                                  gone):
                    raise ReconcilerError(f"skipped: depends on {f.address}, which failed")
        elif c.kind == "integration":  # a declared one keeps the grants of a team that left a role recorded
            for f in self.failed_changes:  # until they are revoked
                if c.key in f.refs.get("revoked_for", "").split(","):
                    raise ReconcilerError(f"skipped: depends on {f.address}, which failed")
        fns[c.kind](c)

    def _done(self, o: Outcome) -> None:
        with self._lock:
            if not o.ok:
                self.failed.add(f"{o.change.kind}:{o.change.key}")
                self.failed_changes.append(o.change)
            self.outcomes.append(o)
        if self.observer is not None:
            self.observer(o)

    @staticmethod
    def _stale(c: Change, live: Any) -> None:
        if c.precondition is not None and c.precondition.digest is not None and _digest(live) != c.precondition.digest:
            raise StalePlanError(f"{c.address} changed in Jira since the plan was made; plan again")

    def _role(self, c: Change) -> None:
        assert c.before is not None and c.after is not None
        project, rid = str(c.refs["project"]), int(c.id or c.refs["role_id"])
        live = self.client.role_users(project, rid)
        self._stale(c, live)
        add = sorted(set(c.after["users"]) - set(live))
        remove = sorted(set(live) - set(c.after["users"]))
        if add:
            self.client.add_role_users(project, rid, add)
        for ident in remove:
            self.client.remove_role_user(project, rid, ident)

    def _test_issue(self, c: Change) -> None:
        project, label = str(c.refs["project"]), str(c.refs["label"])
        if c.action is Action.DELETE:
            self.client.delete_issue(str(c.id))
            return
        assert c.after is not None
        if self.client.labelled_issues(project, label):
            return  # created by an earlier, interrupted apply
        issue = self.client.create_issue(project, str(c.refs["issue_type_id"]), str(c.after["summary"]), label,
                                         "Created by reconciler when the integration was first applied, to prove "
                                         "that the integration user can create issues here.")
        if c.after.get("delete_after_create"):
            self.client.delete_issue(str(issue.get("key") or issue.get("id")))

    def _property(self, c: Change) -> None:
        project, prop = str(c.refs["project"]), str(c.refs["property"])
        live = self.client.get_property(project, prop)
        if c.action is Action.DELETE:
            if live is not None:
                self._stale(c, live)
                self.client.delete_property(project, prop)
            return
        assert c.after is not None
        self._stale(c, live)
        self.client.put_property(project, prop, c.after)

    def _webhook(self, c: Change) -> None:
        live = {str(w.get("name")): w for w in self.client.webhooks()}.get(c.key)
        if c.action is Action.CREATE:
            assert c.after is not None
            if live is not None:
                raise StalePlanError(f"{c.address} was created in Jira since the plan was made; plan again")
            self.client.create_webhook(c.after)
        elif c.action is Action.UPDATE:
            assert c.after is not None
            if live is None:
                raise StalePlanError(f"{c.address} was deleted in Jira since the plan was made; plan again")
            self._stale(c, _live_webhook(live))
            self.client.update_webhook(_webhook_id(live), c.after)
        else:
            if live is not None:
                self.client.delete_webhook(_webhook_id(live))


# --- the Planner the session calls ------------------------------------------------------

class JiraPlanner:
    """Every Jira connection of a config, as one live system (``reconciler.contract.LiveSystem``)."""

    prefix = PREFIX

    def _connect(self, session: Any, conn: JiraConnection) -> JiraClient:
        return connect(conn, transport=session.transports.get(conn.name), recorder=session.recorder,
                       base_dir=session.base_dir, sleep=session.sleep, attempts=session.attempts)

    def plan(self, session: Any) -> JiraPlan:
        total = JiraPlan()
        for conn in jira_connections(session.config):
            if not integrations_for(session.config, conn.name) and not _mapped(session.config, conn.name) \
                    and not conn.scan_projects:
                continue
            client = self._connect(session, conn)
            try:
                part = ConnectionPlanner(session.config, conn, client).plan()
            except ProviderError as exc:
                raise PlanError(f"cannot plan Jira connection '{conn.name}': {exc}") from exc
            finally:
                client.close()
            if not session.targets and not part.problems:
                check_removals(conn.name, part.changes, part.managed, conn.max_removals, conn.max_removal_percent,
                               session.allow_removals)
            total.changes += part.changes
            total.notes += part.notes
            total.problems += part.problems
            total.protected += part.protected
        if total.problems:
            raise PlanError(f"{len(total.problems)} integration problem(s) found in the live Jira:", total.problems)
        return total

    def apply(self, session: Any, changes: list[Change], observer: Callable[[Any], None] | None) -> list[Any]:
        out: list[Any] = []
        conns = {c.name: c for c in jira_connections(session.config)}
        for name in sorted({c.provider for c in changes}):
            conn = conns.get(name)
            mine = [c for c in changes if c.provider == name]
            if conn is None:
                for c in mine:
                    out.append(Outcome(c, False, f"connection '{name}' is not in the config"))
                continue
            client = self._connect(session, conn)
            try:
                out += ConnectionApplier(client, observer).run(mine)
            finally:
                client.close()
        return out

    def select(self, changes: list[Change], targets: list[str], config: Config) -> list[Change]:
        return select_by_prefix(changes, targets, config)

    def stale(self, session: Any, changes: list[Change], facts: dict[str, Any]) -> list[Check]:
        return stale_by_replanning(self, session, changes, PREFIX.rstrip("."))

    def check(self, session: Any) -> list[CheckResult]:
        results = []
        for conn in jira_connections(session.config):
            r = CheckResult(conn.name, True)
            try:
                client = self._connect(session, conn)
            except ReconcilerError as exc:  # a credential that cannot be resolved: report it, check the rest
                r.ok = False
                r.steps.append(("credentials", False, redact(str(exc))))
                results.append(r)
                continue
            try:
                me = client.myself()
                r.steps.append(("authenticate", True, f"as {me.get('displayName') or client.identity_of(me)}"))
                for i in integrations_for(session.config, conn.name):
                    needs = [k for k, _ in INTEGRATION_PERMISSIONS]
                    have = client.permissions(i.project, needs)
                    missing = [k for k in needs if not have.get(k)]
                    r.steps.append((f"permissions on {i.project} ({i.name})", not missing,
                                    "all granted" if not missing else "missing " + ", ".join(missing)))
            except ReconcilerError as exc:
                r.steps.append(("reach Jira", False, redact(str(exc))))
            finally:
                client.close()
            r.ok = all(ok for _, ok, _ in r.steps)
            results.append(r)
        return results


def _mapped(config: Config, conn: str) -> bool:
    return bool(mapped_identities(config, conn))


planner = JiraPlanner()
