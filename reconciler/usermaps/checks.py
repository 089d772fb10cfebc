"""Cross-file checks of user maps and fallback users, registered in ``reconciler.config.checks.CHECKS``.

A (system, identity) pair belongs to one member only; every member named must
exist; identities have the shape their system expects; a fallback user must be
mapped in its system, and no two fallback rules share a scope.
"""

from __future__ import annotations

import re

from reconciler.config.base import Item
from reconciler.config.checks import CHECKS, did_you_mean
from reconciler.config.models import Config
from reconciler.errors import Diagnostic
from reconciler.usermaps.models import FallbackUser, UserMap
from reconciler.usermaps.resolve import connections, fallback_users, system_type, user_maps

# Atlassian account IDs are opaque: 24 hex digits (older accounts) or <number>:<uuid>, at most 128 characters.
JIRA_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_-]{0,127}$")
# Redmine's own rule for logins (User::LOGIN_LENGTH_LIMIT and the login format validation).
REDMINE_LOGIN = re.compile(r"^[A-Za-z0-9_\-@.]{1,60}$")
_EMAILISH = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_IDENTITY = 255


def identity_problem(kind: str | None, identity: str) -> str | None:
    """Why ``identity`` cannot be an identity in a system of this connection type, or None if it can."""
    if _CONTROL.search(identity):
        return "contains control characters"
    if len(identity) > MAX_IDENTITY:
        return f"is {len(identity)} characters long; at most {MAX_IDENTITY} are allowed"
    if kind == "jira-cloud":
        if _EMAILISH.match(identity):
            return ("is an email address; Jira Cloud identifies people by account ID (for example "
                    "5b10ac8d82e05b22cc7d4ef5 or 712020:2c5a8a9e-...), not by email; "
                    "'reconciler usermaps resolve' looks account IDs up by email")
        if not JIRA_ACCOUNT_ID.match(identity):
            return ("is not a Jira Cloud account ID (letters, digits, ':', '_' and '-', for example "
                    "5b10ac8d82e05b22cc7d4ef5 or 712020:2c5a8a9e-...)")
    elif kind == "redmine":
        if not REDMINE_LOGIN.match(identity):
            return "is not a Redmine login (letters, digits, '_', '-', '@' and '.', at most 60 characters)"
    return None


def misspelt_connection(config: Config, system: str) -> str | None:
    """The connection a free-form ``system`` name is a typo of ('acme-clod' for 'acme-cloud'), else None.

    A misspelt connection name would silently be a free-form system: the tracker would never see
    those identities and every issue would go to a fallback user. A typo is one letter dropped, added,
    changed or two swapped (two in names of 10 or more letters; names under 4 letters are too short to
    tell): 'acme-ci' beside 'acme-dc' is a different system, not a typo."""
    names = [str(getattr(c, "name", "")) for c in connections(config)]
    if system in names:
        return None
    for name in names:
        if len(name) >= 4 and _edits(system, name) <= (2 if len(name) >= 10 else 1):
            return name
    return None


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    if abs(len(a) - len(b)) > 2:
        return 3
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _misspelt(config: Config, where: tuple[str, int, int], system: str) -> Diagnostic | None:
    near = misspelt_connection(config, system)
    if near is None:
        return None
    return Diagnostic(*where, f"system '{system}' is not a connection; did you mean '{near}'? (a free-form "
                              "system name this close to a connection's name is taken for a typo)",
                      ("connections", system))


def _diag(item: Item, field: str | None, message: str, refers: tuple[str, str] | None = None) -> Diagnostic:
    f, line, col = item.where(field)
    return Diagnostic(f, line, col, message, refers)


def check_user_maps(config: Config) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    members = {m.key: m for m in config.members}
    first_map: dict[str, UserMap] = {}
    # (system, identity case-folded) -> (map, origin key) of the first claim
    claims: dict[tuple[str, str], tuple[UserMap, str]] = {}
    for um in user_maps(config):
        if um.key not in members:
            out.append(_diag(um, "member", f"user map names unknown member '{um.member}'"
                             + did_you_mean(um.key, members), ("members", um.member)))
        if um.key in first_map:
            out.append(_diag(um, "member", f"member '{um.member}' has a second user map; the first is at "
                             f"{first_map[um.key].locate('member')} (list all identities in one map)"))
        else:
            first_map[um.key] = um
        for system in um.identities:
            d = _misspelt(config, um.where(f"identities.{system}", key=True), system)
            if d is not None:
                out.append(d)
            kind = system_type(config, system)
            for i, ident in enumerate(um.ids(system)):
                where = um.field_path(system, i)
                problem = identity_problem(kind, ident)
                if problem:
                    label = kind or system
                    out.append(_diag(um, where, f"{label} identity '{ident}' of '{um.member}' {problem}"))
                claim = (system, ident.casefold())
                if claim in claims:
                    other, other_where = claims[claim]
                    if other is um:
                        out.append(_diag(um, where, f"'{um.member}' lists {system} identity '{ident}' twice; "
                                                    f"first at {other.locate(other_where)}"))
                    else:
                        out.append(_diag(um, where, f"{system} identity '{ident}' is claimed by '{um.member}' "
                                                    f"here and by '{other.member}' at {other.locate(other_where)}; "
                                                    "an identity belongs to one member only"))
                else:
                    claims[claim] = (um, where)
    return out


def check_fallback_users(config: Config) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    members = {m.key: m for m in config.members}
    maps = {um.key: um for um in user_maps(config)}
    scopes: dict[tuple[str, tuple[str | None, str | None, str | None]], FallbackUser] = {}
    for fb in fallback_users(config):
        d = _misspelt(config, fb.where("system"), fb.system)
        if d is not None:
            out.append(d)
        key = fb.member.lower()
        if key not in members:
            out.append(_diag(fb, "member", f"fallback user names unknown member '{fb.member}'"
                             + did_you_mean(key, members), ("members", fb.member)))
        elif not (maps.get(key) and maps[key].ids(fb.system)):
            systems = sorted(maps[key].identities) if key in maps else []
            mapped = f"; '{fb.member}' is mapped in: {', '.join(systems)}" if systems else \
                f"; '{fb.member}' has no user map"
            out.append(_diag(fb, "member", f"fallback user '{fb.member}' has no identity in {fb.system}; "
                                           f"a fallback user must itself be mapped there{mapped}",
                             ("user_maps", fb.member)))
        scope = (fb.system, fb.scope)
        if scope in scopes:
            out.append(_diag(fb, None, f"{fb.describe()} is declared twice; first at {scopes[scope].locate()} "
                                       "(the most specific rule wins, so two rules may not share a scope)"))
        else:
            scopes[scope] = fb
        if fb.member.lower() in members and not members[fb.member.lower()].active:
            out.append(_diag(fb, "member", f"fallback user '{fb.member}' is deactivated (active: false); "
                                           "choose an active member"))
    return out


CHECKS.extend([check_user_maps, check_fallback_users])
