"""The Jira REST calls reconciler makes (Cloud REST v3, Data Center REST v2), and ``connect``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import httpx

from reconciler.errors import (
    NotFoundError,
    ServerError,
)
from reconciler.integrations.models import JiraCloudConnection, JiraConnection
from reconciler.providers._http import BasicAuth, BearerToken, Found, Http, build_client, ca_path, found
from reconciler.providers.paging import Page, read_pages
from reconciler.providers.paths import seg
from reconciler.secrets import resolve
from reconciler.threads import Pool

CLOUD_PAGE = 100
USER_CHUNK = 50  # account IDs per /user/bulk call (keeps the URL short)
LOOKUP_WORKERS = 8  # account lookups in flight at once (the client keeps 8 connections)

_USER_KEY = re.compile(r"^JIRAUSER\d+$")
_T = TypeVar("_T")
_R = TypeVar("_R")


def concurrently(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``fn`` over ``items``, LOOKUP_WORKERS at a time, results in the order of ``items``; the first error
    is raised."""
    todo = list(items)
    if len(todo) <= 1:
        return [fn(x) for x in todo]
    with Pool(max_workers=min(LOOKUP_WORKERS, len(todo)), thread_name_prefix="jira-read") as pool:
        return list(pool.map(fn, todo))


# --- the wire protocol ------------------------------------------------------------

class JiraClient:
    """The Jira REST calls reconciler makes, for one connection (Cloud v3 or Data Center v2)."""

    def __init__(self, http: Http, conn: JiraConnection) -> None:
        self.http = http
        self.conn = conn
        self.cloud = isinstance(conn, JiraCloudConnection)
        self.api = "rest/api/3" if self.cloud else "rest/api/2"
        self.user_keys: dict[str, str] = {}  # Data Center: user key -> username, of the accounts looked up

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
                out.append(str(ident) if self.cloud else self.username_of(str(ident)))
        return sorted(out)

    def username_of(self, name: str) -> str:
        """A Data Center role actor's ``name`` as a username. Data Center answers the username there; a user
        key (``JIRAUSERnnnnn``, what Jira stores for the actor) is translated, through the accounts already
        looked up or one lookup by key, so that actors always compare with the usernames of user maps."""
        if name in self.user_keys:
            return self.user_keys[name]
        if not _USER_KEY.match(name):
            return name
        u = self.user_keyed(name)
        self.user_keys[name] = str(u.get("name") or name) if u is not None else name
        return self.user_keys[name]

    def permissions(self, key: str, wanted: Sequence[str]) -> dict[str, bool]:
        params: dict[str, Any] = {"projectKey": key}
        if self.cloud:  # Cloud requires the list; Data Center answers with every permission
            params["permissions"] = ",".join(wanted)
        body = self._get("mypermissions", f"cannot read the integration user's permissions on {key}", **params)
        perms = body.get("permissions") or {}
        return {k: bool((perms.get(k) or {}).get("havePermission")) for k in wanted}

    def users(self, idents: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Look up accounts, never the whole user base: Cloud in /user/bulk pages of USER_CHUNK IDs; Data
        Center one ``GET /user?username=`` each (every supported version has it; ``/user/list`` exists only
        from 10.3 and lists every user). Both run LOOKUP_WORKERS at a time."""
        want = sorted(set(idents))
        if not want:
            return {}
        out: dict[str, dict[str, Any]] = {}
        if self.cloud:
            def chunk(n: int) -> list[dict[str, Any]]:
                return list(self._paged("user/bulk", "cannot look up Jira accounts",
                                        accountId=want[n:n + USER_CHUNK]))
            for found in concurrently(chunk, range(0, len(want), USER_CHUNK)):
                for u in found:
                    out[str(u["accountId"])] = u
            return out
        for name, one in zip(want, concurrently(self.user_named, want), strict=True):
            if one is not None:
                out[name] = one
                if one.get("key"):
                    self.user_keys[str(one["key"])] = str(one.get("name") or name)
        return out

    def user_named(self, username: str) -> dict[str, Any] | None:
        """A Data Center account by username (None: no such user)."""
        try:
            return dict(self._get("user", f"cannot look up Jira user {username}", username=username))
        except NotFoundError:
            return None

    def user_keyed(self, key: str) -> dict[str, Any] | None:
        """A Data Center account by its user key (JIRAUSERnnnnn; None: no such user)."""
        try:
            return dict(self._get("user", f"cannot look up Jira user key {key}", key=key))
        except NotFoundError:
            return None

    def server_info(self) -> dict[str, Any]:
        return dict(self._get("serverInfo", "cannot read the Jira server's version (serverInfo)"))

    def create_fields(self, project: str, issue_type_id: str) -> list[dict[str, Any]]:
        """The fields of the create screen of an issue type in a project (``createmeta``), paged. Cloud answers
        them under 'fields' (its description also names 'results'), Data Center under 'values'."""
        path = f"issue/createmeta/{seg(project)}/issuetypes/{seg(issue_type_id)}"
        what = f"cannot read the create screen of issue type {issue_type_id} in {project}"

        def fetch(offset: int) -> Page:
            page = self._get(path, what, startAt=offset, maxResults=CLOUD_PAGE)
            values = next((page[k] for k in ("fields", "values", "results")
                           if isinstance(page, dict) and isinstance(page.get(k), list)), None)
            if values is None:
                raise ServerError(f"{what}: the answer has no list of fields", "GET", self.http._full(path))
            total = page.get("total")
            last = page.get("isLast")
            return Page([v for v in values if isinstance(v, dict)],
                        total if isinstance(total, int) and not isinstance(total, bool) else None,
                        last if isinstance(last, bool) else None)

        items, _ = read_pages(fetch, page_size=CLOUD_PAGE, url=self.http._full(path),
                              key=lambda v: str(v.get("fieldId") or v.get("key")))
        return items

    def issue(self, key: str) -> dict[str, Any] | None:
        """An issue by key or id (None: gone, or not visible)."""
        try:
            return dict(self._get(f"issue/{seg(key)}", f"cannot read issue {key}", fields="summary,labels"))
        except NotFoundError:
            return None

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
            return Found(True) if set(idents) <= have else None
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
            return found(next((w for w in self.webhooks() if w.get("name") == body["name"]), None))
        r = self.http.request("POST", "rest/webhooks/1.0/webhook", json=body, recover=recover,
                              what=f"cannot create webhook '{body['name']}'")
        return dict(r.value) if isinstance(r, Found) else r.json()

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
            made = self.labelled_issues(project, label)
            return Found(made[0]) if made else None
        r = self.http.request("POST", f"{self.api}/issue", json=body, recover=recover,
                              what=f"cannot create the test issue in {project}")
        return dict(r.value) if isinstance(r, Found) else r.json()

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

