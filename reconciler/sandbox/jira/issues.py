"""Handlers: issues (the activation test issue) and admin webhooks."""

from __future__ import annotations

import copy
import re
from typing import Any

from reconciler.sandbox.jira.base import HttpError, SandboxBase


class IssueHandlers(SandboxBase):
    # --- issues (just enough for the activation test issue) ---------------------

    _JQL = re.compile(r'^\s*project\s*=\s*"?(?P<project>[A-Z][A-Z0-9_]*)"?\s+AND\s+labels\s*=\s*"?(?P<label>[^"\s]+)"?'
                      r"\s*$", re.IGNORECASE)

    def _search(self, jql: str) -> list[dict[str, Any]]:
        m = self._JQL.match(jql or "")
        if not m:
            raise HttpError(400, f"The sandbox understands only 'project = KEY AND labels = LABEL', not {jql!r}.")
        p = self._find_project(m.group("project"))
        issues = self.state.indexed if self.state.lagging_search else self.state.issues
        return [self._issue(i) for i in sorted(issues.values(), key=lambda i: int(i["id"]))
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

