"""The audit log: JSON lines appended by every apply, never a secret; and the queries over it.

Every line has ``time``, ``actor``, ``commit``, ``plan_digest`` and ``event``:

- ``apply-start`` / ``apply-end`` / ``apply-refused``: one each per apply (``summary``, ``reason``);
- ``call``: one per HTTP call: ``provider``, ``address``, ``action``, ``method``, ``path``, ``status``,
  ``duration_ms``, ``attempt``, ``outcome``;
- ``change``: one per change applied: ``address``, ``action``, ``outcome``, ``duration_ms``,
  ``attributes`` (the attribute paths changed) and, for teams, ``members_added`` / ``members_removed``.

Bodies and headers are never written; every line passes through the secret redactor first.
"""

from __future__ import annotations

import errno
import getpass
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.errors import ReconcilerError
from reconciler.plan.model import Plan
from reconciler.providers._http import CallRecord
from reconciler.render.json import plan_document
from reconciler.secrets import redact

if TYPE_CHECKING:
    from reconciler.execute import Outcome

DEFAULT_PATH = ".reconciler/audit.jsonl"
# CI systems' names for the person who started the run, most specific first; then the OS user.
ACTOR_VARIABLES = ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_REQUESTEDFOR", "BUILDKITE_BUILD_CREATOR",
                   "CIRCLE_USERNAME", "BITBUCKET_STEP_TRIGGERER_UUID", "USER")


def default_path() -> Path:
    return Path(os.environ.get("RECONCILER_AUDIT_LOG") or DEFAULT_PATH)


def actor() -> str:
    """Who applies: the CI's notion of the user where there is one, else the OS user."""
    for var in ACTOR_VARIABLES:
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class AuditLog:
    """Append-only JSON lines; safe to write from the apply's worker threads."""

    def __init__(self, path: str | Path, *, commit: str | None, plan_digest: str,
                 actions: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.commit = commit
        self.plan_digest = plan_digest
        self.actions = actions or {}
        self.actor = actor()
        self._lock = threading.Lock()
        self._fh: TextIO | None = None
        self.lines = 0

    def __enter__(self) -> AuditLog:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # never through a symbolic link (a link planted where the log goes would send it elsewhere)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self._fh = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:  # opened before the first change: nothing has been applied
            if exc.errno == errno.ELOOP:
                raise ReconcilerError(f"the audit log {self.path} is a symbolic link; reconciler does not follow "
                                      "one there: nothing was applied; pass --audit-log PATH with the real "
                                      "file") from None
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(self.path) else ""
            raise ReconcilerError(f"cannot open the audit log {self.path}: {exc.strerror}{where}; nothing was "
                                  "applied; pass --audit-log PATH or set RECONCILER_AUDIT_LOG") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None

    def write(self, event: dict[str, Any]) -> None:
        base = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "actor": self.actor,
                "commit": self.commit, "plan_digest": self.plan_digest}
        line = redact(json.dumps({**base, **event}, ensure_ascii=False, default=str))
        with self._lock:
            assert self._fh is not None, "AuditLog used outside its with-block"
            self._fh.write(line + "\n")
            self._fh.flush()  # a killed apply leaves every call it made on disk
            self.lines += 1

    def record(self, call: CallRecord) -> None:
        """A Recorder for Http: one line per call."""
        ok = call.status is not None and 200 <= call.status < 400
        line: dict[str, Any] = {"event": "call", "provider": call.provider, "address": call.address or None,
                                "action": self.actions.get(call.address), "method": call.method,
                                "path": call.path, "status": call.status, "duration_ms": call.duration_ms,
                                "attempt": call.attempt,
                                "outcome": "ok" if ok else ("error: " + call.error if call.error else "failed")}
        line["carries"] = list(call.carries)  # a Bulk request: the changes it carried (each one's calls list it)
        self.write(line)

    def outcome(self, o: Outcome) -> None:
        """An apply observer: one line per change, with what it changed (never values: they may be
        personal data the log does not need; the plan file has them)."""
        c = o.change
        event: dict[str, Any] = {"event": "change", "provider": c.provider, "address": c.address,
                                 "action": c.action.value, "outcome": "ok" if o.ok else f"error: {o.error}",
                                 "duration_ms": round(o.duration_ms, 2), "attributes": changed_paths(c)}
        if c.kind == "group":
            before = set((c.before or {}).get("members") or [])
            after = set((c.after or {}).get("members") or [])
            event["members_added"] = sorted(after - before)
            event["members_removed"] = sorted(before - after)
        self.write(event)


def changed_paths(c: Any) -> list[str]:
    if c.diff:
        return [d.path for d in c.diff]
    side = c.after if c.after is not None else c.before
    return sorted(k for k, v in (side or {}).items() if v is not None and v != [])


# --- queries ----------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'30m', '24h', '7d', '2w' (ago), or an ISO date or date-time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    m = _RELATIVE.match(text.strip())
    if m:
        try:
            return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        except OverflowError:
            raise ReconcilerError(f"--since {text!r} reaches back before year 1; write a shorter duration or "
                                  "an ISO date") from None
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReconcilerError(f"--since {text!r}: write a duration (30m, 24h, 7d, 2w) or an ISO date "
                              "(2024-05-01, 2024-05-01T12:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every event in the log, oldest first. A line that is not JSON (a crash mid-write) is skipped;
    a file in which no line is an audit event is not an audit log, and an error."""
    if not path.exists():
        raise ReconcilerError(f"no audit log at {path}; pass --log PATH or set RECONCILER_AUDIT_LOG")
    lines = events = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            lines += 1
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "event" in event:
                events += 1
                yield event
    if lines and not events:
        raise ReconcilerError(f"{path} is not an audit log: none of its {lines} line(s) is a JSON audit event "
                              "(apply writes them; pass --log PATH or set RECONCILER_AUDIT_LOG)")


def member_address_suffix(email: str) -> str:
    return f'.user["{email.lower()}"]'


def matches(event: dict[str, Any], *, address: str | None = None, member: str | None = None,
            since: datetime | None = None, calls: bool = False) -> bool:
    kind = event.get("event")
    if kind not in ("change", "call") or (kind == "call" and not calls):
        return False
    if since is not None:
        try:
            t = datetime.fromisoformat(str(event.get("time")))
        except ValueError:
            return False
        if t < since:
            return False
    addr = str(event.get("address") or "")
    carried = [str(a) for a in event.get("carries") or []] if kind == "call" else []
    if address is not None and addr != address and address not in carried:
        return False
    if member is not None:
        email = member.lower()
        involved = addr.endswith(member_address_suffix(email)) or email in (event.get("members_added") or []) \
            or email in (event.get("members_removed") or []) \
            or any(a.endswith(member_address_suffix(email)) for a in carried)
        if not involved:
            return False
    return True


def query(path: Path, *, address: str | None = None, member: str | None = None, since: datetime | None = None,
          calls: bool = False) -> list[dict[str, Any]]:
    return [e for e in read_events(path) if matches(e, address=address, member=member, since=since, calls=calls)]


def format_event(e: dict[str, Any]) -> str:
    """One line: when, who, which commit, what, where, how it went."""
    commit = str(e.get("commit") or "-")[:12]
    head = f"{e.get('time')}  {e.get('actor')}  {commit:<12}"
    if e.get("event") == "call":
        return (f"{head}  {e.get('method')} {e.get('path')} -> {e.get('status')}  {e.get('address') or '-'}  "
                f"{e.get('outcome')}")
    added = [f"+{m}" for m in e.get("members_added") or []]
    removed = [f"-{m}" for m in e.get("members_removed") or []]
    parts = [a for a in e.get("attributes") or [] if not (a == "members" and (added or removed))]
    if added or removed:
        parts.append("members: " + " ".join(added + removed))
    what = f"  ({', '.join(parts)})" if parts else ""
    return f"{head}  {e.get('action')}  {e.get('address')}  {e.get('outcome')}{what}"


def plan_digest(plan: Plan) -> str:
    """The digest every line of one apply carries: SHA-256 of the plan's JSON document."""
    from_doc = plan_document(plan)
    return hashlib.sha256(json.dumps(from_doc, sort_keys=True).encode()).hexdigest()
