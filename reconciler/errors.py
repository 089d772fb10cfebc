"""The whole error tree of reconciler.

Every error a user can cause or meet is one of these; the CLI turns them into
one-line messages and exit code 1, and no traceback reaches the user.

    ReconcilerError
    ├── ConfigError            the YAML is wrong: one or more located Diagnostics
    ├── SecretError            a ${env:...} / ${file:...} reference cannot be resolved
    ├── PlanError              the plan cannot be made (a name unknown to the live system ...)
    │   ├── UnsafePlanError    the plan would remove more than the thresholds allow
    │   └── StalePlanError     a saved plan no longer matches the live system or the config
    ├── ProviderError          talking to a live system failed
    │   ├── ConnectError       unreachable, DNS, TLS, timeout (after retries)
    │   ├── AuthError          401 / 403 / token endpoint refused the credentials
    │   ├── ConflictError      409 / 412: the object changed or already exists
    │   ├── NotFoundError      404
    │   └── ServerError        any other non-success answer (after retries)
    └── ApplyError             an apply finished with failed changes (each one named)

HTTP statuses are mapped to these classes in one place,
``reconciler.providers._http.raise_for_status``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class ReconcilerError(Exception):
    """Base of every error reconciler raises on purpose."""


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem found in a config file, at a position (1-based line and column; 0 when the problem is
    the path itself, such as a missing file)."""

    file: str
    line: int
    column: int
    message: str
    # (kind, key) when the problem is that no valid item of that kind has that key ("unknown member ..."):
    # the loader leaves it out when such an item was declared but failed validation, already reported
    refers: tuple[str, str] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        # one line per problem, whatever the offending value holds (a quoted "\n" in YAML ...)
        message = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), self.message)
        if self.line <= 0:
            return f"{self.file}: {message}"
        return f"{self.file}:{self.line}:{self.column}: {message}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ConfigError(ReconcilerError):
    """The configuration is invalid; ``diagnostics`` lists every problem found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(set(diagnostics))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class SecretError(ReconcilerError):
    """A credential reference could not be resolved (names the field, never a value)."""


class PlanError(ReconcilerError):
    """The plan could not be made."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        text = message if not self.problems else message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


class UnsafePlanError(PlanError):
    """The plan would remove more objects than the safety thresholds allow."""


class StalePlanError(PlanError):
    """A saved plan is stale: the live system or the config changed since it was made."""


@dataclass
class ProviderError(ReconcilerError):
    """A live system answered with an error or could not be reached."""

    message: str
    method: str = ""
    url: str = ""
    status: int | None = None
    detail: str = field(default="")

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.url}".strip()
        status = f" -> HTTP {self.status}" if self.status else ""
        detail = f": {self.detail}" if self.detail else ""
        text = f"{self.message}{' (' + where + status + ')' if where else ''}{detail}"
        return " ".join(text.split())  # one line, whatever a server put in it


class ConnectError(ProviderError):
    """The server could not be reached (refused, DNS, TLS, timeout)."""


class AuthError(ProviderError):
    """The server refused the credentials (401/403)."""


class ConflictError(ProviderError):
    """409 or 412: the object already exists or changed since it was read."""


class NotFoundError(ProviderError):
    """404."""


class ServerError(ProviderError):
    """Any other unsuccessful answer, after retries where retrying made sense."""


class ApplyError(ReconcilerError):
    """An apply finished, but some changes failed; ``failures`` maps address to reason."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = [f"{len(failures)} change(s) failed:"] + [f"  {a}: {r}" for a, r in sorted(failures.items())]
        super().__init__("\n".join(lines))
