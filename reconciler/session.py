"""A Session connects the configured providers once, makes the Plan, and hands it to apply.

Reading live state is the only I/O planning does; turning desired and live
state into changes is pure (``providers.scim.plan_provider``).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from reconciler.config.loader import did_you_mean
from reconciler.config.models import Config, ScimProvider
from reconciler.errors import PlanError
from reconciler.plan.model import AttributeChange, Change, Plan
from reconciler.plan.safety import check_removals
from reconciler.providers import scim
from reconciler.providers._http import Recorder


class Planner(Protocol):
    """A live system other than SCIM (a tracker) that takes part in plan, apply and check.

    A module listed in PLANNER_MODULES exposes ``planner``, an object of this shape.
    Its changes carry addresses that start with ``prefix`` (e.g. ``jira.``).
    """

    prefix: str

    def plan(self, session: Session) -> ProviderPlanLike: ...

    def apply(self, session: Session, changes: list[Change], observer: Callable[[Any], None] | None) \
            -> list[Any]: ...

    def check(self, session: Session) -> list[CheckResult]: ...


class ProviderPlanLike(Protocol):
    changes: list[Change]
    notes: list[str]
    protected: list[str]


# Tracker planners, imported when a session plans; each module exposes `planner`.
PLANNER_MODULES: list[str] = ["reconciler.providers.redmine", "reconciler.providers.jira"]


def planners() -> list[Planner]:
    import importlib
    return [importlib.import_module(m).planner for m in PLANNER_MODULES]


@dataclass
class CheckResult:
    provider: str
    ok: bool
    steps: list[tuple[str, bool, str]] = field(default_factory=list)


class Session:
    """Connections to every provider of one config. ``transports`` injects a server per provider name
    (the embedded sandbox, tests); ``recorder`` sees every HTTP call (audit log, benchmarks)."""

    def __init__(self, config: Config, *, transports: Mapping[str, httpx.BaseTransport] | None = None,
                 recorder: Recorder | None = None, sleep: Callable[[float], None] | None = None,
                 attempts: int = 5) -> None:
        self.config = config
        self.transports = transports or {}
        self.recorder = recorder
        self.sleep = sleep
        self.attempts = attempts
        self._clients: dict[str, scim.ScimClient] = {}
        self.live: dict[str, scim.LiveState] = {}
        # Clients tracker planners open (by planner-chosen key); closed with the session.
        self.tracker_clients: dict[str, Any] = {}
        # What the current plan() was asked for, for planners that apply the same guards.
        self.allow_removals: int | None = None
        self.targets: list[str] | None = None
        self.base_dir = config.root if Path(config.root).is_dir() else str(Path(config.root).parent)

    def client(self, name: str) -> scim.ScimClient:
        if name not in self._clients:
            p = self.config.provider(name)
            self._clients[name] = scim.connect(p, transport=self.transports.get(name), recorder=self.recorder,
                                               base_dir=self.base_dir, sleep=self.sleep, attempts=self.attempts)
        return self._clients[name]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        for t in self.tracker_clients.values():
            t.close()
        self.tracker_clients.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- plan --------------------------------------------------------------

    def plan(self, *, targets: list[str] | None = None, allow_removals: int | None = None) -> Plan:
        self._require_systems()
        self.allow_removals, self.targets = allow_removals, targets
        changes: list[Change] = []
        notes: list[str] = []
        protected: list[str] = []
        for p in self.config.providers:
            pp = self.plan_provider(p)
            changes += pp.changes
            notes += pp.notes
            protected += pp.protected
            if not targets:
                check_removals(p.name, pp.changes, pp.managed, p.max_removals, p.max_removal_percent,
                               allow_removals)
        for planner in planners():
            tp = planner.plan(self)
            changes += tp.changes
            notes += tp.notes
            protected += tp.protected
        if targets:
            changes = select_targets(changes, targets, self.config)
        plan = Plan(changes=changes, notes=notes, config_digest=self.config.digest, commit=git_commit(
            self.config.root), protected=sorted(protected))
        return plan

    def plan_provider(self, p: ScimProvider) -> scim.ProviderPlan:
        client = self.client(p.name)
        caps = client.discover()
        live = client.read()
        self.live[p.name] = live
        needs_schemas = p.team_schema is not None
        schemas = client.schemas() if needs_schemas else None
        return scim.plan_provider(self.config, p, live, caps, schemas)

    def _require_systems(self) -> None:
        if not self.config.providers and not getattr(self.config, "connections", None):
            raise PlanError("the config declares no providers; add one under 'providers:' (or a tracker "
                            "under 'connections:')")

    def check(self) -> list[CheckResult]:
        from reconciler.providers.check import check_provider
        self._require_systems()
        out = [check_provider(p, self) for p in self.config.providers]
        for planner in planners():
            out += planner.check(self)
        return out


_ADDRESS = re.compile(r'^scim\.(?P<provider>[^.]+)\.(?P<kind>user|group)\["(?P<key>.+)"\]$')


def parse_address(a: str) -> tuple[str, str, str]:
    m = _ADDRESS.match(a)
    if not m:
        raise PlanError(f"--target {a!r} is not an address; write scim.<provider>.user[\"email\"], "
                        "scim.<provider>.group[\"name\"], or a tracker address as the plan shows it "
                        "(jira.<connection>.…, redmine.<connection>.…)")
    return m.group("provider"), m.group("kind"), m.group("key")


def select_targets(changes: list[Change], targets: list[str], config: Config) -> list[Change]:
    """The targeted changes and what they need: a targeted member brings its team memberships (and a
    team it joins that does not exist yet); a targeted team brings the members it adds that do not
    exist yet. Other changes to those teams are left out."""
    wanted: dict[str, Change] = {}
    by_addr = {c.address: c for c in changes}
    known = {p.name for p in config.providers}
    tracker_prefixes = tuple(pl.prefix for pl in planners())
    for t in targets:
        if tracker_prefixes and t.startswith(tracker_prefixes):
            # a tracker address: that object, or with a shorter address (jira.<connection>) all under it
            hits = [c for c in changes if c.address == t or c.address.startswith(t.rstrip(".") + ".")
                    or c.address.startswith(t + "[")]
            connections = {getattr(x, "name", "") for x in getattr(config, "connections", [])}
            conn = t.split(".")[1].split("[")[0] if "." in t else ""
            if conn not in connections:
                raise PlanError(f"--target {t}: unknown connection '{conn}'"
                                + did_you_mean(conn, connections))
            for c in hits:
                wanted[c.address] = c
            continue
        provider, kind, key = parse_address(t)
        if provider not in known:
            raise PlanError(f"--target {t}: unknown provider '{provider}'" + did_you_mean(provider, known))
        key_l = key.lower() if kind == "user" else key
        if kind == "user" and key_l not in {m.key for m in config.members}:
            if t not in by_addr:
                raise PlanError(f"--target {t}: no member '{key}' in the config")
        if kind == "group" and key not in {x.name for x in config.teams}:
            if t not in by_addr:
                raise PlanError(f"--target {t}: no team '{key}' in the config")
        addr = scim.address(provider, kind, key_l)
        if addr in by_addr:
            wanted[addr] = by_addr[addr]
        if kind == "user":
            for c in changes:
                if c.provider == provider and c.kind == "group" and c.after is not None:
                    part = _membership_only(c, key_l)
                    if part is not None:
                        wanted[c.address] = part
            mgr = wanted.get(addr)
            if mgr and mgr.after and mgr.after.get("enterprise:manager"):
                m_addr = scim.address(provider, "user", mgr.after["enterprise:manager"])
                if m_addr in by_addr and by_addr[m_addr].action.value == "create":
                    wanted[m_addr] = by_addr[m_addr]
        else:
            group = by_addr.get(addr)
            if group is not None and group.after is not None:
                for e in group.after.get("members", []):
                    u = by_addr.get(scim.address(provider, "user", e))
                    if u is not None and u.action.value == "create":
                        wanted[u.address] = u
    return list(wanted.values())


def _membership_only(c: Change, email: str) -> Change | None:
    """The part of a group change that concerns one member, or None."""
    after_members = c.after.get("members", []) if c.after else []
    before_members = c.before.get("members", []) if c.before else []
    if c.action.value == "create":
        if email not in after_members:
            return None
        after = dict(c.after or {}, members=[email])
        return Change(c.provider, c.kind, c.key, c.action, c.address, after=after, refs=c.refs, notes=c.notes)
    if (email in after_members) == (email in before_members):
        return None
    new_members = sorted(set(before_members) ^ {email})
    before = dict(c.before or {})
    after = dict(before, members=new_members)
    return Change(c.provider, c.kind, c.key, c.action, c.address, before=before, after=after,
                  diff=[AttributeChange("members", before_members, new_members)], id=c.id,
                  precondition=c.precondition, refs=c.refs)


def git_commit(path: str) -> str | None:
    """The commit of the repository holding the config, if any (and GITHUB_SHA in Actions)."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(["git", "-C", str(Path(path).resolve() if Path(path).is_dir() else
                                               Path(path).resolve().parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
