"""The audit log: one JSON line per HTTP call an apply makes, appended, never a secret.

Each line: time, actor, commit, plan digest, address, action, method, path,
status, duration, outcome. Bodies and headers are never written; every string
passes through the secret redactor first.
"""

from __future__ import annotations

import getpass
import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from reconciler.config.secrets import redact
from reconciler.providers._http import CallRecord

DEFAULT_PATH = ".reconciler/audit.jsonl"


def actor() -> str:
    """Who applies: the CI's notion of the user where there is one, else the OS user."""
    for var in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_REQUESTEDFOR", "BUILDKITE_BUILD_CREATOR", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class AuditLog:
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None

    def write(self, event: dict[str, Any]) -> None:
        base = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "actor": self.actor,
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
        self.write({"event": "call", "provider": call.provider, "address": call.address or None,
                    "action": self.actions.get(call.address), "method": call.method, "path": call.path,
                    "status": call.status, "duration_ms": call.duration_ms, "attempt": call.attempt,
                    "outcome": "ok" if ok else ("error: " + call.error if call.error else "failed")})
