"""What every group of handlers of the sandbox shares: errors and the representations Jira answers with."""

from __future__ import annotations

from typing import Any

from reconciler.sandbox.jira.state import (
    JiraState,
    Project,
    User,
)


class HttpError(Exception):
    def __init__(self, status: int, messages: list[str] | str, errors: dict[str, str] | None = None) -> None:
        self.status = status
        self.messages = [messages] if isinstance(messages, str) else messages
        self.errors = errors or {}


_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
                403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests",
                500: "Internal Server Error", 503: "Service Unavailable"}


class SandboxBase:
    """State and representations the handlers share (the WSGI app is ``app.JiraSandbox``)."""

    state: JiraState
    api: str
    _base: str

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
