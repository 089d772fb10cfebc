"""Handlers: identity, projects, roles, properties, priorities, resolutions, permissions, users."""

from __future__ import annotations

import copy
import json
from typing import Any

from reconciler.sandbox.jira.base import HttpError, SandboxBase
from reconciler.sandbox.jira.state import (
    GLOBAL_PERMISSIONS,
    KNOWN_PERMISSIONS,
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
                actors.append({"id": 20000 + n, "name": u.key if self.state.role_actor_name == "key" else u.id,
                               "displayName": u.display_name,
                               "type": "atlassian-user-role-actor"})
        return {"id": rid, "name": r["name"], "description": r["description"], "actors": actors,
                "self": f"{self._base}{self.api}/project/{p.key}/role/{rid}"}

    def role_get(self, key: str, rid: str, **_: Any) -> tuple[int, Any]:
        p = self._find_project(key)
        if "ADMINISTER_PROJECTS" not in p.permissions and "ADMINISTER" not in self.state.global_permissions:
            # Jira: Administer Projects or Administer Jira; without it the role is "not found"
            raise HttpError(404, f"No project role with id {rid} could be found, or you may not see it.")
        return 200, self._role(p, int(rid))

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
        unknown = sorted(set(wanted) - KNOWN_PERMISSIONS)
        if unknown:
            raise HttpError(400, f"Invalid permission key(s): {', '.join(unknown)}.")
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
        if self.state.version_numbers()[:2] < (10, 3):
            raise HttpError(404, "null for uri: /rest/api/2/user/list")  # new in Data Center 10.3
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
        ident = (query.get("accountId") or query.get("username") or query.get("key") or [""])[0]
        if "key" in query and not self.state.cloud:
            u = next((x for x in self.state.users.values() if x.key == ident), None)
        else:
            u = self.state.users.get(ident) or next((x for x in self.state.users.values()
                                                     if not self.state.cloud and x.id.lower() == ident.lower()), None)
        if u is None:
            raise HttpError(404, f"The user with the identifier '{ident}' does not exist.")
        return 200, self._user(u)

    def server_info(self, **_: Any) -> tuple[int, Any]:
        s = self.state
        if s.cloud:
            return 200, {"baseUrl": self._base, "version": "1001.0.0-SNAPSHOT", "versionNumbers": [1001, 0, 0],
                         "deploymentType": "Cloud", "buildNumber": 100289, "serverTitle": "Jira",
                         "scmInfo": "sandbox", "buildDate": "2026-01-01T00:00:00.000+0000",
                         "serverTime": "2026-01-01T00:00:00.000+0000"}
        return 200, {"baseUrl": self._base, "version": s.version, "versionNumbers": list(s.version_numbers()),
                     "deploymentType": "Server", "buildNumber": 10030004, "serverTitle": "Jira",
                     "scmInfo": "sandbox", "buildDate": "2026-01-01T00:00:00.000+0000"}

    def create_meta(self, key: str, type_id: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        """The create screen of an issue type: the standard fields (minus those taken off the screen), the
        priority field with the priorities of the project's scheme, and the fields a test added."""
        p = self._find_project(key)
        if "CREATE_ISSUES" not in p.permissions:
            raise HttpError(400 if not self.state.cloud else 404, "You may not create issues in this project.")
        it = next((x for x in p.issue_types if x["id"] == type_id), None)
        if it is None:
            raise HttpError(404, f"Issue type with id '{type_id}' does not exist or is not in project {p.key}.")
        scheme = p.priority_ids
        prios = [{"id": x["id"], "name": x["name"], "self": f"{self._base}{self.api}/priority/{x['id']}",
                  "iconUrl": f"{self._base}/images/icons/priorities/{x['id']}.svg"}
                 for x in self.state.priorities if scheme is None or x["id"] in scheme]

        def field(fid: str, name: str, kind: str, required: bool, default: bool = False,
                  **extra: Any) -> dict[str, Any]:
            return {"fieldId": fid, "key": fid, "name": name, "required": required, "hasDefaultValue": default,
                    "operations": ["set"], "schema": {"type": kind, "system": fid}, **extra}
        fields = [field("summary", "Summary", "string", True), field("issuetype", "Issue Type", "issuetype", True),
                  field("project", "Project", "project", True), field("reporter", "Reporter", "user", True, True),
                  field("description", "Description", "string", False), field("labels", "Labels", "array", False),
                  field("priority", "Priority", "priority", False, True, allowedValues=prios)]
        fields = [f for f in fields if f["fieldId"] not in p.off_screen] + list(p.extra_fields.get(type_id, []))
        start = int(query.get("startAt", ["0"])[0])
        size = min(int(query.get("maxResults", ["50"])[0]), self.state.page_size)
        chunk = fields[start:start + size]
        page: dict[str, Any] = {"startAt": start, "maxResults": size, "total": len(fields)}
        if self.state.cloud:
            page["fields"] = chunk
        else:
            page.update({"isLast": start + len(chunk) >= len(fields), "values": chunk})
        return 200, page
