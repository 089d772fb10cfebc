"""Saved plans: ``plan --out FILE`` writes one, ``apply FILE`` applies exactly it or refuses a stale one.

A saved plan is the JSON plan document (``schemas/plan.schema.json``) plus
what apply needs to check it: the config path (as given to ``plan``, relative
to the directory ``plan`` ran in), the config digest, and the live sizes that
let apply choose the cheaper way to re-read the objects the plan touches.

Before changing anything, apply checks that (1) the config on disk has the
digest the plan was made from and (2) every object a change touches is still
as the plan saw it: the same ETag (``meta.version``) where the provider has
ETags, else the same digest of the live object; an object to create must
still be absent, an object to update or remove must still exist. Any failure
refuses the whole plan.

Also here: the config digest at a git revision, for the drift wording of
``plan --drift-base REF``.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.config import load_config
from reconciler.config.models import Config
from reconciler.config.secrets import redact
from reconciler.errors import ConfigError, PlanError, StalePlanError
from reconciler.plan.model import Change, Plan
from reconciler.providers import scim
from reconciler.render.json import FORMAT_VERSION, plan_document
from reconciler.session import Session, planners

# The kind marker that tells a saved plan from a YAML config given to `apply`.
KIND = "reconciler-plan"
_MAJOR = FORMAT_VERSION.split(".", 1)[0]


@dataclass
class LiveSize:
    """How big a provider's live state was at plan time (to price a full re-read)."""

    users: int
    groups: int
    page_size: int

    def list_calls(self) -> int:
        """Paged list calls that read every user and group (an empty list still costs one call)."""
        return max(1, math.ceil(self.users / self.page_size)) + max(1, math.ceil(self.groups / self.page_size))


@dataclass
class SavedPlan:
    plan: Plan
    path: Path
    config_path: str | None
    created_at: str | None = None
    live: dict[str, LiveSize] = field(default_factory=dict)
    document: dict[str, Any] = field(default_factory=dict)


# --- writing --------------------------------------------------------------------------------------

def config_path_for(config_root: str | Path, cwd: Path | None = None) -> str:
    """How the saved plan names its config: relative to the directory plan ran in when it is inside
    it (so a CI job that checks out the repository elsewhere still finds it), else absolute."""
    cwd = (cwd or Path.cwd()).resolve()
    root = Path(config_root).resolve()
    try:
        rel = root.relative_to(cwd)
    except ValueError:
        return root.as_posix()
    return rel.as_posix() or "."


def saved_document(plan: Plan, config_root: str | Path, session: Session | None = None,
                   cwd: Path | None = None) -> dict[str, Any]:
    doc = plan_document(plan)
    doc["kind"] = KIND
    doc["config_path"] = config_path_for(config_root, cwd)
    doc["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    doc["reconciler_version"] = __version__
    if session is not None:
        live: dict[str, Any] = {}
        for name, state in sorted(session.live.items()):
            live[name] = {"users": len(state.users), "groups": len(state.groups),
                          "page_size": session.client(name).page_size()}
        doc["live"] = live
    return doc


def write_saved_plan(path: Path, plan: Plan, config_root: str | Path, session: Session | None = None) -> None:
    """Write the plan for a later ``apply FILE``. Every known secret is scrubbed as a last guard (the
    plan holds attribute values only, never credentials)."""
    text = redact(json.dumps(saved_document(plan, config_root, session), indent=2, ensure_ascii=False) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a plan


# --- reading --------------------------------------------------------------------------------------

def is_saved_plan(path: Path) -> bool:
    """True when ``path`` is a saved plan file rather than a YAML config (file or directory)."""
    if not path.is_file():
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip()
    except OSError:
        return False
    if not head.startswith(b"{"):
        return False
    return KIND.encode() in head or b'"format_version"' in head


def load_saved_plan(path: Path) -> SavedPlan:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable saved plan: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("changes"), list):
        raise PlanError(f"{path}: not a saved plan (no 'changes' list); write one with "
                        "'reconciler plan CONFIG --out FILE'")
    version = str(doc.get("format_version", ""))
    if version.split(".", 1)[0] != _MAJOR:
        raise PlanError(f"{path}: plan format {version or '(none)'} is not readable by this reconciler "
                        f"(reads {_MAJOR}.x); run plan again with this version")
    try:
        changes = [Change.from_dict(c) for c in doc["changes"]]
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise PlanError(f"{path}: a change in the saved plan is malformed ({type(exc).__name__}: {exc}); "
                        "run plan again") from None
    plan = Plan(changes=changes, notes=list(doc.get("notes", [])), config_digest=str(doc.get("config_digest", "")),
                commit=doc.get("commit"), protected=list(doc.get("protected", [])))
    live = {}
    for name, v in (doc.get("live") or {}).items():
        try:
            live[name] = LiveSize(int(v["users"]), int(v["groups"]), max(1, int(v["page_size"])))
        except (KeyError, TypeError, ValueError):
            continue
    cp = doc.get("config_path")
    return SavedPlan(plan, path, str(cp) if cp is not None else None, doc.get("created_at"), live, doc)


def load_config_for(saved: SavedPlan, override: Path | None) -> Config:
    """The config the plan was made from: ``override`` (--config), else the recorded path, relative to
    the current directory as it was to the directory plan ran in."""
    if override is None and saved.config_path is None:
        raise PlanError(f"{saved.path} does not record its config path; pass --config DIR")
    where = override if override is not None else Path(saved.config_path or ".")
    if not where.exists():
        raise PlanError(f"the config {where} recorded in {saved.path} does not exist here; run apply from the "
                        "directory plan ran in, or pass --config DIR")
    return load_config(where)


def check_config(saved: SavedPlan, config: Config) -> None:
    if saved.plan.config_digest != config.digest:
        raise StalePlanError(
            f"plan is stale: the configuration in {config.root} changed since the plan was made "
            f"(plan made from config {saved.plan.config_digest[:12] or '(unknown)'}, on disk now "
            f"{config.digest[:12]}); run plan again")


# --- preconditions --------------------------------------------------------------------------------

@dataclass
class Check:
    """What the precondition check did for one provider (for the output and the tests)."""

    provider: str
    touched: int
    strategy: str  # "list" or "get"
    stale: list[tuple[str, str]] = field(default_factory=list)  # (address, reason)


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


def check_preconditions(session: Session, saved: SavedPlan) -> list[Check]:
    """Re-read every object the plan touches; raise StalePlanError naming each one that changed."""
    checks: list[Check] = []
    for p in session.config.providers:
        mine = [c for c in saved.plan.changes if c.provider == p.name and c.address.startswith("scim.")]
        if not mine:
            continue
        client = session.client(p.name)
        caps = client.discover()
        strategy = choose_strategy(len(mine), saved.live.get(p.name))
        check = Check(p.name, len(mine), strategy)
        found = reread(client, mine, strategy, p.concurrency)
        for c, res in zip(mine, found, strict=True):
            reason = stale_reason(c, res, caps)
            if reason:
                check.stale.append((c.address, reason))
        checks.append(check)
    checks += tracker_checks(session, saved.plan.changes)
    stale = [s for c in checks for s in c.stale]
    if stale:
        raise StalePlanError(stale_message(stale))
    return checks


def tracker_checks(session: Session, changes: list[Change]) -> list[Check]:
    """Tracker changes: plan the tracker again (its paged reads) and compare each saved change with the
    fresh one at the same address: gone (converged meanwhile) or a different live digest is stale."""
    out: list[Check] = []
    # the saved plan passed the removal guards when it was made (with --allow-removals if it needed to);
    # planning again to compare must not refuse the removals that were reviewed
    removals = sum(1 for c in changes if c.action.is_removal)
    session.allow_removals = max(session.allow_removals or 0, removals)
    for planner in planners():
        mine = [c for c in changes if c.address.startswith(planner.prefix)]
        if not mine:
            continue
        fresh = {c.address: c for c in planner.plan(session).changes}
        check = Check(planner.prefix.rstrip("."), len(mine), "plan")
        for c in mine:
            now = fresh.get(c.address)
            if now is None:
                check.stale.append((c.address, "no longer needs this change (the tracker changed since the "
                                               "plan was made)"))
            elif now.action is not c.action or _digest_of(now) != _digest_of(c):
                check.stale.append((c.address, "changed since the plan was made"))
        out.append(check)
    return out


def _digest_of(c: Change) -> str | None:
    return c.precondition.digest if c.precondition is not None else None


def reread(client: scim.ScimClient, changes: list[Change], strategy: str, concurrency: int) \
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


def stale_reason(c: Change, live: dict[str, Any] | None, caps: scim.Capabilities) -> str | None:
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
        return None if scim.digest(live) == pre.digest else "changed since the plan was made"
    return None


def stale_message(stale: list[tuple[str, str]], limit: int = 10) -> str:
    if len(stale) == 1:
        a, why = stale[0]
        return f"plan is stale: {a} {why}; run plan again"
    lines = [f"{a} {why}" for a, why in stale[:limit]]
    more = f"\n  ... and {len(stale) - limit} more" if len(stale) > limit else ""
    return (f"plan is stale: {len(stale)} objects changed since the plan was made; run plan again\n  "
            + "\n  ".join(lines) + more)


def _map(fn: Callable[[Change], dict[str, Any] | None], items: list[Change], workers: int) \
        -> list[dict[str, Any] | None]:
    if workers <= 1 or len(items) <= 1:
        return [fn(c) for c in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="precondition") as pool:
        return list(pool.map(fn, items))


# --- drift: was the config the same at a git revision? --------------------------------------------

def config_digest_at(ref: str, config_root: str | Path) -> str | None:
    """The digest the config had at git revision ``ref``; None when it did not exist or load there.
    Raises PlanError when the config is not in a git repository or ``ref`` is not a revision."""
    root = Path(config_root).resolve()
    base = root if root.is_dir() else root.parent
    top = _git(base, "rev-parse", "--show-toplevel")
    if top is None:
        raise PlanError(f"--drift-base {ref}: the config {config_root} is not in a git repository")
    if _git(base, "rev-parse", "--verify", "--quiet", ref + "^{commit}") is None:
        raise PlanError(f"--drift-base {ref}: not a git revision in this repository (in CI, fetch it first, "
                        "e.g. actions/checkout with fetch-depth: 0)")
    top_dir = Path(top.decode().strip()).resolve()
    rel = root.relative_to(top_dir).as_posix() or "."
    tar = _git(top_dir, "archive", "--format=tar", ref, "--", rel)  # pathspecs are relative to -C
    if tar is None:
        return None  # the config did not exist at ref
    with tempfile.TemporaryDirectory(prefix="reconciler-drift-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.extractall(tmp, filter="data")
        try:
            return load_config(Path(tmp) / rel).digest
        except ConfigError:
            return None


def is_drift(ref: str, config: Config) -> bool:
    """True when the config is the same as at ``ref``: then every change in the plan is drift."""
    return config_digest_at(ref, config.root) == config.digest


def _git(cwd: Path, *args: str) -> bytes | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


__all__ = ["KIND", "Check", "LiveSize", "SavedPlan", "StalePlanError", "check_config",
           "check_preconditions", "config_digest_at", "is_drift", "is_saved_plan", "load_config_for",
           "load_saved_plan", "write_saved_plan"]
