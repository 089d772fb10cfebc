"""SCIM 2.0 providers as one live system of the contract (``reconciler.contract.LiveSystem``).

Plan: discovery, paged reads, then the pure planner per provider, and the removal thresholds.
Apply: one ScimApplier per provider. Check: the "Test connection" steps. Stale: a saved plan's
objects re-read (one GET each, or paged lists where that costs fewer calls) and compared with what
the plan saw. Targets: a member brings its team memberships, a team the members it adds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from reconciler.config.checks import did_you_mean
from reconciler.config.models import Config, ScimProvider
from reconciler.contract import Check, CheckResult, Observer, SystemPlan
from reconciler.errors import PlanError
from reconciler.execute import Graph
from reconciler.plan.model import AttributeChange, Change
from reconciler.plan.safety import check_protected, check_removals
from reconciler.providers.paging import READ_ATTEMPTS, in_parallel
from reconciler.providers.scim import attributes
from reconciler.providers.scim.apply import ScimApplier
from reconciler.providers.scim.attributes import address
from reconciler.providers.scim.check import check_provider
from reconciler.providers.scim.client import Capabilities, ScimClient, client_for
from reconciler.providers.scim.plan import ProviderPlan, plan_provider
from reconciler.threads import Pool

if TYPE_CHECKING:
    from reconciler.session import Session

PREFIX = "scim."


def plan_one(session: Session, p: ScimProvider) -> ProviderPlan:
    """Read one provider (discovery, paged lists, /Schemas where a team schema needs it) and plan it."""
    client = client_for(session, p.name)

    def schema() -> Exception | None:
        """/Schemas (and /ResourceTypes): what the provider stores decides what is planned (scim/fit.py).
        Read while the lists are; a failure is raised where it was met when it came after them."""
        try:
            client.schema()
        except Exception as exc:
            return exc
        return None

    with Pool(max_workers=1, thread_name_prefix="discover") as pool:
        if p.page_size:  # the lists need nothing from discovery: discovery, then /Schemas, beside the lists
            discovered = pool.submit(lambda: (client.discover(), schema()))
            try:
                live = client.read()
            except Exception:
                discovered.result()  # discovery's failure is the one named, as when it went first
                raise
        else:  # the page size comes from discovery: the lists after it, /Schemas beside them
            caps = client.discover()
            discovered = pool.submit(lambda: (caps, schema()))
            live = client.read()
        caps, schema_error = discovered.result()
    if schema_error is not None:
        raise schema_error
    session.live[p.name] = {"users": len(live.users), "groups": len(live.groups), "page_size": client.page_size()}
    schemas = client.schemas() if p.team_schema is not None else None
    planned = plan_provider(session.config, p, live, caps, schemas)
    for resource in live.changed:
        planned.notes.append(f"provider '{p.name}': /{resource} changed while it was read ({READ_ATTEMPTS} reads, "
                             "objects created or deleted meanwhile); this plan may miss or repeat one of them: "
                             "run plan again")
    return planned


class ScimSystem:
    prefix = PREFIX

    def plan(self, session: Session) -> SystemPlan:
        out = SystemPlan()
        providers = session.config.providers
        # every provider's reads at once; the plans joined in config order, as if read one after another
        planned = in_parallel([partial(plan_one, session, p) for p in providers], "plan-scim")
        for p, pp in zip(providers, planned, strict=True):
            out.changes += pp.changes
            out.notes += pp.notes
            out.protected += pp.protected
            # protect holds whatever path a removal took, targeted or not
            check_protected(p.name, pp.changes, [*p.protect, *(m.key for m in session.config.members_for(p.name)
                                                                if m.protect)])
            if not session.targets:
                check_removals(p.name, pp.changes, pp.managed, p.max_removals, p.max_removal_percent,
                               session.allow_removals)
        return out

    def steps(self, session: Session, changes: list[Change], graph: Graph,
              report: Observer) -> Callable[[], None] | None:
        appliers: list[ScimApplier] = []
        for p in session.config.providers:
            mine = [c for c in changes if c.provider == p.name]
            if not mine:
                continue
            client = client_for(session, p.name)
            if not client.caps.discovered:
                client.discover()
            client.schema()  # what the bodies may carry (read once per client)
            applier = ScimApplier(client, report)
            applier.steps(graph, mine)
            appliers.append(applier)

        def finish() -> None:
            for a in appliers:
                a.finish()
        return finish

    def check(self, session: Session) -> list[CheckResult]:
        return [check_provider(p, session) for p in session.config.providers]

    def select(self, changes: list[Change], targets: list[str], config: Config) -> list[Change]:
        return select_targets(changes, targets, config)

    def stale(self, session: Session, changes: list[Change], facts: dict[str, Any]) -> list[Check]:
        """Re-read every object the changes touch; one Check per provider, naming each that moved."""
        checks: list[Check] = []
        for p in session.config.providers:
            mine = [c for c in changes if c.provider == p.name]
            if not mine:
                continue
            client = client_for(session, p.name)
            caps = client.discover()
            strategy = choose_strategy(len(mine), live_size(facts.get(p.name)))
            check = Check(p.name, len(mine), strategy)
            found = reread(client, mine, strategy, p.concurrency)
            for c, res in zip(mine, found, strict=True):
                reason = stale_reason(c, res, caps)
                if reason:
                    check.stale.append((c.address, reason))
            checks.append(check)
        return checks


system = ScimSystem()


# --- saved plans: re-reading what a plan touches ------------------------------------------------

@dataclass
class LiveSize:
    """How big a provider's live state was at plan time (to price a full re-read)."""

    users: int
    groups: int
    page_size: int

    def list_calls(self) -> int:
        """Paged list calls that read every user and group (an empty list still costs one call)."""
        return max(1, math.ceil(self.users / self.page_size)) + max(1, math.ceil(self.groups / self.page_size))



def live_size(v: Any) -> LiveSize | None:
    """The plan-time size a saved plan recorded for a provider (None when absent or unreadable)."""
    try:
        return LiveSize(int(v["users"]), int(v["groups"]), max(1, int(v["page_size"])))
    except (KeyError, TypeError, ValueError):
        return None


# Reading this many objects inside list pages costs about as much as one more HTTP call (scim2-server,
# measured: about 90 ms per page plus 0.9 ms per object; SaaS providers count calls against rate limits).
OBJECTS_PER_CALL = 100


def choose_strategy(touched: int, size: LiveSize | None) -> str:
    """Re-read the touched objects one GET each, or the whole state by paged lists: whichever costs
    less, counting calls (what rate limits count) plus the objects a full list drags along. Without
    the plan-time size, GETs: their cost is bounded by the plan itself."""
    if size is None:
        return "get"
    list_cost = size.list_calls() + (size.users + size.groups) / OBJECTS_PER_CALL
    return "list" if list_cost < touched else "get"


def reread(client: ScimClient, changes: list[Change], strategy: str, concurrency: int) \
        -> list[dict[str, Any] | None]:
    """The live object of each change now (None where there is none), by paged list or GET per object."""
    if strategy == "list":
        live = client.read()
        by_id = {str(r.get("id")): r for r in [*live.users, *live.groups]}
        users = {str(u.get("userName", "")).lower(): u for u in live.users}
        groups = {str(g.get("displayName")): g for g in live.groups}
        return [by_id.get(c.id) if c.id is not None else
                users.get(c.key.lower()) if c.kind == "user" else groups.get(c.key) for c in changes]

    def one(c: Change) -> dict[str, Any] | None:
        if c.id is not None:
            return client.get("Users" if c.kind == "user" else "Groups", c.id)
        return client.find_user(c.key) if c.kind == "user" else client.find_group(c.key)

    return _map(one, changes, concurrency)


def stale_reason(c: Change, live: dict[str, Any] | None, caps: Capabilities) -> str | None:
    if c.id is None:  # a create: the object must still be absent
        return "was created on the provider since the plan was made" if live is not None else None
    if live is None:
        return "was deleted since the plan was made"
    pre = c.precondition
    if pre is None:
        return None
    version = (live.get("meta") or {}).get("version")
    if pre.etag and version:
        return None if str(version) == pre.etag else "changed since the plan was made"
    if pre.digest:
        return None if attributes.digest(live) == pre.digest else "changed since the plan was made"
    return None


def _map(fn: Callable[[Change], dict[str, Any] | None], items: list[Change], workers: int) \
        -> list[dict[str, Any] | None]:
    if workers <= 1 or len(items) <= 1:
        return [fn(c) for c in items]
    with Pool(max_workers=min(workers, len(items)), thread_name_prefix="precondition") as pool:
        return list(pool.map(fn, items))


# --- targets -----------------------------------------------------------------------------------

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
    for t in targets:
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
        addr = address(provider, kind, key_l)
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
                m_addr = address(provider, "user", mgr.after["enterprise:manager"])
                if m_addr in by_addr and by_addr[m_addr].action.value == "create":
                    wanted[m_addr] = by_addr[m_addr]
        else:
            group = by_addr.get(addr)
            if group is not None and group.after is not None:
                for e in group.after.get("members", []):
                    u = by_addr.get(address(provider, "user", e))
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
        return Change(c.provider, c.kind, c.key, c.action, c.address, after=after, payload=c.payload, notes=c.notes)
    if (email in after_members) == (email in before_members):
        return None
    new_members = sorted(set(before_members) ^ {email})
    before = dict(c.before or {})
    after = dict(before, members=new_members)
    return Change(c.provider, c.kind, c.key, c.action, c.address, before=before, after=after,
                  diff=[AttributeChange("members", before_members, new_members)], id=c.id,
                  precondition=c.precondition, payload=c.payload)
