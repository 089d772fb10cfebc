"""A stateful, in-memory Jira (Cloud or Data Center flavour) serving the REST subset reconciler uses.

It is a WSGI application: in-process through ``httpx.WSGITransport`` (tests, ``reconciler demo``)
or on 127.0.0.1 (``reconciler sandbox jira --port N``, ``python -m reconciler.sandbox.jira``) so
that any Jira client can be pointed at it. Its answers follow Atlassian's OpenAPI descriptions
(the contract tests validate them), including the shape differences between Cloud (REST v3,
account IDs, basic auth with email + API token) and Data Center (REST v2, usernames, bearer
personal access tokens). ``fail`` injects faults (429 with Retry-After, 5xx) for tests.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

# Every project permission reconciler knows about, as Jira keys them.
PROJECT_PERMISSIONS = (
    "BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "TRANSITION_ISSUES", "RESOLVE_ISSUES", "CLOSE_ISSUES",
    "ADD_COMMENTS", "CREATE_ATTACHMENTS", "DELETE_ISSUES", "ADMINISTER_PROJECTS",
)
GLOBAL_PERMISSIONS = ("ADMINISTER",)

CLOUD_USER = "integration@acme.io"
CLOUD_TOKEN = "jira-cloud-sandbox-token"
DC_USER = "svc-integration"
DC_TOKEN = "jira-dc-sandbox-pat"


@dataclass
class User:
    id: str  # accountId on Cloud, username on Data Center
    display_name: str
    email: str
    active: bool = True
    key: str = ""


@dataclass
class Project:
    id: str
    key: str
    name: str
    issue_types: list[dict[str, Any]]
    # issue type id -> status ids in its workflow
    workflows: dict[str, list[str]]
    roles: dict[int, set[str]] = field(default_factory=dict)  # role id -> user ids
    groups: dict[int, set[str]] = field(default_factory=dict)  # role id -> group names
    properties: dict[str, Any] = field(default_factory=dict)
    permissions: set[str] = field(default_factory=lambda: set(PROJECT_PERMISSIONS))
    previous_keys: list[str] = field(default_factory=list)  # Jira still answers to a moved project's old key


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: str | None
    after: bool = False  # do the work, then answer with the fault (a lost response)


@dataclass
class JiraState:
    flavour: str  # "cloud" or "datacenter"
    users: dict[str, User] = field(default_factory=dict)
    me: str = ""
    secret: str = ""
    projects: dict[str, Project] = field(default_factory=dict)
    priorities: list[dict[str, str]] = field(default_factory=list)
    resolutions: list[dict[str, str]] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    global_permissions: set[str] = field(default_factory=lambda: set(GLOBAL_PERMISSIONS))
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    page_size: int = 2  # small pages by default, so that paging is always exercised
    _seq: int = 10100

    @property
    def cloud(self) -> bool:
        return self.flavour == "cloud"

    def next_id(self) -> int:
        self._seq += 1
        return self._seq

    # --- helpers for tests and the demo -------------------------------------

    def add_user(self, ident: str, display_name: str, email: str, active: bool = True) -> User:
        u = User(ident, display_name, email, active, key=f"JIRAUSER{self.next_id()}")
        self.users[ident] = u
        return u

    def project(self, key: str) -> Project:
        return self.projects[key]

    def role_id(self, name: str) -> int:
        for rid, r in self.roles.items():
            if r["name"] == name:
                return rid
        raise KeyError(name)

    def rename(self, kind: str, old: str, new: str) -> None:
        """Rename a priority, resolution or status (as an admin would in the UI)."""
        table: Iterable[dict[str, Any]] = {"priority": self.priorities, "resolution": self.resolutions,
                                           "status": self.statuses.values()}[kind]
        for x in table:
            if x["name"] == old:
                x["name"] = new
                return
        raise KeyError(old)

    def move(self, old: str, new: str) -> None:
        """Change a project's key, as Jira's 'move project' does; the old key keeps resolving."""
        p = self.projects.pop(old)
        p.previous_keys.append(old)
        p.key = new
        self.projects[new] = p
        for i in self.issues.values():
            if i["project"] == old:
                i["project"] = new

    def revoke(self, project: str, *permissions: str) -> None:
        self.projects[project].permissions -= set(permissions)

    def fail(self, method: str, path: str, status: int = 429, times: int = 1, retry_after: str | None = "1",
             *, after: bool = False) -> None:
        """Answer the next ``times`` requests matching ``method`` and the ``path`` regex with ``status``;
        with ``after=True`` the request is carried out first and only its answer is lost."""
        self.faults.append(Fault(method.upper(), re.compile(path), status, times, retry_after, after))


def new_state(flavour: str = "cloud", *, page_size: int = 2) -> JiraState:
    """A Jira with a few users, two projects (SEC, OPS), the default priorities, resolutions and roles."""
    if flavour not in ("cloud", "datacenter"):
        raise ValueError("flavour is 'cloud' or 'datacenter'")
    s = JiraState(flavour, page_size=page_size)
    cloud = flavour == "cloud"
    me = s.add_user("557058:0a1b2c3d-integration" if cloud else DC_USER, "Integration user",
                    CLOUD_USER if cloud else "svc-integration@acme.io")
    s.me, s.secret = me.id, CLOUD_TOKEN if cloud else DC_TOKEN
    people = [("alice", "Alice Adams"), ("bob", "Bob Baker"), ("carol", "Carol Chen"), ("dave", "Dave Diaz"),
              ("erin", "Erin Evans"), ("frank", "Frank Fox")]
    for n, (name, display) in enumerate(people):
        ident = f"5b10ac8d82e05b22cc7d4e{n:02d}" if cloud else name
        s.add_user(ident, display, f"{name}@acme.io")
    s.priorities = [{"id": str(i), "name": n} for i, n in
                    enumerate(("Highest", "High", "Medium", "Low", "Lowest"), start=1)]
    s.resolutions = [{"id": str(10000 + i), "name": n} for i, n in
                     enumerate(("Done", "Won't Do", "Duplicate", "Cannot Reproduce", "Fixed"))]
    cats = {"new": (2, "To Do", "blue-gray"), "indeterminate": (4, "In Progress", "yellow"),
            "done": (3, "Done", "green")}
    for sid, name, cat in (("1", "Open", "new"), ("3", "In Progress", "indeterminate"),
                           ("10001", "In Review", "indeterminate"), ("5", "Resolved", "done"),
                           ("6", "Closed", "done"), ("10002", "To Do", "new"), ("10003", "Done", "done")):
        cid, cname, colour = cats[cat]
        s.statuses[sid] = {"id": sid, "name": name, "statusCategory": {"id": cid, "key": cat, "name": cname,
                                                                       "colorName": colour}}
    for rid, name in ((10002, "Administrators"), (10000, "Developers"), (10001, "Users"),
                      (10003, "Security Reviewers")):
        s.roles[rid] = {"id": rid, "name": name, "description": f"{name} of the project"}
    s.projects["SEC"] = Project("10000", "SEC", "Security findings",
                                [{"id": "10004", "name": "Bug", "subtask": False},
                                 {"id": "10005", "name": "Vulnerability", "subtask": False},
                                 {"id": "10006", "name": "Sub-task", "subtask": True}],
                                {"10004": ["1", "3", "10001", "5", "6"], "10005": ["1", "3", "5", "6"],
                                 "10006": ["1", "5"]})
    s.projects["OPS"] = Project("10010", "OPS", "Operations",
                                [{"id": "10004", "name": "Bug", "subtask": False},
                                 {"id": "10007", "name": "Task", "subtask": False}],
                                {"10004": ["10002", "3", "10003"], "10007": ["10002", "3", "10003"]})
    for p in s.projects.values():
        for rid in s.roles:
            p.roles[rid] = set()
            p.groups[rid] = set()
        p.groups[10001] = {"jira-users"}
    return s


# --- the WSGI application ------------------------------------------------------

class HttpError(Exception):
    def __init__(self, status: int, messages: list[str] | str, errors: dict[str, str] | None = None) -> None:
        self.status = status
        self.messages = [messages] if isinstance(messages, str) else messages
        self.errors = errors or {}


_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
                403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests",
                500: "Internal Server Error", 503: "Service Unavailable"}


class JiraSandbox:
    """The WSGI app. ``state`` may be changed between requests by tests (drift, renames, revocations)."""

    def __init__(self, state: JiraState, base_url: str = "") -> None:
        self.state = state
        self.base_url = base_url.rstrip("/")
        self.lock = threading.RLock()
        self.api = "/rest/api/3" if state.cloud else "/rest/api/2"
        r = re.escape(self.api)
        # (method, path regex, handler); path parameters become keyword arguments
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]] = [
            ("GET", re.compile(rf"^{r}/myself$"), self.myself),
            ("GET", re.compile(rf"^{r}/project/search$"), self.project_search),
            ("GET", re.compile(rf"^{r}/project$"), self.project_list),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)$"), self.project_get),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/statuses$"), self.project_statuses),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/role$"), self.project_roles),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/role/(?P<rid>\d+)$"), self.role_get),
            ("POST", re.compile(rf"^{r}/project/(?P<key>[^/]+)/role/(?P<rid>\d+)$"), self.role_add),
            ("DELETE", re.compile(rf"^{r}/project/(?P<key>[^/]+)/role/(?P<rid>\d+)$"), self.role_remove),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/properties$"), self.prop_keys),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/properties/(?P<prop>[^/]+)$"), self.prop_get),
            ("PUT", re.compile(rf"^{r}/project/(?P<key>[^/]+)/properties/(?P<prop>[^/]+)$"), self.prop_put),
            ("DELETE", re.compile(rf"^{r}/project/(?P<key>[^/]+)/properties/(?P<prop>[^/]+)$"), self.prop_delete),
            ("GET", re.compile(rf"^{r}/priority/search$"), self.priority_page),
            ("GET", re.compile(rf"^{r}/priority/page$"), self.priority_page),
            ("GET", re.compile(rf"^{r}/resolution/search$"), self.resolution_page),
            ("GET", re.compile(rf"^{r}/resolution/page$"), self.resolution_page),
            ("GET", re.compile(rf"^{r}/mypermissions$"), self.mypermissions),
            ("GET", re.compile(rf"^{r}/user/bulk$"), self.user_bulk),
            ("GET", re.compile(rf"^{r}/user/list$"), self.user_list),
            ("GET", re.compile(rf"^{r}/user/search$"), self.user_search),
            ("GET", re.compile(rf"^{r}/user$"), self.user_get),
            ("POST", re.compile(rf"^{r}/search/jql$"), self.search_jql),
            ("POST", re.compile(rf"^{r}/search$"), self.search_dc),
            ("POST", re.compile(rf"^{r}/issue$"), self.issue_create),
            ("GET", re.compile(rf"^{r}/issue/(?P<key>[^/]+)$"), self.issue_get),
            ("DELETE", re.compile(rf"^{r}/issue/(?P<key>[^/]+)$"), self.issue_delete),
            ("GET", re.compile(r"^/rest/webhooks/1\.0/webhook$"), self.webhook_list),
            ("POST", re.compile(r"^/rest/webhooks/1\.0/webhook$"), self.webhook_create),
            ("GET", re.compile(r"^/rest/webhooks/1\.0/webhook/(?P<wid>\d+)$"), self.webhook_get),
            ("PUT", re.compile(r"^/rest/webhooks/1\.0/webhook/(?P<wid>\d+)$"), self.webhook_update),
            ("DELETE", re.compile(r"^/rest/webhooks/1\.0/webhook/(?P<wid>\d+)$"), self.webhook_delete),
        ]

    # --- WSGI plumbing -------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "")
        query = {k: v for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        host = environ.get("HTTP_HOST") or "sandbox.invalid"
        base = self.base_url or f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
        headers: list[tuple[str, str]] = [("Content-Type", "application/json;charset=UTF-8")]
        with self.lock:
            self.state.requests.append((method, path))
            try:
                fault = self._fault(method, path)
                if fault is not None and not fault.after:
                    self._raise_fault(fault, headers)
                self._authenticate(environ)
                for m, pattern, handler in self.routes:
                    match = pattern.match(path)
                    if match and m == method:
                        body = json.loads(raw) if raw else None
                        self._base = base
                        status, payload = handler(query=query, body=body, **match.groupdict())
                        break
                else:
                    if any(p.match(path) for _, p, _ in self.routes):
                        raise HttpError(405, f"{method} is not allowed on {path}")
                    raise HttpError(404, "null for uri: " + path)
                if fault is not None:
                    self._raise_fault(fault, headers)
            except HttpError as exc:
                status, payload = exc.status, {"errorMessages": exc.messages, "errors": exc.errors}
            except (ValueError, KeyError, TypeError) as exc:
                status, payload = 400, {"errorMessages": [f"Bad request: {type(exc).__name__}"], "errors": {}}
        data = b"" if status == 204 or payload is None else json.dumps(payload).encode()
        if status == 204:
            headers = []
        start_response(f"{status} {_STATUS_TEXT.get(status, 'Status')}", headers)
        return [data]

    @staticmethod
    def _raise_fault(fault: Fault, headers: list[tuple[str, str]]) -> None:
        if fault.retry_after is not None:
            headers.append(("Retry-After", fault.retry_after))
        raise HttpError(fault.status, "Rate limit exceeded." if fault.status == 429 else
                        "The server is having a moment.")

    def _fault(self, method: str, path: str) -> Fault | None:
        for f in self.state.faults:
            if f.times > 0 and f.method == method and f.path.search(path):
                f.times -= 1
                return f
        return None

    def _authenticate(self, environ: Environ) -> None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        s = self.state
        if s.cloud:
            want = "Basic " + base64.b64encode(f"{s.users[s.me].email}:{s.secret}".encode()).decode()
        else:
            want = f"Bearer {s.secret}"
        if auth != want:
            raise HttpError(401, "Client must be authenticated to access this resource.")

    # --- representations -----------------------------------------------------

    def _user(self, u: User) -> dict[str, Any]:
        if self.state.cloud:
            return {"accountId": u.id, "accountType": "atlassian", "active": u.active, "displayName": u.display_name,
                    "emailAddress": u.email, "self": f"{self._base}{self.api}/user?accountId={u.id}",
                    "timeZone": "Europe/Brussels"}
        return {"name": u.id, "key": u.key, "active": u.active, "displayName": u.display_name,
                "emailAddress": u.email, "self": f"{self._base}{self.api}/user?username={u.id}",
                "timeZone": "Europe/Brussels", "deleted": False}

    def _project(self, p: Project, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": p.id, "key": p.key, "name": p.name, "projectTypeKey": "software",
                               "self": f"{self._base}{self.api}/project/{p.id}", "archived": False}
        if self.state.cloud:
            out["simplified"] = False
            out["style"] = "classic"
        if full:
            out["issueTypes"] = [{**it, "self": f"{self._base}{self.api}/issuetype/{it['id']}",
                                  "description": it["name"]} for it in p.issue_types]
            out["roles"] = {r["name"]: f"{self._base}{self.api}/project/{p.key}/role/{rid}"
                            for rid, r in self.state.roles.items()}
        return out

    def _page(self, items: list[Any], query: dict[str, list[str]], default_max: int = 50) -> dict[str, Any]:
        start = int(query.get("startAt", ["0"])[0])
        size = min(int(query.get("maxResults", [str(default_max)])[0]), self.state.page_size)
        chunk = items[start:start + size]
        return {"startAt": start, "maxResults": size, "total": len(items),
                "isLast": start + len(chunk) >= len(items), "values": chunk}

    def _find_project(self, key: str) -> Project:
        s = self.state
        p = s.projects.get(key) or next((x for x in s.projects.values() if key == x.id or key in x.previous_keys),
                                        None)
        if p is None or "BROWSE_PROJECTS" not in p.permissions:
            raise HttpError(404, f"No project could be found with key '{key}'.")
        return p

    def _need(self, p: Project, permission: str) -> None:
        if permission not in p.permissions:
            raise HttpError(403, f"You do not have the permission {permission} in project {p.key}.")

    def _require_admin(self) -> None:
        if "ADMINISTER" not in self.state.global_permissions:
            raise HttpError(403, "You must be a Jira administrator to manage webhooks.")

    # --- handlers: each returns (status, payload) ------------------------------

    def myself(self, **_: Any) -> tuple[int, Any]:
        return 200, self._user(self.state.users[self.state.me])

    def project_search(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        visible = [self._project(p, full=False) for p in sorted(self.state.projects.values(), key=lambda p: p.key)
                   if "BROWSE_PROJECTS" in p.permissions]
        return 200, self._page(visible, query)

    def project_list(self, **_: Any) -> tuple[int, Any]:
        return 200, [self._project(p, full=False) for p in sorted(self.state.projects.values(), key=lambda p: p.key)
                     if "BROWSE_PROJECTS" in p.permissions]

    def project_get(self, key: str, **_: Any) -> tuple[int, Any]:
        return 200, self._project(self._find_project(key))

    def project_statuses(self, key: str, **_: Any) -> tuple[int, Any]:
        p = self._find_project(key)
        out = []
        for it in p.issue_types:
            sts = [{**self.state.statuses[sid], "self": f"{self._base}{self.api}/status/{sid}",
                    "description": self.state.statuses[sid]["name"]} for sid in p.workflows.get(it["id"], [])]
            out.append({"id": it["id"], "name": it["name"], "subtask": it["subtask"], "statuses": sts,
                        "self": f"{self._base}{self.api}/issuetype/{it['id']}"})
        return 200, out

    def project_roles(self, key: str, **_: Any) -> tuple[int, Any]:
        p = self._find_project(key)
        return 200, {r["name"]: f"{self._base}{self.api}/project/{p.key}/role/{rid}"
                     for rid, r in self.state.roles.items()}

    def _role(self, p: Project, rid: int) -> dict[str, Any]:
        r = self.state.roles.get(rid)
        if r is None:
            raise HttpError(404, f"Can not retrieve a role actor for a null project role with id {rid}.")
        actors: list[dict[str, Any]] = []
        n = 0
        for g in sorted(p.groups.get(rid, set())):
            n += 1
            if self.state.cloud:
                actors.append({"id": 20000 + n, "displayName": g, "type": "atlassian-group-role-actor",
                               "actorGroup": {"name": g, "displayName": g, "groupId": f"group-{g}"}})
            else:
                actors.append({"id": 20000 + n, "name": g, "displayName": g, "type": "atlassian-group-role-actor"})
        for uid in sorted(p.roles.get(rid, set())):
            n += 1
            u = self.state.users[uid]
            if self.state.cloud:
                actors.append({"id": 20000 + n, "displayName": u.display_name, "type": "atlassian-user-role-actor",
                               "actorUser": {"accountId": u.id}})
            else:
                actors.append({"id": 20000 + n, "name": u.id, "displayName": u.display_name,
                               "type": "atlassian-user-role-actor"})
        return {"id": rid, "name": r["name"], "description": r["description"], "actors": actors,
                "self": f"{self._base}{self.api}/project/{p.key}/role/{rid}"}

    def role_get(self, key: str, rid: str, **_: Any) -> tuple[int, Any]:
        return 200, self._role(self._find_project(key), int(rid))

    def role_add(self, key: str, rid: str, body: Any, **_: Any) -> tuple[int, Any]:
        p = self._find_project(key)
        self._need(p, "ADMINISTER_PROJECTS")
        role = int(rid)
        if role not in self.state.roles:
            raise HttpError(404, f"No project role with id {rid}.")
        users = list((body or {}).get("user") or [])
        missing = [u for u in users if u not in self.state.users]
        if missing:
            raise HttpError(400, [f"We can't find the user {u}." for u in missing])
        current = p.roles.setdefault(role, set())
        dupes = [u for u in users if u in current]
        if dupes:
            # Jira refuses to add an actor that is already in the role
            raise HttpError(400, [f"'{u}' is already a member of the project role." for u in dupes])
        current.update(users)
        return 200, self._role(p, role)

    def role_remove(self, key: str, rid: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        p = self._find_project(key)
        self._need(p, "ADMINISTER_PROJECTS")
        user = query.get("user", [""])[0]
        current = p.roles.get(int(rid), set())
        if user not in current:
            raise HttpError(404, f"'{user}' is not a member of the project role.")
        current.discard(user)
        return 204, None

    def prop_keys(self, key: str, **_: Any) -> tuple[int, Any]:
        p = self._find_project(key)
        return 200, {"keys": [{"key": k, "self": f"{self._base}{self.api}/project/{p.key}/properties/{k}"}
                              for k in sorted(p.properties)]}

    def prop_get(self, key: str, prop: str, **_: Any) -> tuple[int, Any]:
        p = self._find_project(key)
        if prop not in p.properties:
            raise HttpError(404, f"The property with key '{prop}' does not exist.")
        return 200, {"key": prop, "value": copy.deepcopy(p.properties[prop])}

    def prop_put(self, key: str, prop: str, body: Any, **_: Any) -> tuple[int, Any]:
        p = self._find_project(key)
        self._need(p, "ADMINISTER_PROJECTS")
        if body is None or body == {} or len(json.dumps(body)) > 32768:
            raise HttpError(400, "The property value must be non-empty JSON of at most 32768 bytes.")
        existed = prop in p.properties
        p.properties[prop] = copy.deepcopy(body)
        return (200 if existed else 201), ({} if self.state.cloud else None)

    def prop_delete(self, key: str, prop: str, **_: Any) -> tuple[int, Any]:
        p = self._find_project(key)
        self._need(p, "ADMINISTER_PROJECTS")
        if p.properties.pop(prop, None) is None:
            raise HttpError(404, f"The property with key '{prop}' does not exist.")
        return 204, None

    def priority_page(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        values = [{**x, "self": f"{self._base}{self.api}/priority/{x['id']}", "description": x["name"],
                   "statusColor": "#cccccc", "iconUrl": f"{self._base}/images/icons/priorities/{x['id']}.svg"}
                  for x in self.state.priorities]
        return 200, self._page(values, query)

    def resolution_page(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        values = [{**x, "self": f"{self._base}{self.api}/resolution/{x['id']}", "description": x["name"]}
                  for x in self.state.resolutions]
        return 200, self._page(values, query)

    def mypermissions(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        key = query.get("projectKey", [""])[0]
        wanted = [x for x in query.get("permissions", [""])[0].split(",") if x]
        if self.state.cloud and not wanted:
            raise HttpError(400, "The permissions parameter is required.")
        p = self._find_project(key) if key else None
        keys = wanted or list(PROJECT_PERMISSIONS + GLOBAL_PERMISSIONS)
        out = {}
        for n, k in enumerate(keys):
            is_global = k in GLOBAL_PERMISSIONS
            have = k in self.state.global_permissions if is_global else (p is not None and k in p.permissions)
            out[k] = {"id": str(n + 1), "key": k, "name": k.replace("_", " ").title(), "type":
                      "GLOBAL" if is_global else "PROJECT", "description": k, "havePermission": have}
        return 200, {"permissions": out}

    def user_bulk(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        ids = query.get("accountId", [])
        found = [self._user(self.state.users[i]) for i in ids if i in self.state.users]
        return 200, self._page(found, query, default_max=10)

    def user_list(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        users = sorted(self.state.users.values(), key=lambda u: u.id)
        start = int(query.get("cursor", ["0"])[0] or 0)
        size = min(int(query.get("maxResults", ["1000"])[0]), self.state.page_size)
        chunk = users[start:start + size]
        last = start + len(chunk) >= len(users)
        out: dict[str, Any] = {"isLast": last, "maxResults": size, "values": [self._user(u) for u in chunk],
                               "self": f"{self._base}{self.api}/user/list?cursor={start}"}
        if not last:
            out["nextCursor"] = str(start + size)
            out["nextPage"] = f"{self._base}{self.api}/user/list?cursor={start + size}&maxResults={size}"
        return 200, out

    def user_search(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        """Users whose email, display name or id starts with the text (Cloud: query=, DC: username=);
        a plain list, as both flavours answer."""
        text = (query.get("query") or query.get("username") or [""])[0].casefold()
        if not text:
            raise HttpError(400, "The query parameter 'query' (Cloud) or 'username' (Data Center) is required.")
        size = int(query.get("maxResults", ["50"])[0])
        hits = [u for u in sorted(self.state.users.values(), key=lambda u: u.id)
                if any(f.casefold().startswith(text) for f in (u.email, u.display_name, u.id))]
        return 200, [self._user(u) for u in hits[:size]]

    def user_get(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        ident = (query.get("accountId") or query.get("username") or [""])[0]
        u = self.state.users.get(ident)
        if u is None:
            raise HttpError(404, f"The user with the identifier '{ident}' does not exist.")
        return 200, self._user(u)

    # --- issues (just enough for the activation test issue) ---------------------

    _JQL = re.compile(r'^\s*project\s*=\s*"?(?P<project>[A-Z][A-Z0-9_]*)"?\s+AND\s+labels\s*=\s*"?(?P<label>[^"\s]+)"?'
                      r"\s*$", re.IGNORECASE)

    def _search(self, jql: str) -> list[dict[str, Any]]:
        m = self._JQL.match(jql or "")
        if not m:
            raise HttpError(400, f"The sandbox understands only 'project = KEY AND labels = LABEL', not {jql!r}.")
        p = self._find_project(m.group("project"))
        return [self._issue(i) for i in sorted(self.state.issues.values(), key=lambda i: int(i["id"]))
                if i["project"] == p.key and m.group("label") in i["labels"]]

    def _issue(self, i: dict[str, Any]) -> dict[str, Any]:
        return {"id": i["id"], "key": i["key"], "self": f"{self._base}{self.api}/issue/{i['id']}",
                "fields": {"summary": i["summary"], "labels": list(i["labels"]),
                           "issuetype": {"id": i["issuetype"], "name": i["issuetype_name"]}}}

    def search_jql(self, body: Any, **_: Any) -> tuple[int, Any]:
        issues = self._search((body or {}).get("jql", ""))
        return 200, {"issues": issues[: int((body or {}).get("maxResults", 50))], "isLast": True}

    def search_dc(self, body: Any, **_: Any) -> tuple[int, Any]:
        issues = self._search((body or {}).get("jql", ""))
        return 200, {"startAt": 0, "maxResults": 50, "total": len(issues), "issues": issues[:50]}

    def issue_create(self, body: Any, **_: Any) -> tuple[int, Any]:
        fields = (body or {}).get("fields") or {}
        key = ((fields.get("project") or {}).get("key") or (fields.get("project") or {}).get("id") or "")
        p = self._find_project(key)
        self._need(p, "CREATE_ISSUES")
        it_id = (fields.get("issuetype") or {}).get("id")
        it = next((t for t in p.issue_types if t["id"] == it_id), None)
        if it is None:
            raise HttpError(400, [], {"issuetype": "Specify a valid issue type"})
        if not fields.get("summary"):
            raise HttpError(400, [], {"summary": "You must specify a summary of the issue."})
        labels = fields.get("labels") or []
        if any(re.search(r"\s", x) for x in labels):
            raise HttpError(400, [], {"labels": "The label must not contain spaces."})
        n = sum(1 for i in self.state.issues.values() if i["project"] == p.key) + 1
        iid = str(self.state.next_id())
        issue = {"id": iid, "key": f"{p.key}-{n}", "project": p.key, "summary": fields["summary"],
                 "labels": list(labels), "issuetype": it["id"], "issuetype_name": it["name"]}
        self.state.issues[iid] = issue
        return 201, {"id": iid, "key": issue["key"], "self": f"{self._base}{self.api}/issue/{iid}"}

    def _find_issue(self, key: str) -> dict[str, Any]:
        for i in self.state.issues.values():
            if key in (i["id"], i["key"]):
                return i
        raise HttpError(404, "Issue does not exist or you do not have permission to see it.")

    def issue_get(self, key: str, **_: Any) -> tuple[int, Any]:
        return 200, self._issue(self._find_issue(key))

    def issue_delete(self, key: str, **_: Any) -> tuple[int, Any]:
        i = self._find_issue(key)
        self._need(self.state.projects[i["project"]], "DELETE_ISSUES")
        del self.state.issues[i["id"]]
        return 204, None

    # --- admin webhooks (/rest/webhooks/1.0/webhook) ---------------------------

    def _webhook(self, wid: int) -> dict[str, Any]:
        w = self.state.webhooks[wid]
        return {**copy.deepcopy(w), "self": f"{self._base}/rest/webhooks/1.0/webhook/{wid}",
                "lastUpdatedUser": self.state.me, "lastUpdatedDisplayName": "Integration user",
                "lastUpdated": 1700000000000 + wid}

    def webhook_list(self, **_: Any) -> tuple[int, Any]:
        self._require_admin()
        return 200, [self._webhook(w) for w in sorted(self.state.webhooks)]

    def webhook_get(self, wid: str, **_: Any) -> tuple[int, Any]:
        self._require_admin()
        if int(wid) not in self.state.webhooks:
            raise HttpError(404, f"Webhook {wid} does not exist.")
        return 200, self._webhook(int(wid))

    def _webhook_body(self, body: Any) -> dict[str, Any]:
        b = body or {}
        if not b.get("name") or not b.get("url"):
            raise HttpError(400, "A webhook needs a name and a url.")
        return {"name": b["name"], "url": b["url"], "events": list(b.get("events") or []),
                "filters": dict(b.get("filters") or {}), "excludeBody": bool(b.get("excludeBody", False)),
                "enabled": bool(b.get("enabled", True))}

    def webhook_create(self, body: Any, **_: Any) -> tuple[int, Any]:
        self._require_admin()
        wid = self.state.next_id()
        self.state.webhooks[wid] = self._webhook_body(body)
        return 201, self._webhook(wid)

    def webhook_update(self, wid: str, body: Any, **_: Any) -> tuple[int, Any]:
        self._require_admin()
        if int(wid) not in self.state.webhooks:
            raise HttpError(404, f"Webhook {wid} does not exist.")
        self.state.webhooks[int(wid)] = self._webhook_body(body)
        return 200, self._webhook(int(wid))

    def webhook_delete(self, wid: str, **_: Any) -> tuple[int, Any]:
        self._require_admin()
        if self.state.webhooks.pop(int(wid), None) is None:
            raise HttpError(404, f"Webhook {wid} does not exist.")
        return 204, None


def transport(state: JiraState, base_url: str = "") -> Any:
    """An httpx transport that serves ``state`` in-process (no socket)."""
    import httpx
    return httpx.WSGITransport(app=JiraSandbox(state, base_url))


def serve(flavour: str = "cloud", host: str = "127.0.0.1", port: int = 8089,
          ready: Callable[[str, JiraState], None] | None = None) -> None:
    """Serve a fresh sandbox on host:port until interrupted."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (wsgiref's name)
            pass

    class Threading(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    state = new_state(flavour, page_size=50)
    app = JiraSandbox(state)
    with make_server(host, port, app, server_class=Threading, handler_class=Quiet) as server:
        url = f"http://{host}:{server.server_port}"
        if ready is not None:
            ready(url, state)
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m reconciler.sandbox.jira",
                                 description="Serve an in-memory Jira sandbox on 127.0.0.1.")
    ap.add_argument("--flavour", choices=("cloud", "datacenter"), default="cloud")
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args(argv)

    def ready(url: str, state: JiraState) -> None:
        print(describe(url, state), flush=True)

    try:
        serve(args.flavour, args.host, args.port, ready)
    except KeyboardInterrupt:
        pass
    return 0


def describe(url: str, state: JiraState) -> str:
    """How to point a client (or a reconciler connection) at a served sandbox."""
    if state.cloud:
        return (f"Jira Cloud sandbox on {url} (REST v3)\n"
                f"JIRA_SITE_URL={url}\nJIRA_EMAIL={state.users[state.me].email}\nJIRA_API_TOKEN={state.secret}\n"
                "(a sandbox credential, not a secret)")
    return (f"Jira Data Center sandbox on {url} (REST v2)\n"
            f"JIRA_BASE_URL={url}\nJIRA_TOKEN={state.secret}\n(a sandbox credential, not a secret)")


if __name__ == "__main__":
    raise SystemExit(main())
