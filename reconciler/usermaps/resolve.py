"""The lookup API: which identity a member has in a system, and why.

Tracker providers call ``resolve_identity`` to translate a member into an
account (falling back to the most specific fallback user), ``identities_for``
to list a member's identities, and ``mapped_identities`` to check every mapped
identity against the live tracker at plan time.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from reconciler.usermaps.models import FallbackUser, UserMap

if TYPE_CHECKING:
    from reconciler.config.models import Config, Member

Source = Literal["mapped", "fallback"]

# Connection types whose identities have a known shape (see reconciler.usermaps.checks).
TRACKER_TYPES = ("jira-cloud", "jira-datacenter", "redmine")


@dataclass(frozen=True)
class Resolution:
    """The identity a member gets in a system, and which rule decided it.

    ``identity`` is None when the member is unmapped and no fallback rule matches.
    ``member_active`` is False for members declared with active: false (their
    maps are kept for history) and for emails the config does not declare.
    """

    identity: str | None
    source: Source | None
    rule: str
    member_active: bool


@dataclass
class _Index:
    members: dict[str, Member] = field(default_factory=dict)
    maps: dict[str, UserMap] = field(default_factory=dict)
    # system -> identity (case-folded) -> member key
    claims: dict[str, dict[str, str]] = field(default_factory=dict)
    fallbacks: dict[str, list[FallbackUser]] = field(default_factory=dict)


_cache: weakref.WeakKeyDictionary[Any, _Index] = weakref.WeakKeyDictionary()


def user_maps(config: Config) -> list[UserMap]:
    return list(config.user_maps)


def fallback_users(config: Config) -> list[FallbackUser]:
    return list(config.fallback_users)


def connections(config: Config) -> list[Any]:
    return list(config.connections)


def system_type(config: Config, system: str) -> str | None:
    """The connection type of ``system`` (jira-cloud, jira-datacenter, redmine), None for free-form systems."""
    for c in connections(config):
        if getattr(c, "name", None) == system:
            return str(getattr(c, "type", "")) or None
    return None


def _index(config: Config) -> _Index:
    # A loaded Config is not changed afterwards, so the index is built once per Config.
    try:
        return _cache[config]
    except (KeyError, TypeError):
        pass
    ix = _Index()
    for m in config.members:
        ix.members.setdefault(m.key, m)
    for um in user_maps(config):
        ix.maps.setdefault(um.key, um)
        for system in um.identities:
            claims = ix.claims.setdefault(system, {})
            for ident in um.ids(system):
                claims.setdefault(ident.casefold(), um.key)
    for fb in fallback_users(config):
        ix.fallbacks.setdefault(fb.system, []).append(fb)
    try:
        _cache[config] = ix
    except TypeError:
        pass
    return ix


def identities_for(config: Config, member_email: str, system: str) -> list[str]:
    """The member's identities in ``system``, in declared order; empty when unmapped."""
    um = _index(config).maps.get(member_email.lower())
    return um.ids(system) if um is not None else []


def mapped_identities(config: Config, system: str) -> dict[str, str]:
    """Every identity mapped in ``system`` -> the member email that claims it (declared spelling)."""
    out: dict[str, str] = {}
    for um in user_maps(config):
        for ident in um.ids(system):
            out.setdefault(ident, um.member)
    return out


def matching_fallback(config: Config, system: str, *, project: str | None = None,
                      issue_type: str | None = None, field: str | None = None) -> FallbackUser | None:
    """The most specific fallback rule for this system that matches the scope, or None.

    A rule matches when every scope it names (project, issue type, field) equals the
    one asked for (case-insensitively); a scope the rule leaves out matches anything.
    Among matching rules the winner has the highest specificity, compared as
    (names a field, names an issue type, names a project): field > issue type >
    project > general. Two matching rules with equal specificity would have the same
    scope, which the config check refuses, so there is never a tie.
    """
    want = tuple(None if v is None else v.casefold() for v in (project, issue_type, field))
    best: FallbackUser | None = None
    for fb in _index(config).fallbacks.get(system, []):
        if all(s is None or s == w for s, w in zip(fb.scope, want, strict=True)):
            if best is None or fb.specificity > best.specificity:
                best = fb
    return best


def resolve_identity(config: Config, member_email: str, system: str, *, project: str | None = None,
                     issue_type: str | None = None, field: str | None = None) -> Resolution:
    """The identity ``member_email`` has in ``system``: their first mapped identity, else the identity
    of the most specific matching fallback user (see ``matching_fallback``), else none."""
    ix = _index(config)
    key = member_email.lower()
    member = ix.members.get(key)
    active = bool(member is not None and member.active)
    um = ix.maps.get(key)
    if um is not None and um.ids(system):
        f, line, col = um.where(um.field_path(system, 0))
        return Resolution(um.ids(system)[0], "mapped", f"user map of {um.member} at {f}:{line}:{col}", active)
    fb = matching_fallback(config, system, project=project, issue_type=issue_type, field=field)
    why = ("not a declared member" if member is None else f"{member.email} has no identity in {system}")
    if fb is not None:
        ids = identities_for(config, fb.member, system)
        if ids:
            f, line, col = fb.where()
            return Resolution(ids[0], "fallback", f"{why}; {fb.describe()}: {fb.member} at {f}:{line}:{col}",
                              active)
    return Resolution(None, None, f"{why} and no fallback user matches", active)
