"""Saved plans: ``plan --out FILE`` writes one, ``apply FILE`` applies exactly it or refuses a stale one.

A saved plan is the JSON plan document (``schemas/plan.schema.json``) plus
what apply needs to check it: the config path (as given to ``plan``, relative
to the directory ``plan`` ran in), the config digest, and what each system
read (``live``: SCIM records its sizes, which let apply choose the cheaper way
to re-read the objects the plan touches). Each system checks its own changes
(``reconciler.contract.LiveSystem.stale``).

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
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler import __version__
from reconciler.config.loader import load_config
from reconciler.config.models import Config
from reconciler.contract import Check
from reconciler.errors import ConfigError, PlanError, StalePlanError
from reconciler.files import PLAN_FILE_BYTES, FileRefused, read_limited
from reconciler.plan.document import KIND, MAJOR, SavedPlanDocument
from reconciler.plan.model import Plan, first_error
from reconciler.providers.registry import systems
from reconciler.render.json import plan_document
from reconciler.secrets import redact
from reconciler.session import Session


@dataclass
class SavedPlan:
    plan: Plan
    path: Path
    config_path: str | None
    created_at: str | None = None
    live: dict[str, Any] = field(default_factory=dict)  # what each system read at plan time (its sizes)
    targets: list[str] = field(default_factory=list)  # plan --target, as given
    allow_removals: int | None = None  # plan --allow-removals, as given
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
        doc["live"] = dict(sorted(session.live.items()))
        # how the plan was asked for: apply plans again the same way to check every change (see verify)
        doc["request"] = {"targets": list(session.targets or []), "allow_removals": session.allow_removals}
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
    """Read a saved plan through the plan models: every change checked as a plan made here is (its
    invariants, its payload's type, what it depends on), or the whole file refused in one line."""
    try:
        text = read_limited(path, PLAN_FILE_BYTES).decode("utf-8")
        doc = json.loads(text)
    except FileRefused as exc:
        raise PlanError(f"{path}: not a readable saved plan: the file {exc}") from None
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable saved plan: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("changes"), list):
        raise PlanError(f"{path}: not a saved plan (no 'changes' list); write one with "
                        "'reconciler plan CONFIG --out FILE'")
    version = str(doc.get("format_version", ""))
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) < int(MAJOR):
        raise PlanError(f"{path}: plan format {version} was made by an older reconciler; run plan again")
    if major != MAJOR:
        raise PlanError(f"{path}: plan format {version or '(none)'} is not readable by this reconciler "
                        f"(reads {MAJOR}.x); run plan again with this version")
    try:
        saved = SavedPlanDocument.model_validate_json(text)
        plan = Plan(changes=saved.changes, notes=saved.notes, config_digest=saved.config_digest,
                    commit=saved.commit, protected=saved.protected)
    except ValueError as exc:
        why = first_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise PlanError(f"{path}: the saved plan is malformed ({why}); run plan again") from None
    request = saved.request
    live = {name: size.model_dump() for name, size in saved.live.items()}
    return SavedPlan(plan, path, saved.config_path, saved.created_at, live,
                     list(request.targets) if request else [], request.allow_removals if request else None, doc)


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

def check_preconditions(session: Session, saved: SavedPlan) -> list[Check]:
    """Every system re-reads what its changes touch; raise StalePlanError naming each one that moved."""
    checks: list[Check] = []
    for system in systems():
        mine = [c for c in saved.plan.changes if c.address.startswith(system.prefix)]
        if mine:
            checks += system.stale(session, mine, saved.live)
    stale = [s for c in checks for s in c.stale]
    if stale:
        raise StalePlanError(stale_message(stale))
    return checks


def verify(session: Session, saved: SavedPlan) -> Plan:
    """The plan to apply for a saved plan: planned again from the config on disk (whose digest
    check_config has compared) and the live state as it is now, the same way it was asked for
    (targets, --allow-removals: thresholds and protect are checked again). Every change in the file
    must be one this plan makes: the same address, action, live object (id), desired state (after) and
    precondition; anything else refuses the whole plan. What is applied are the changes planned here,
    for the addresses the file lists: nothing in the file but that choice reaches a live system, so
    an edited file can neither add a change nor alter one (a target id, a group member's id)."""
    fresh = session.plan(targets=saved.targets or None, allow_removals=saved.allow_removals)
    now = {c.address: c for c in fresh.changes}
    problems: list[tuple[str, str]] = []
    for c in saved.plan.changes:
        f = now.get(c.address)
        if f is None:
            problems.append((c.address, "is not a change the configuration makes now (converged meanwhile, "
                                        "or the plan file was edited)"))
        elif f.action is not c.action or f.id != c.id or f.after != c.after:
            problems.append((c.address, f"does not match what the configuration makes now ({c.action.value} "
                                        f"in the file, {f.action.value} planned; a different object or "
                                        "desired state means the plan file was edited or the provider moved)"))
        elif (f.precondition or None) != (c.precondition or None):
            problems.append((c.address, "changed since the plan was made"))
    # changes the file does not list (drift elsewhere since the plan) are left for the next plan, as a
    # plan made now would show them: the reviewed changes alone are applied
    if problems:
        raise StalePlanError(stale_message(problems))
    return Plan(changes=[now[c.address] for c in saved.plan.changes], notes=saved.plan.notes,
                config_digest=saved.plan.config_digest, commit=saved.plan.commit, protected=saved.plan.protected)


def stale_message(stale: list[tuple[str, str]], limit: int = 10) -> str:
    if len(stale) == 1:
        a, why = stale[0]
        return f"plan is stale: {a} {why}; run plan again"
    lines = [f"{a} {why}" for a, why in stale[:limit]]
    more = f"\n  ... and {len(stale) - limit} more" if len(stale) > limit else ""
    return (f"plan is stale: {len(stale)} objects changed since the plan was made; run plan again\n  "
            + "\n  ".join(lines) + more)


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


__all__ = ["KIND", "Check", "SavedPlan", "verify", "StalePlanError", "check_config",
           "check_preconditions", "config_digest_at", "is_drift", "is_saved_plan", "load_config_for",
           "load_saved_plan", "write_saved_plan"]
