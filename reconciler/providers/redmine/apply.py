"""Applying one Redmine connection's changes, in dependency order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from reconciler.errors import NotFoundError, ReconcilerError, StalePlanError
from reconciler.execute import Graph, Outcome, Step
from reconciler.plan.model import Action, Change, RedmineGroup, RedmineIntegration, RedmineMembership
from reconciler.providers.digest import digest
from reconciler.providers.paths import seg
from reconciler.providers.redmine.client import RedmineClient
from reconciler.providers.redmine.live import address, parse_record, record_text, record_title

if TYPE_CHECKING:
    from reconciler.integrations.models import RedmineConnection

TEST_SUBJECT = "reconciler activation test: {name}"


P = TypeVar("P", RedmineGroup, RedmineIntegration, RedmineMembership)


def _payload(ch: Change, kind: type[P]) -> P:
    """The change's payload as the type its kind carries (an empty one where the plan had nothing to say)."""
    return ch.payload if isinstance(ch.payload, kind) else kind()


class RedmineApplier:
    """Makes one connection's changes. A group goes after the creates of the users it adds; a project's
    memberships after the records of the integrations declared there (a grant is recorded before it is
    made; a record rewritten after the revokes it depends on follows them instead), and its removed
    memberships after the ones kept; groups are deleted after the memberships, removed integrations
    last, their record pages after the role changes that revoke their grants (a failed revoke keeps the
    record, so a re-run finds what is left). A failed change does not stop independent ones; one that
    needs it (``depends_on``) is skipped by the executor, named."""

    def __init__(self, client: RedmineClient, conn: RedmineConnection, report: Callable[[Outcome], None]) -> None:
        self.client, self.conn, self.report = client, conn, report
        self.ids: dict[str, str] = {}  # "user:<login>" / "group:<name>" -> live id
        self._lock = threading.Lock()
        self._roles: dict[str, int] | None = None
        self._trackers: dict[str, int] | None = None

    def steps(self, graph: Graph, pool: str, changes: list[Change]) -> None:
        """The connection's changes as steps of ``graph``: one per change, each after the steps it needs
        to follow (``Graph.wait``)."""
        for ch in changes:
            if ch.kind == "user" and ch.id:
                self.ids["user:" + ch.key.casefold()] = ch.id
            if ch.kind == "group":
                if ch.id:
                    self.ids["group:" + ch.key] = ch.id
                for login, uid in _payload(ch, RedmineGroup).users.items():
                    self.ids.setdefault("user:" + login.casefold(), uid)
        gone = {ch.address for ch in changes if ch.action is Action.DELETE}

        def fn(ch: Change) -> Callable[[Change], None] | None:
            if ch.kind == "user":
                return self._user
            if ch.kind in ("group", "membership"):
                return self._delete if ch.address in gone else (self._group if ch.kind == "group" else
                                                                self._membership)
            if ch.kind == "integration":
                return self._remove_integration if ch.address in gone else self._integration
            return None

        made: dict[str, Step] = {}
        for ch in changes:
            f = fn(ch)
            if f is not None:
                made[ch.address] = graph.each(pool, [ch], f, self.report)[0]
        new_users = {ch.key.casefold(): made[ch.address] for ch in changes
                     if ch.kind == "user" and ch.action is Action.CREATE}
        records: dict[str, list[Step]] = {}
        granted: dict[str, list[Step]] = {}
        for ch in changes:
            # a record rewritten after a revoke (depends_on) is the one exception: it follows the grants
            if ch.kind == "integration" and ch.address not in gone and ch.after is not None and not ch.depends_on:
                records.setdefault(str(ch.after["project"]), []).append(made[ch.address])
            if ch.kind == "membership" and ch.address not in gone and ch.after is not None:
                granted.setdefault(str(ch.after["project"]), []).append(made[ch.address])
        for ch in changes:
            step = made.get(ch.address)
            if step is None or ch.address in gone:
                if ch.kind == "membership" and step is not None and ch.before is not None:
                    graph.wait(step, granted.get(str(ch.before["project"]), []))
                continue
            if ch.kind == "group" and ch.after is not None:
                graph.wait(step, [new_users.get(str(login).casefold()) for login in ch.after["users"]])
            elif ch.kind == "membership" and ch.after is not None:
                graph.wait(step, records.get(str(ch.after["project"]), []))
        memberships = graph.gate([made[ch.address] for ch in changes if ch.kind == "membership"
                                  and ch.address in made])
        for ch in changes:
            if ch.kind == "group" and ch.address in gone:
                graph.wait(made[ch.address], [memberships])
        removed = [ch for ch in changes if ch.kind == "integration" and ch.address in gone]
        rest = graph.gate([s for a, s in made.items() if a not in {ch.address for ch in removed}])
        for ch in removed:
            graph.wait(made[ch.address], [rest])

    def _need(self, kind: str, key: str) -> str:
        ident = self.ids.get(f"{kind}:{key.casefold() if kind == 'user' else key}")
        if ident is None:  # a create of it in this plan that failed skips this change first (depends_on)
            raise ReconcilerError(f"skipped: depends on {address(self.conn.name, kind, key)}, which does not exist")
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
                uid = login[3:] if login.startswith("id:") else _payload(ch, RedmineGroup).users.get(login)
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
        gid = _payload(ch, RedmineMembership).group_id or self._need("group", group)

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
        elif _payload(ch, RedmineIntegration).enabled_tracker:
            activation["enabled_tracker"] = True
        if "wiki" not in modules:  # the record page needs the project's wiki
            update["enabled_module_names"] = sorted(modules + ["wiki"])
        if update:
            self.client.write("PUT", f"projects/{seg(pid)}.json", {"project": update},
                              f"cannot update project {ident}")
        done = _payload(ch, RedmineIntegration).test_issue
        if done is not None:
            activation["test_issue"] = done
        if ch.action is Action.CREATE and after.get("test_issue"):
            activation.update(self._test_issue(ch.key, pid, tid, bool(after.get("delete_test_issue"))))
        settings = {k: v for k, v in after.items() if k != "tracker_enabled"}
        title = record_title(ch.key)
        self.client.write("PUT", f"projects/{quote(ident, safe='')}/wiki/{quote(title, safe='')}.json",
                          {"wiki_page": {"text": record_text(ch.key, settings, activation),
                                         "comments": "written by reconciler"}},
                          f"cannot write the record page {title} of project {ident}")

    def _remove_integration(self, ch: Change) -> None:
        """A removed integration: its tracker (when planned), then its record page, the last of its marks."""
        record = _payload(ch, RedmineIntegration)
        if record.project is None or record.title is None:
            raise ReconcilerError(f"{ch.address}: the plan does not say which record page to delete; plan again")
        ident, title = record.project, record.title
        page = self.client.wiki_page(ident, title)
        if page is None:
            return  # removed since the plan was made
        if ch.precondition is not None and digest(parse_record(page) or {}) != ch.precondition.digest:
            raise StalePlanError(f"{ch.address}: the record page changed since the plan was made; plan again")
        tracker = record.disable_tracker
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
