"""Handlers: identity, projects, roles, properties, priorities, resolutions, permissions, users."""

from __future__ import annotations

import copy
import json
from typing import Any

from reconciler.sandbox.jira.base import HttpError, SandboxBase
from reconciler.sandbox.jira.state import (
    GLOBAL_PERMISSIONS,
    PROJECT_PERMISSIONS,
    Project,
)


class ProjectHandlers(SandboxBase):
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

