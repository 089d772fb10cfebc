"""Desired-state models for tracker connections (``connections:``) and integrations (``integrations:``).

A connection is one live tracker and the credentials of its integration user;
an integration wires a platform program to a project of that tracker. Models
hold no I/O; the Jira planner (``reconciler.providers.jira``) checks every name
against the live tracker at plan time.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from reconciler.config.base import Item, Model, Name, check_email, check_url_shape
from reconciler.secrets import SecretRef

_ATLASSIAN_SITE = re.compile(r"^https://[a-z0-9][a-z0-9-]*\.atlassian\.net/?$")
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{1,254}$")
# Redmine's Project::IDENTIFIER_MAX_LENGTH and identifier format
_REDMINE_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
_LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/.*)?$")


def _check_site_url(value: str) -> str:
    check_url_shape(value)
    if _ATLASSIAN_SITE.match(value) or _LOOPBACK.match(value):
        return value.rstrip("/")
    raise ValueError(f"'{value}' is not a Jira Cloud site URL; write https://<site>.atlassian.net "
                     "(http://127.0.0.1:PORT only for a local sandbox)")


def _check_base_url(value: str) -> str:
    check_url_shape(value)
    if value.startswith("https://") or _LOOPBACK.match(value):
        return value.rstrip("/")
    raise ValueError(f"'{value}' must start with https:// (plain http only on loopback)")


# --- connections -----------------------------------------------------------

class _Connection(Item):
    timeout: float = Field(default=30.0, gt=0)
    """Seconds before one HTTP request times out."""
    ca_bundle: str | None = None
    """A PEM file of CA certificates to trust instead of the system's."""


class _JiraConnection(_Connection):
    scan_projects: list[str] = Field(default_factory=list)
    """Projects also searched for integrations reconciler recorded that the config no longer declares (besides
    the projects the connection's integrations name and those reconciler's own webhooks point at)."""
    protect: list[str] = Field(default_factory=list)
    """Names of removed integrations whose property, webhook and role grants are never deleted."""
    max_removals: int = Field(default=500, ge=0)
    """Refuse a plan that would delete more integration records and webhooks than this."""
    max_removal_percent: float = Field(default=20.0, ge=0, le=100)
    """Refuse a plan that would delete more than this share of the integration records and webhooks."""

    @field_validator("scan_projects")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if not _PROJECT_KEY.match(k)]
        if bad:
            raise ValueError(f"'{bad[0]}' is not a Jira project key; a key is an upper-case letter followed by "
                             "upper-case letters, digits or _ (e.g. SEC)")
        return v


class JiraCloudConnection(_JiraConnection):
    """A Jira Cloud site, reached as the integration user with email + API token (HTTP basic auth)."""

    name: Name
    """Short name used in addresses (jira.<name>....) and by integrations."""
    type: Literal["jira-cloud"]
    site_url: str
    """https://<site>.atlassian.net"""
    email: str
    """The integration user's Atlassian account email."""
    api_token: SecretRef
    """The integration user's API token, as ${env:NAME} or ${file:PATH}."""

    @field_validator("site_url")
    @classmethod
    def _site(cls, v: str) -> str:
        return _check_site_url(v)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return check_email(v)

    @property
    def url(self) -> str:
        return self.site_url


class JiraDataCenterConnection(_JiraConnection):
    """A Jira Server / Data Center instance, reached with the integration user's personal access token."""

    name: Name
    """Short name used in addresses (jira.<name>....) and by integrations."""
    type: Literal["jira-datacenter"]
    base_url: str
    """The Jira base URL, e.g. https://jira.example.com (with the context path, if any)."""
    token: SecretRef
    """A personal access token (sent as a bearer token), as ${env:NAME} or ${file:PATH}."""

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        return _check_base_url(v)

    @property
    def url(self) -> str:
        return self.base_url


class RedmineConnection(_Connection):
    """A Redmine instance, reached with the integration user's REST API key."""

    # integration settings Redmine has no place for: key -> what to do instead (checked at load time)
    UNSUPPORTED: ClassVar[dict[str, str]] = {
        "resolutions": "Redmine has no resolutions; map closed reasons to statuses under 'statuses:' instead",
        "webhook": "Redmine has no webhooks; remove 'webhook' from an integration on a redmine connection",
    }

    name: Name
    """Short name used in addresses and by integrations."""
    type: Literal["redmine"]
    base_url: str
    """The Redmine base URL, e.g. https://redmine.example.com."""
    api_key: SecretRef
    """The REST API key (sent as X-Redmine-API-Key), as ${env:NAME} or ${file:PATH}; an administrator's key,
    since users and groups are admin-only in Redmine's API."""
    teams: list[str] | None = None
    """Teams converged into Redmine groups (by name); default: every declared team."""
    membership: Literal["authoritative", "additive"] = "authoritative"
    """Group members: authoritative makes each group hold exactly the team's mapped members; additive only
    adds them and leaves other users in the group."""
    authoritative: bool = False
    """Delete Redmine groups the config does not declare (built-in groups are never touched)."""
    create_users: bool = True
    """Create a Redmine user for a mapped login that does not exist yet (login, name, mail from the member)."""
    unmapped_members: Literal["skip", "error"] = "skip"
    """A team member with no Redmine login in user_maps: skip (left out of the group, with a plan note) or
    error (the plan fails)."""
    protect: list[str] = Field(default_factory=list)
    """Group names, and names of removed integrations, that are never deleted."""
    max_removals: int = Field(default=500, ge=0)
    """Refuse a plan that would delete more groups, project memberships and integration records than this."""
    max_removal_percent: float = Field(default=20.0, ge=0, le=100)
    """Refuse a plan that would delete more than this share of the managed groups, memberships and integration
    records."""
    page_size: int = Field(default=100, ge=1, le=100)
    """Page size for list calls (Redmine caps it at 100)."""
    concurrency: int = Field(default=4, ge=1, le=32)
    """How many write requests may be in flight at once."""

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        return _check_base_url(v)

    @property
    def url(self) -> str:
        return self.base_url


Connection = Annotated[JiraCloudConnection | JiraDataCenterConnection | RedmineConnection,
                       Field(discriminator="type")]
JiraConnection = JiraCloudConnection | JiraDataCenterConnection

# --- integrations ----------------------------------------------------------

Severity = Literal["none", "low", "medium", "high", "critical", "exceptional"]
SubmissionStatus = Literal["triage", "pending", "accepted", "closed", "archived"]
ClosedReason = Literal["resolved", "duplicate", "accepted-risk", "informative", "out-of-scope",
                       "not-applicable", "spam"]
Trigger = Literal["manual", "submission-created", "submission-triaged", "submission-accepted"]
TemplateSection = Literal["references", "information", "researcher", "report"]
MessageType = Literal["researcher", "triage", "company", "events"]
WebhookEvent = Literal[
    "jira:issue_created", "jira:issue_updated", "jira:issue_deleted",
    "comment_created", "comment_updated", "comment_deleted",
    "issuelink_created", "issuelink_deleted", "worklog_created", "worklog_updated", "worklog_deleted",
]

DEFAULT_EVENTS: tuple[WebhookEvent, ...] = ("jira:issue_updated", "comment_created")
DEFAULT_TEMPLATE: tuple[TemplateSection, ...] = ("references", "information", "researcher", "report")

# Jira refuses labels with whitespace and caps them at 255 characters.
MAX_LABELS = 10
MAX_LABEL_LENGTH = 255


class Webhook(Model):
    """A Jira admin webhook that calls the platform back (matched by name in Jira)."""

    url: str
    """The platform's callback URL (https; http only on loopback)."""
    events: list[WebhookEvent] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    """The Jira events that trigger the webhook."""
    jql: str | None = None
    """JQL filter for issue events; default: project = <project>."""
    name: str | None = None
    """The webhook's name in Jira; default: reconciler <integration name>."""
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_base_url(v)


class Integration(Item):
    """A platform program wired to a tracker project."""

    name: Name
    """Unique name; used in addresses (jira.<connection>.integration["<name>"])."""
    program: str = Field(min_length=1)
    """The platform program whose findings go to the project (several integrations may share one)."""
    connection: Name
    """The connection (under connections:) that reaches the tracker."""
    project: str
    """The project: a Jira project key (SEC: upper-case letters, digits and _) or a Redmine project
    identifier (appsec-findings: lower-case letters, digits, - and _)."""
    issue_type: str = Field(min_length=1)
    """The issue type created for a finding (by name, as the project lists it)."""
    trigger: Trigger = "manual"
    """When an issue is created: manual, or automatically on a submission event."""
    labels: list[str] = Field(default_factory=list)
    """Up to 10 static labels put on every issue; Jira labels cannot contain spaces."""
    priorities: dict[Severity, str] = Field(default_factory=dict)
    """Submission severity -> issue priority (by name)."""
    statuses: dict[SubmissionStatus, str] = Field(default_factory=dict)
    """Submission status -> issue status (by name, a status of the project's workflows)."""
    resolutions: dict[ClosedReason, str] = Field(default_factory=dict)
    """Submission closed reason -> issue resolution (by name)."""
    template: list[TemplateSection] = Field(default_factory=lambda: list(DEFAULT_TEMPLATE))
    """Sections of the default submission template put in the description ([] for none)."""
    comments: list[MessageType] = Field(default_factory=list)
    """Message types that become issue comments: researcher, triage, company, events."""
    test_issue: bool = True
    """Create an activation test issue once, when the integration is first applied."""
    delete_test_issue: bool = False
    """Delete the activation test issue after it was created (needs the Delete issues permission)."""
    team_roles: dict[str, str] = Field(default_factory=dict)
    """Team name -> project role name: the team's members get that role in the project."""
    role_membership: Literal["additive", "authoritative"] = "additive"
    """additive: add team members to the roles, leave other actors alone; authoritative: the teams'
    members are exactly the users in each granted role (other users are removed)."""
    webhook: Webhook | None = None
    """An admin webhook back to the platform."""

    @field_validator("project")
    @classmethod
    def _project(cls, v: str, info: ValidationInfo) -> str:
        types = (info.context or {}).get("connection_types", {})
        if types.get(info.data.get("connection")) == "redmine":
            if not _REDMINE_IDENTIFIER.match(v):
                raise ValueError(f"'{v}' is not a Redmine project identifier; an identifier is a lower-case "
                                 "letter followed by lower-case letters, digits, - or _ (e.g. appsec-findings)")
            return v
        if not _PROJECT_KEY.match(v):
            raise ValueError(f"'{v}' is not a Jira project key; a key is an upper-case letter followed by "
                             "upper-case letters, digits or _ (e.g. SEC)")
        return v

    @property
    def key(self) -> str:
        return self.name

    @property
    def property_key(self) -> str:
        """The project property holding this integration's resolved settings."""
        return f"reconciler.integration.{self.name}"

    def webhook_name(self) -> str | None:
        if self.webhook is None:
            return None
        return self.webhook.name or f"reconciler {self.name}"


__all__ = [
    "Connection", "Integration", "JiraCloudConnection", "JiraConnection", "JiraDataCenterConnection",
    "RedmineConnection", "Webhook", "MAX_LABELS",
]
