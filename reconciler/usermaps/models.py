"""Desired-state models for user maps (``user_maps:``) and fallback users (``fallback_users:``).

A user map joins one member's identities in other systems; a fallback user
stands in when a member has no identity in a system. Models hold no I/O; the
cross-file checks live in ``reconciler.usermaps.checks``.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from reconciler.config.base import Item, Name, check_email


class UserMap(Item):
    """One member's identities in other systems (Jira account ID, Jenkins user, Azure DevOps name ...)."""

    member: str
    """The member's email, as declared under members:."""
    identities: dict[Name, str | list[str]]
    """Identities by system: a tracker connection name from connections:, or a free-form system name
    (jenkins, azure-devops, octane, alm). One identity or a list; the first one is used for assignment."""
    label: str | None = None
    """The user map's name in OpenText Connect (kept for import and export); default: the member's email."""

    @field_validator("member")
    @classmethod
    def _email(cls, v: str) -> str:
        return check_email(v)

    @field_validator("identities")
    @classmethod
    def _non_empty(cls, v: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        if not v:
            raise ValueError("lists no system; give at least one identity")
        for system, ids in v.items():
            values = [ids] if isinstance(ids, str) else ids
            if not values:
                raise ValueError(f"system '{system}' lists no identity")
            for ident in values:
                if not ident.strip():
                    raise ValueError(f"system '{system}' has an empty identity")
                if ident != ident.strip():
                    raise ValueError(f"identity '{ident}' in system '{system}' has leading or trailing spaces")
        return v

    @property
    def key(self) -> str:
        return self.member.lower()

    def ids(self, system: str) -> list[str]:
        """This member's identities in ``system``, in declared order (empty when unmapped)."""
        value = self.identities.get(system)
        if value is None:
            return []
        return [value] if isinstance(value, str) else list(value)

    def field_path(self, system: str, index: int) -> str:
        """The origin key of one identity, for located diagnostics."""
        return f"identities.{system}" if isinstance(self.identities.get(system), str) \
            else f"identities.{system}[{index}]"


class FallbackUser(Item):
    """Who stands in when a member has no identity in a system.

    General (only ``system``), or scoped by project, issue type and field. The
    most specific rule that matches wins: a rule naming a field beats one naming
    an issue type, which beats one naming a project, which beats a general rule.
    """

    system: Name
    """The system (tracker connection name or free-form system name) this rule applies to."""
    member: str
    """The member who stands in; must be mapped in this system."""
    project: str | None = Field(default=None, min_length=1)
    """Only for this project (Jira project key, Redmine project identifier)."""
    issue_type: str | None = Field(default=None, min_length=1)
    """Only for this issue type (Jira issue type name, Redmine tracker)."""
    field: str | None = Field(default=None, min_length=1)
    """Only for this user field (assignee, reporter, a custom user field ...)."""

    @field_validator("member")
    @classmethod
    def _email(cls, v: str) -> str:
        return check_email(v)

    @property
    def scope(self) -> tuple[str | None, str | None, str | None]:
        """(project, issue type, field), case-folded; None is a wildcard."""
        return (_fold(self.project), _fold(self.issue_type), _fold(self.field))

    @property
    def specificity(self) -> tuple[bool, bool, bool]:
        """Compared as a tuple: field first, then issue type, then project."""
        return (self.field is not None, self.issue_type is not None, self.project is not None)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("project", self.project), ("issue_type", self.issue_type),
                                          ("field", self.field)) if v is not None]
        scope = ", ".join(parts) if parts else "general"
        return f"fallback user for {self.system} ({scope})"


def _fold(value: str | None) -> str | None:
    return None if value is None else value.casefold()
