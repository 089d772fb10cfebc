"""The terminal rendering: `+ ~ -` symbols, colour only when asked (on a TTY), a summary line."""

from __future__ import annotations

import json
from typing import Any

import click

from reconciler.plan.model import Action, Change, Plan
from reconciler.render.escape import visible

_COLOURS = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.DEACTIVATE: "red", Action.DELETE: "red",
            Action.REPLACE: "magenta"}
_VERBS = {Action.CREATE: "will be created", Action.UPDATE: "will be updated in place",
          Action.DEACTIVATE: "will be deactivated", Action.DELETE: "will be deleted",
          Action.REPLACE: "will be replaced"}


def value(v: Any) -> str:
    """A value as the plan shows it (JSON literals, so true/false/null read the same everywhere)."""
    return visible(json.dumps(v, ensure_ascii=False, sort_keys=True))


def list_delta(before: Any, after: Any) -> tuple[list[Any], list[Any]] | None:
    if isinstance(before, list) or isinstance(after, list):
        b, a = before or [], after or []
        return [x for x in a if x not in b], [x for x in b if x not in a]
    return None


class PlanText:
    def __init__(self, colour: bool = False) -> None:
        self.colour = colour

    def _c(self, text: str, action: Action, bold: bool = False) -> str:
        return click.style(text, fg=_COLOURS[action], bold=bold) if self.colour else text

    def change_lines(self, c: Change) -> list[str]:
        sym, addr = c.action.symbol, visible(c.address)  # live data: escaped, one line
        lines = [f"  # {addr} {_VERBS[c.action]}", "  " + self._c(f"{sym} {addr}", c.action, True)]
        if c.action is Action.CREATE:
            for k, v in (c.after or {}).items():
                if v is not None and v != []:
                    lines.append("      " + self._c("+", c.action) + f" {visible(k)}: {value(v)}")
        elif c.action is Action.DELETE:
            for k, v in (c.before or {}).items():
                if v is not None and v != []:
                    lines.append("      " + self._c("-", c.action) + f" {visible(k)}: {value(v)}")
        else:
            for d in c.diff:
                delta = list_delta(d.before, d.after)
                if delta is not None:
                    added, removed = delta
                    lines.append(f"      ~ {visible(d.path)}:")
                    lines += ["          " + self._c("+", Action.CREATE) + f" {value(x)}" for x in added]
                    lines += ["          " + self._c("-", Action.DELETE) + f" {value(x)}" for x in removed]
                else:
                    lines.append(f"      ~ {visible(d.path)}: {value(d.before)} -> {value(d.after)}")
        lines += [f"      note: {visible(n)}" for n in c.notes]
        return lines

    def render(self, plan: Plan) -> str:
        out: list[str] = []
        if plan.changes:
            out.append("reconciler will perform the following actions:")
            out.append("")
            for c in plan.changes:
                out += self.change_lines(c)
                out.append("")
        if plan.notes or plan.protected:
            out.append("Notes:")
            out += [f"  - {visible(n)}" for n in plan.notes]
            out += [f"  - {visible(a)} is protected: not removed" for a in plan.protected]
            out.append("")
        out.append(click.style(plan.summary(), bold=True) if self.colour else plan.summary())
        return "\n".join(out) + "\n"
