"""The desired-config half of the tracker lifecycle machines (Jira and Redmine).

``ConfigModel`` is what the config says: members (a fixed pool, each with a tracker identity that a
user map may or may not give), teams and their members, and integrations (project, team -> role
grants, role_membership, webhook). ``TrackerMachine`` holds the rules that edit it; each tracker's
machine adds the rules that drift its tracker by hand, the rule that runs plan + apply in process
(a fresh ``Session`` per plan and per apply), and the invariants checked after every apply.

Every edit keeps the config loadable: an edit that would make two integrations manage one project
role with different ``role_membership`` (a config error, docs/jira.md) is skipped.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.plan.model import Plan
from reconciler.session import Session

MODES = ("additive", "authoritative")
INTEGRATIONS = ("web", "api", "mobile")


# A longer run than CI's (LIFECYCLE_EXAMPLES / LIFECYCLE_STEPS set) has no pytest timeout: it takes minutes.
LONG_RUN = bool(os.environ.get("LIFECYCLE_EXAMPLES") or os.environ.get("LIFECYCLE_STEPS"))


def budget(examples: int, steps: int) -> settings:
    """The CI budget: ``examples`` derandomized sequences (the same ones on every run) of up to ``steps``
    steps, not shrunk (a failure prints its steps and the machine's own log of them; shrinking a tracker
    sequence takes minutes). LIFECYCLE_EXAMPLES / LIFECYCLE_STEPS override the budget for a longer run,
    which draws random sequences instead (pytest's ``--hypothesis-seed=N`` repeats one) and shrinks a
    failure; LIFECYCLE_SHRINK=1 or 0 turns shrinking on or off either way."""
    n = os.environ.get("LIFECYCLE_EXAMPLES")
    k = os.environ.get("LIFECYCLE_STEPS")
    shrink = os.environ.get("LIFECYCLE_SHRINK", "1" if (n or k) else "0") == "1"
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=int(n or examples), stateful_step_count=int(k or steps), deadline=None,
                    derandomize=not (n or k), database=None, print_blob=True, phases=phases,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


_TLS = ssl.create_default_context()


def transport() -> httpx.HTTPTransport:
    """A plain socket transport sharing one TLS context: loading the CA bundle for every client of every
    Session would be a third of the run (the trackers here are plain http on loopback anyway)."""
    return httpx.HTTPTransport(verify=_TLS)


def run_apply(folder: Path, cfg: dict[str, Any]) -> tuple[Plan, Any, Plan]:
    """Write ``cfg`` to folder/config.yaml; plan + apply in process (a fresh Session each), then plan
    again: (applied plan, apply result, next plan)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(json.dumps(cfg, indent=1))
    config = load_config(folder)
    with Session(config, transports={"tracker": transport(), "redmine.tracker": transport()}) as s:
        plan = s.plan()
        result = apply_plan(s, plan)
    with Session(config, transports={"tracker": transport(), "redmine.tracker": transport()}) as s:
        again = s.plan()
    return plan, result, again


def plan_apply_plan(folder: Path, cfg: dict[str, Any]) -> Plan:
    """run_apply, asserting that apply failed nothing and that the next plan has no changes."""
    plan, result, again = run_apply(folder, cfg)
    assert not result.failures, result.failures
    assert not again.has_changes, [(c.address, c.diff) for c in again.changes]
    return plan


@dataclass
class IntegrationModel:
    project: str
    team_roles: dict[str, str] = field(default_factory=dict)
    mode: str = "additive"
    webhook: bool = False


@dataclass
class ConfigModel:
    members: list[str]  # emails, in pool order
    teams: dict[str, set[str]]
    mapped: set[str]  # members whose user map gives them an identity on the tracker
    inactive: set[str] = field(default_factory=set)
    integrations: dict[str, IntegrationModel] = field(default_factory=dict)

    def valid(self) -> bool:
        modes: dict[tuple[str, str], str] = {}
        for i in self.integrations.values():
            for role in i.team_roles.values():
                if modes.setdefault((i.project, role), i.mode) != i.mode:
                    return False
        return True

    def wanted_members(self, team: str) -> set[str]:
        """The team's active members that the tracker can know (mapped)."""
        return {e for e in self.teams[team] if e in self.mapped and e not in self.inactive}


class TrackerMachine(RuleBasedStateMachine):
    """Config-editing rules shared by the Jira and Redmine machines. Subclasses set PROJECTS, ROLES and
    the identity of each member, and implement ``connection()``, ``integration_extra()`` and the apply."""

    PROJECTS: tuple[str, ...] = ()
    ROLES: tuple[str, ...] = ()
    MEMBERS: tuple[str, ...] = ("alice@acme.io", "bob@acme.io", "carol@acme.io", "dave@acme.io", "erin@acme.io")
    TEAMS: tuple[str, ...] = ("appsec", "leads", "ops")

    def __init__(self) -> None:
        super().__init__()
        self.cfg = ConfigModel(
            members=list(self.MEMBERS),
            teams={"appsec": {"alice@acme.io", "bob@acme.io"}, "leads": {"carol@acme.io"},
                   "ops": {"dave@acme.io"}},
            mapped=set(self.MEMBERS) - {"erin@acme.io"})
        self.tmp = Path(tempfile.mkdtemp(prefix="lifecycle-"))
        self.applies = 0
        self.log: list[str] = []  # what the sequence did, for failure messages

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- the config on disk ---------------------------------------------------

    def connection(self) -> dict[str, Any]:
        raise NotImplementedError

    def integration_extra(self) -> dict[str, Any]:
        return {}

    def identity(self, email: str) -> str:
        raise NotImplementedError

    def config_dict(self) -> dict[str, Any]:
        conn = self.connection()
        members = [{"email": e, **({"active": False} if e in self.cfg.inactive else {})} for e in self.cfg.members]
        out: dict[str, Any] = {
            "connections": [conn],
            "members": members,
            "teams": [{"name": t, "members": sorted(ms)} for t, ms in sorted(self.cfg.teams.items())],
            "user_maps": [{"member": e, "identities": {conn["name"]: self.identity(e)}}
                          for e in self.cfg.members if e in self.cfg.mapped],
        }
        ints = []
        for name, i in sorted(self.cfg.integrations.items()):
            d: dict[str, Any] = {"name": name, "program": "acme", "connection": conn["name"], "project": i.project,
                                 "issue_type": "Bug", "test_issue": False,
                                 "team_roles": dict(sorted(i.team_roles.items())), "role_membership": i.mode,
                                 **self.integration_extra()}
            if i.webhook:
                d["webhook"] = {"url": "https://platform.acme.io/hooks/jira"}
            ints.append(d)
        if ints:
            out["integrations"] = ints
        return out

    def plan_and_apply(self) -> tuple[Plan, Plan]:
        """plan + apply in process (fresh Session each), then a fresh plan: (applied plan, next plan)."""
        self.applies += 1
        plan, result, again = run_apply(self.tmp / f"c{self.applies}", self.config_dict())
        assert not result.failures, self.explain(f"apply failed: {result.failures}")
        return plan, again

    def explain(self, text: str) -> str:
        cfg = self.config_dict()
        lines = [f"teams: {json.dumps({t['name']: t['members'] for t in cfg['teams']})}",
                 f"mapped: {sorted(self.cfg.mapped)}, inactive: {sorted(self.cfg.inactive)}"]
        lines += [f"integration {json.dumps(i)}" for i in cfg.get("integrations", [])]
        return text + "\nsteps:\n  " + "\n  ".join(self.log[-60:]) + "\nconfig now:\n  " + "\n  ".join(lines)

    def edit(self, what: str, change: Any) -> None:
        """Apply ``change`` to a copy of the config model; keep it only when the config stays valid."""
        trial = copy.deepcopy(self.cfg)
        change(trial)
        if trial.valid():
            self.cfg = trial
            self.log.append(what)

    # --- the first config: one integration with grants, applied -------------------

    @initialize(project=st.data(), mode=st.sampled_from(MODES), webhook=st.booleans(),
                grants=st.dictionaries(st.sampled_from(TEAMS), st.integers(0, 9), min_size=1, max_size=2))
    def first_apply(self, project: st.DataObject, mode: str, webhook: bool, grants: dict[str, int]) -> None:
        p = project.draw(st.sampled_from(self.PROJECTS))
        roles = {t: self.ROLES[n % len(self.ROLES)] for t, n in grants.items()}
        self.cfg.integrations["web"] = IntegrationModel(p, roles, mode, webhook and self.webhooks())
        self.log.append(f"config: integration web on {p} ({mode}) grants {roles}")
        self.apply()

    def apply(self) -> None:
        raise NotImplementedError

    # --- rules: the config ----------------------------------------------------

    @rule(team=st.sampled_from(TEAMS), member=st.sampled_from(MEMBERS))
    def toggle_team_member(self, team: str, member: str) -> None:
        verb = "leaves" if member in self.cfg.teams[team] else "joins"
        self.edit(f"config: {member} {verb} team {team}", lambda c: c.teams[team].symmetric_difference_update({member}))

    @rule(member=st.sampled_from(MEMBERS))
    def toggle_user_map(self, member: str) -> None:
        verb = "loses" if member in self.cfg.mapped else "gets"
        self.edit(f"config: {member} {verb} a user map", lambda c: c.mapped.symmetric_difference_update({member}))

    @rule(member=st.sampled_from(MEMBERS))
    def toggle_active(self, member: str) -> None:
        verb = "reactivated" if member in self.cfg.inactive else "deactivated (active: false)"
        self.edit(f"config: {member} {verb}", lambda c: c.inactive.symmetric_difference_update({member}))

    @rule(name=st.sampled_from(INTEGRATIONS), project=st.data(), mode=st.sampled_from(MODES),
          webhook=st.booleans())
    def add_integration(self, name: str, project: st.DataObject, mode: str, webhook: bool) -> None:
        if name in self.cfg.integrations:
            return
        p = project.draw(st.sampled_from(self.PROJECTS))

        def change(c: ConfigModel) -> None:
            c.integrations[name] = IntegrationModel(p, {}, mode, webhook and self.webhooks())
        self.edit(f"config: add integration {name} on {p} ({mode})", change)

    def webhooks(self) -> bool:
        return False

    @precondition(lambda self: self.cfg.integrations)
    @rule(data=st.data())
    def remove_integration(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.cfg.integrations)))
        self.edit(f"config: remove integration {name}", lambda c: c.integrations.pop(name))

    @precondition(lambda self: self.cfg.integrations)
    @rule(data=st.data())
    def move_integration(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.cfg.integrations)))
        old = self.cfg.integrations[name].project
        new = data.draw(st.sampled_from([p for p in self.PROJECTS if p != old]))

        def change(c: ConfigModel) -> None:
            c.integrations[name].project = new
        self.edit(f"config: move integration {name} from {old} to {new}", change)

    @precondition(lambda self: self.cfg.integrations)
    @rule(data=st.data())
    def set_role_membership(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.cfg.integrations)))
        mode = data.draw(st.sampled_from(MODES))

        def change(c: ConfigModel) -> None:
            c.integrations[name].mode = mode
        self.edit(f"config: integration {name} role_membership: {mode}", change)

    @precondition(lambda self: self.cfg.integrations)
    @rule(data=st.data(), team=st.sampled_from(TEAMS))
    def grant_team_role(self, data: st.DataObject, team: str) -> None:
        """Add a team's grant, or move the team to another role (same rule: team_roles[team] = role)."""
        name = data.draw(st.sampled_from(sorted(self.cfg.integrations)))
        role = data.draw(st.sampled_from(self.ROLES))
        old = self.cfg.integrations[name].team_roles.get(team)
        what = f"grant {team} role {role}" if old is None else f"move {team} from role {old} to {role}"

        def change(c: ConfigModel) -> None:
            c.integrations[name].team_roles[team] = role
        self.edit(f"config: integration {name}: {what}", change)

    @precondition(lambda self: any(i.team_roles for i in self.cfg.integrations.values()))
    @rule(data=st.data())
    def remove_team_grant(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(n for n, i in self.cfg.integrations.items() if i.team_roles)))
        team = data.draw(st.sampled_from(sorted(self.cfg.integrations[name].team_roles)))
        role = self.cfg.integrations[name].team_roles[team]
        self.edit(f"config: integration {name}: drop grant {team} -> {role}",
                  lambda c: c.integrations[name].team_roles.pop(team))
