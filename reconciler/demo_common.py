"""What both halves of `reconciler demo` (members and teams; tracker integrations) print and run alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.apply import ApplyResult, apply_plan
from reconciler.errors import ApplyError
from reconciler.execute import Outcome
from reconciler.plan.model import Plan
from reconciler.render.text import terminal_width, wrap, wrap_at_commas
from reconciler.session import Session

Echo = Callable[[str], None]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def shown_path(folder: Path) -> Path:
    """The path to print (and load, so that errors name it) for a bundled example: ``examples/NAME`` when the
    current directory holds the same files there (a clone), else the installed copy's own path."""
    relative = Path("examples") / folder.name
    try:
        if relative.is_dir() and (relative.resolve() == folder.resolve() or _files(relative) == _files(folder)):
            return relative
    except OSError:
        pass
    return folder


def comment(echo: Echo, text: str, width: int | None) -> None:
    """A ``# ...`` narration paragraph, wrapped to the terminal."""
    for line in wrap(text, width, "# ", "# "):
        echo(line + "\n")


def apply_in_plan_order(session: Session, plan: Plan, echo: Echo) -> ApplyResult:
    """Apply, then print one line per change in the plan's order (the workers finish in any order)."""
    outcomes: list[Outcome] = []
    result = apply_plan(session, plan, observer=outcomes.append)
    order = {c.address: i for i, c in enumerate(plan.changes)}
    for o in sorted(outcomes, key=lambda o: order.get(o.change.address, len(order))):
        echo(f"{o.change.address}: {o.change.action.value} {'done' if o.ok else 'FAILED: ' + str(o.error)}\n")
    echo("\n".join(wrap_at_commas(result.summary(), terminal_width())) + "\n")
    if result.failures:
        raise ApplyError(result.failures)
    return result
