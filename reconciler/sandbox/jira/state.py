"""The sandbox's state: users, projects, roles, properties, issues, webhooks, injected faults."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Every project permission reconciler knows about, as Jira keys them.
PROJECT_PERMISSIONS = (
    "BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "TRANSITION_ISSUES", "RESOLVE_ISSUES", "CLOSE_ISSUES",
    "ADD_COMMENTS", "CREATE_ATTACHMENTS", "DELETE_ISSUES", "ADMINISTER_PROJECTS",
)
GLOBAL_PERMISSIONS = ("ADMINISTER",)
# Every permission key Jira knows (built in); /mypermissions refuses any other (400).
KNOWN_PERMISSIONS = frozenset(PROJECT_PERMISSIONS + GLOBAL_PERMISSIONS + (
    "ASSIGN_ISSUES", "ASSIGNABLE_USER", "LINK_ISSUES", "MOVE_ISSUES", "SCHEDULE_ISSUES", "SET_ISSUE_SECURITY",
    "MODIFY_REPORTER", "VIEW_VOTERS_AND_WATCHERS", "MANAGE_WATCHERS", "EDIT_ALL_COMMENTS", "EDIT_OWN_COMMENTS",
    "DELETE_ALL_COMMENTS", "DELETE_OWN_COMMENTS", "DELETE_ALL_ATTACHMENTS", "DELETE_OWN_ATTACHMENTS",
    "WORK_ON_ISSUES", "EDIT_OWN_WORKLOGS", "EDIT_ALL_WORKLOGS", "DELETE_OWN_WORKLOGS", "DELETE_ALL_WORKLOGS",
    "VIEW_DEV_TOOLS", "VIEW_READONLY_WORKFLOW", "SYSTEM_ADMIN", "USER_PICKER", "CREATE_SHARED_OBJECTS",
    "MANAGE_GROUP_FILTER_SUBSCRIPTIONS", "BULK_CHANGE"))

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
    priority_ids: list[str] | None = None  # its priority scheme's priorities (None: every priority)
    # issue type id -> fields its create screen adds to the standard ones (createmeta shapes)
    extra_fields: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    off_screen: set[str] = field(default_factory=set)  # standard fields not on its create screens


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
    version: str = "10.3.4"  # Data Center's version (/serverInfo); /user/list exists from 10.3
    # how Data Center names a user role actor: "username" (what Jira answers) or "key" (JIRAUSERnnnnn)
    role_actor_name: str = "username"
    # search sees only what was indexed by reindex() (True: eventually consistent, as Cloud's /search/jql)
    lagging_search: bool = False
    indexed: dict[str, dict[str, Any]] = field(default_factory=dict)
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

    def version_numbers(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.version.split(".") if n.isdigit())

    def reindex(self) -> None:
        """What a lagging search sees catches up with the issues as they are now."""
        self.indexed = copy.deepcopy(self.issues)

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

