"""Cross-file checks for connections and integrations, registered in ``reconciler.config.checks.CHECKS``.

Each problem points at the YAML (file:line:col), says what is wrong and the valid choices.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.config.base import Item
from reconciler.config.checks import CHECKS, did_you_mean
from reconciler.config.models import Config
from reconciler.errors import Diagnostic
from reconciler.integrations.models import MAX_LABEL_LENGTH, MAX_LABELS, Integration

_WHITESPACE = re.compile(r"\s")


def connections(config: Config) -> list[Any]:
    return list(config.connections)


def integrations(config: Config) -> list[Integration]:
    return list(config.integrations)


def _diag(item: Item, field: str | None, message: str, *, key: bool = False,
          refers: tuple[str, str] | None = None) -> Diagnostic:
    file, line, col = item.where(field, key=key)
    return Diagnostic(file, line, col, message, refers)


def check_integrations(config: Config) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    conns = connections(config)
    seen: dict[str, Item] = {}
    for c in conns:
        if c.name in seen:
            f, line, col = seen[c.name].where("name")
            out.append(_diag(c, "name", f"connection '{c.name}' is declared twice; first at {f}:{line}:{col}"))
        seen[c.name] = c
    by_name = {c.name: c for c in conns}
    for p in config.providers:  # one namespace: the audit log and apply name a system by it alone
        if p.name in by_name:
            f, line, col = p.where("name")
            out.append(_diag(by_name[p.name], "name", f"connection '{p.name}' has the name of the SCIM provider "
                                                      f"declared at {f}:{line}:{col}; give one another name"))
    teams = {t.name for t in config.teams}
    first: dict[str, Integration] = {}
    webhook_names: dict[tuple[str, str], Integration] = {}
    for i in integrations(config):
        if i.name in first:
            f, line, col = first[i.name].where("name")
            out.append(_diag(i, "name", f"integration '{i.name}' is declared twice; first at {f}:{line}:{col}"))
        first.setdefault(i.name, i)
        if i.connection not in by_name:
            hint = did_you_mean(i.connection, by_name) if by_name else "; declare it under 'connections:'"
            out.append(_diag(i, "connection", f"integration '{i.name}' names unknown connection "
                                              f"'{i.connection}'{hint}", refers=("connections", i.connection)))
        out += _check_labels(i)
        for team in i.team_roles:
            if team not in teams:
                hint = did_you_mean(team, teams) if teams else "; no teams are declared"
                out.append(_diag(i, f"team_roles.{team}", f"integration '{i.name}' grants a role to unknown "
                                                         f"team '{team}'{hint}", key=True, refers=("teams", team)))
        for team, role in i.team_roles.items():
            if not role.strip():
                out.append(_diag(i, f"team_roles.{team}", f"integration '{i.name}': the role for team "
                                                         f"'{team}' is empty"))
        if i.delete_test_issue and not i.test_issue:
            out.append(_diag(i, "delete_test_issue", f"integration '{i.name}': delete_test_issue needs "
                                                     "test_issue: true"))
        wn = i.webhook_name()
        if wn is not None:
            other = webhook_names.get((i.connection, wn))
            if other is not None:
                out.append(_diag(i, "webhook", f"integration '{i.name}' declares webhook '{wn}', which "
                                               f"integration '{other.name}' already declares on connection "
                                               f"'{i.connection}'; give one a different webhook.name"))
            webhook_names[(i.connection, wn)] = i
    out += _check_role_modes(integrations(config))
    out += _check_connection_kinds(config, by_name, teams)
    return out


def _check_connection_kinds(config: Config, by_name: dict[str, Any], teams: set[str]) -> list[Diagnostic]:
    """What a kind of connection declares it cannot hold (``UNSUPPORTED`` on its model: Redmine has no
    resolutions and no webhooks), and the teams a connection converges (``teams:``) being declared."""
    out: list[Diagnostic] = []
    for c in by_name.values():
        for n, name in enumerate(getattr(c, "teams", None) or []):
            if name not in teams:
                out.append(_diag(c, f"teams[{n}]", f"connection '{c.name}' lists unknown team '{name}'"
                                 + did_you_mean(name, teams), refers=("teams", name)))
    for i in integrations(config):
        unsupported: dict[str, str] = getattr(by_name.get(i.connection), "UNSUPPORTED", {})
        for key, why in unsupported.items():
            if getattr(i, key, None):
                out.append(_diag(i, key, f"integration '{i.name}': {why}", key=True))
    return out


def _check_labels(i: Integration) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if len(i.labels) > MAX_LABELS:
        out.append(_diag(i, "labels", f"integration '{i.name}' has {len(i.labels)} labels; at most "
                                      f"{MAX_LABELS} are allowed"))
    seen: set[str] = set()
    for n, label in enumerate(i.labels):
        field = f"labels[{n}]"
        if not label:
            out.append(_diag(i, field, f"integration '{i.name}': label {n + 1} is empty"))
        elif _WHITESPACE.search(label):
            fixed = _WHITESPACE.sub("-", label.strip())
            out.append(_diag(i, field, f"integration '{i.name}': label '{label}' contains a space; Jira labels "
                                       f"cannot contain spaces (write '{fixed}')"))
        elif len(label) > MAX_LABEL_LENGTH:
            out.append(_diag(i, field, f"integration '{i.name}': label '{label[:20]}...' is longer than "
                                       f"{MAX_LABEL_LENGTH} characters"))
        if label in seen:
            out.append(_diag(i, field, f"integration '{i.name}': label '{label}' is listed twice"))
        seen.add(label)
    return out


def _check_role_modes(items: list[Integration]) -> list[Diagnostic]:
    """An authoritative role cannot also be granted additively by another integration on the same project:
    the two would fight over the same actors."""
    modes: dict[tuple[str, str, str], Integration] = {}
    out: list[Diagnostic] = []
    for i in items:
        for team, role in i.team_roles.items():
            k = (i.connection, i.project, role)
            other = modes.get(k)
            if other is not None and other.role_membership != i.role_membership:
                out.append(_diag(i, f"team_roles.{team}", f"integration '{i.name}' manages role '{role}' of "
                                                         f"project {i.project} as {i.role_membership}, but "
                                                         f"integration '{other.name}' manages it as "
                                                         f"{other.role_membership}; use the same "
                                                         "role_membership for both", key=True))
            modes.setdefault(k, i)
    return out


if check_integrations not in CHECKS:
    CHECKS.append(check_integrations)
