"""Cross-file checks of a merged config, registered by the modules that know each kind.

Each check gets the merged Config and returns Diagnostics (file:line:col, what is wrong, the valid
choices). The loader runs every registered check after its own; the integration and user map checks
register here when imported, and the loader imports them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from reconciler.config.models import Config
from reconciler.errors import Diagnostic

CHECKS: list[Callable[[Config], list[Diagnostic]]] = []


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if 0 < len(choices) <= 12:
        return f"; valid choices: {', '.join(sorted(choices))}"
    return ""
