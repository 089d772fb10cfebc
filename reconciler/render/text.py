"""The terminal rendering: `+ ~ -` symbols, colour only when asked (on a TTY), a summary line.

Given a width (the terminal's), a value too long for its line is spread over several: a map or list
one entry a line (recursively, as JSON), a note or message wrapped at spaces with a hanging indent.
Without one (output piped, no $COLUMNS) every value stays on one line, as scripts grep it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections.abc import Iterable, Iterator
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


MIN_WIDTH = 40


def terminal_width() -> int | None:
    """The width to wrap to: $COLUMNS when set, else the terminal's when stdout is one, else None."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return max(int(cols), MIN_WIDTH)
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size().columns, MIN_WIDTH)
    return None


def fit(prefix: str, v: Any, width: int | None, suffix: str = "") -> list[str]:
    """``prefix + value(v) + suffix``, spread over lines when it is wider than ``width``.

    A map or list opens on the prefix's line and lists one entry a line, indented four more than the
    prefix's own indent; an entry still too wide is spread the same way. Scalars are never split.
    """
    one = prefix + value(v) + suffix
    if width is None or len(one) <= width or not isinstance(v, dict | list) or not v:
        return [one]
    indent = " " * (len(prefix) - len(prefix.lstrip()))
    inner = indent + "    "
    items: list[tuple[str, Any]] = ([(inner + visible(json.dumps(k, ensure_ascii=False)) + ": ", v[k])
                                     for k in sorted(v)] if isinstance(v, dict) else [(inner, x) for x in v])
    lines = [prefix + ("{" if isinstance(v, dict) else "[")]
    for i, (p, x) in enumerate(items):
        lines += fit(p, x, width, "," if i < len(items) - 1 else "")
    lines.append(indent + ("}" if isinstance(v, dict) else "]") + suffix)
    return lines


def wrap(text: str, width: int | None, indent: str, hanging: str) -> list[str]:
    """``indent + text`` wrapped at spaces to ``width``, continuation lines starting with ``hanging``."""
    if width is None or len(indent) + len(text) <= width:
        return [indent + text]
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=hanging,
                         break_long_words=False, break_on_hyphens=False) or [indent + text]


def wrap_at_commas(text: str, width: int | None, hanging: str = "  ") -> list[str]:
    """Like ``wrap``, breaking only after a comma (a summary line: '5 to create, 1 to update, ...')."""
    glued = text.replace(" ", "\x00").replace(",\x00", ", ")
    return [line.replace("\x00", " ") for line in wrap(glued, width, "", hanging)]


def unique(items: Iterable[str]) -> list[str]:
    """Each item once, in first-seen order."""
    return list(dict.fromkeys(items))


def list_delta(before: Any, after: Any) -> tuple[list[Any], list[Any]] | None:
    if isinstance(before, list) or isinstance(after, list):
        b, a = before or [], after or []
        return [x for x in a if x not in b], [x for x in b if x not in a]
    return None


class PlanText:
    """``width``: wrap to that many columns (None: never). ``notes_shown``: notes printed earlier in the
    same output (by another plan of one demo run); they are counted, not repeated, and the set grows."""

    def __init__(self, colour: bool = False, width: int | None = None, notes_shown: set[str] | None = None) -> None:
        self.colour = colour
        self.width = width
        self.notes_shown = notes_shown

    def _c(self, text: str, action: Action, bold: bool = False) -> str:
        return click.style(text, fg=_COLOURS[action], bold=bold) if self.colour else text

    def change_lines(self, c: Change) -> list[str]:
        sym, addr = c.action.symbol, visible(c.address)  # live data: escaped, one line
        header = f"  # {addr} {_VERBS[c.action]}"
        if self.width is not None and len(header) > self.width:
            header = f"  # {addr}\n  #   {_VERBS[c.action]}"
        lines = [header, "  " + self._c(f"{sym} {addr}", c.action, True)]
        w = self.width
        if c.action is Action.CREATE:
            for k, v in (c.after or {}).items():
                if v is not None and v != []:
                    lines += self._sym(fit(f"      + {visible(k)}: ", v, w), 6, "+", c.action)
        elif c.action is Action.DELETE:
            for k, v in (c.before or {}).items():
                if v is not None and v != []:
                    lines += self._sym(fit(f"      - {visible(k)}: ", v, w), 6, "-", c.action)
        else:
            for d in c.diff:
                delta = list_delta(d.before, d.after)
                if delta is not None:
                    added, removed = delta
                    lines.append(f"      ~ {visible(d.path)}:")
                    for x in added:
                        lines += self._sym(fit("          + ", x, w), 10, "+", Action.CREATE)
                    for x in removed:
                        lines += self._sym(fit("          - ", x, w), 10, "-", Action.DELETE)
                elif w is not None and len(f"      ~ {visible(d.path)}: {value(d.before)} -> "
                                           f"{value(d.after)}") > w:
                    lines += fit(f"      ~ {visible(d.path)}: ", d.before, w, " ->")
                    lines += fit("          ", d.after, w)
                else:
                    lines.append(f"      ~ {visible(d.path)}: {value(d.before)} -> {value(d.after)}")
        for n in c.notes:
            lines += wrap(f"note: {visible(n)}", w, "      ", "            ")
        return lines

    def _sym(self, lines: list[str], at: int, sym: str, action: Action) -> list[str]:
        """Colour the symbol at column ``at`` of the first line (the value's lines stay plain)."""
        if self.colour and lines:
            first = lines[0]
            lines[0] = first[:at] + self._c(sym, action) + first[at + 1:]
        return lines

    def render(self, plan: Plan) -> str:
        return "".join(self.chunks(plan))

    def chunks(self, plan: Plan) -> Iterator[str]:
        """The text of ``render``, a change at a time: a plan of 110,000 creates is about 45 MB of text,
        which the CLI writes as it is made instead of holding it (and its lines, and their join) at once."""
        if plan.changes:
            yield "\n".join([*wrap("reconciler will perform the following actions:", self.width, "", ""), "", ""])
            for c in plan.changes:
                yield "\n".join([*self.change_lines(c), "", ""])
        out: list[str] = []
        notes = unique([*plan.notes, *(f"{a} is protected: not removed" for a in plan.protected)])
        if self.notes_shown is not None:
            repeated = [n for n in notes if n in self.notes_shown]
            notes = [n for n in notes if n not in self.notes_shown]
            self.notes_shown.update(notes)
            if repeated and not notes:
                out += [f"Notes: the same as above ({len(repeated)}).", ""]
            elif repeated:
                notes.append(f"and the {len(repeated)} shown above")
        if notes:
            out.append("Notes:")
            for n in notes:
                out += wrap(visible(n), self.width, "  - ", "    ")
            out.append("")
        summary = "\n".join(wrap_at_commas(plan.summary(), self.width))
        out.append(click.style(summary, bold=True) if self.colour else summary)
        yield "\n".join(out) + "\n"
