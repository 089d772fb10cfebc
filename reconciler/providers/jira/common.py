"""What the Jira modules share: names, addresses, the plan's parts and the helpers that compare
live Jira values with declared ones."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.config.models import Config
from reconciler.integrations.models import Integration, JiraConnection, RedmineConnection
from reconciler.plan.model import AttributeChange, Change, JiraWebhook
from reconciler.providers.tracker import integrations_on as integrations_on

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
TEST_ISSUE_PROPERTY_PREFIX = "reconciler.test-issue."  # + integration: which issue the activation test made
# The fields the activation test issue sets besides project and issue type (JiraClient.create_issue).
TEST_ISSUE_FIELDS = ("summary", "labels", "description")
# The oldest Jira Data Center reconciler supports (docs/jira.md); /serverInfo tells the version.
MIN_DC_VERSION = (9, 12)


def link(conn: str, changes: list[Change], ends: dict[str, set[str]]) -> list[Change]:
    """What waits for what on one connection (``depends_on``): an integration's record for its test issue's
    change, and for the role changes that revoke grants its record lists (``ends``: role change address ->
    integrations), so a failed revoke leaves a record that still names the grant; a removed integration's
    webhook for its record's delete and those revokes: until then the webhook's name still leads to it."""
    addrs = {c.address for c in changes}
    by_integration: dict[str, set[str]] = {}
    for role, names in ends.items():
        for name in names:
            by_integration.setdefault(name, set()).add(role)
    out = []
    for c in changes:
        deps: set[str] = set()
        if c.kind == "integration":
            deps |= by_integration.get(c.key, set()) | ({address(conn, "test_issue", c.key)} & addrs)
        elif isinstance(c.payload, JiraWebhook) and c.payload.integration is not None:
            gone = c.payload.integration
            deps |= by_integration.get(gone, set()) | ({address(conn, "integration", gone)} & addrs)
        if deps:
            c = c.model_copy(update={"depends_on": tuple(sorted(deps))})
        out.append(c)
    return out


def address(conn: str, kind: str, key: str) -> str:
    return f'{PREFIX}{conn}.{kind}["{key}"]'


def jira_connections(config: Config) -> list[JiraConnection]:
    return [c for c in config.connections if not isinstance(c, RedmineConnection)]






def _where(i: Integration, field: str | None = None) -> str:
    f, line, col = i.where(field)
    return f"{f}:{line}:{col}"


def _choices(names: Iterable[str]) -> str:
    names = sorted(set(names), key=str.lower)
    if not names:
        return "none exist"
    return "valid: " + ", ".join(f"'{n}'" for n in names)


# --- planning -----------------------------------------------------------------------

@dataclass
class JiraPlan:
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    managed: int = 0  # integration records and webhooks of reconciler's seen live (the removal threshold's base)



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

