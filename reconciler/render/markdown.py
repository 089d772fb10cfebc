"""The pull-request rendering: a summary table, removals first, each change in a collapsible block.

Always fits GitHub's 65,536-character comment limit, with room for a marker. A change shows at most
``MAX_BLOCK_LINES`` diff lines; when the details no longer fit, the remaining
changes are listed one line each, and past that a closing note says how many
changes were left out and where the full plan is.
"""

from __future__ import annotations

import re
from collections import Counter

from reconciler.plan.model import SUMMARY_ORDER, Action, Change, Plan
from reconciler.render.escape import markdown, visible
from reconciler.render.text import list_delta, value

GITHUB_LIMIT = 65_536
# Room left for what a workflow wraps around the rendering (the comment's marker, a link to the run).
HEADROOM = 1_024
MAX_BLOCK_LINES = 60
MAX_NOTES = 30
DEFAULT_HINT = "the full plan is in the workflow run's artifacts (plan.json; `reconciler show plan.json`)"


def _esc(s: str) -> str:
    """Live data as Markdown that renders as the characters it holds (no emphasis, link, tag, line break)."""
    return markdown(s)


def _fence(lines: list[str]) -> str:
    """A code fence longer than any backtick run in the content, so a value cannot close it."""
    longest = max((len(m) for line in lines for m in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def diff_lines(c: Change) -> list[str]:
    if c.action is Action.CREATE:
        return [f"+ {visible(k)}: {value(v)}" for k, v in (c.after or {}).items() if v is not None and v != []]
    if c.action is Action.DELETE:
        return [f"- {visible(k)}: {value(v)}" for k, v in (c.before or {}).items() if v is not None and v != []]
    out: list[str] = []
    for d in c.diff:
        delta = list_delta(d.before, d.after)
        if delta is not None:
            out += [f"+ {visible(d.path)}: {value(x)}" for x in delta[0]]
            out += [f"- {visible(d.path)}: {value(x)}" for x in delta[1]]
        else:
            out += [f"- {visible(d.path)}: {value(d.before)}", f"+ {visible(d.path)}: {value(d.after)}"]
    return out


def change_block(c: Change, max_lines: int = MAX_BLOCK_LINES) -> str:
    body = diff_lines(c)
    if len(body) > max_lines:
        body = body[:max_lines] + [f"  ... {len(body) - max_lines} more lines in the full plan"]
    fence = _fence(body)
    lines = [f"<details><summary><code>{c.action.symbol} {_esc(c.address)}</code> ({c.action.value})</summary>",
             "", f"{fence}diff", *body, fence]
    lines += [f"- note: {_esc(n)}" for n in c.notes]
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def compact_line(c: Change) -> str:
    return f"- <code>{c.action.symbol} {_esc(c.address)}</code> ({c.action.value})\n"


class PlanMarkdown:
    """``drift``: the config is the same as the one live systems were last converged to, so every
    change is drift. ``full_plan_hint`` says where the whole plan is when the comment cannot hold it."""

    def __init__(self, colour: bool = False, *, title: str = "reconciler plan", drift: bool = False,
                 full_plan_hint: str = DEFAULT_HINT, limit: int = GITHUB_LIMIT - HEADROOM) -> None:
        self.title, self.drift, self.hint, self.limit = title, drift, full_plan_hint, limit

    def head(self, plan: Plan) -> str:
        drift = self.drift and plan.has_changes
        head = [f"## {_esc(self.title)}" + (" — drift detected" if drift else ""), ""]
        if drift:
            head += ["> **Drift:** the configuration did not change, but the live systems did. "
                     "Applying this plan puts them back as the configuration declares.", ""]
        elif self.drift:
            head += ["No drift: the live systems match the configuration.", ""]
        head += [f"**{plan.summary()}**", ""]
        if plan.has_changes:
            kinds = sorted({c.kind for c in plan.changes})
            counts = Counter((c.action, c.kind) for c in plan.changes)
            head += ["| action | " + " | ".join(_esc(k) for k in kinds) + " | total |",
                     "|---|" + "---:|" * (len(kinds) + 1)]
            order = sorted(SUMMARY_ORDER, key=lambda a: not a.is_removal)
            for a in order:
                row = [counts[(a, k)] for k in kinds]
                if any(row):
                    head.append(f"| {a.symbol} {a.value} | " + " | ".join(str(n) for n in row) + f" | {sum(row)} |")
            head.append("")
        notes = [f"- {_esc(n)}" for n in plan.notes] + [f"- <code>{_esc(a)}</code> is protected: not removed"
                                                      for a in plan.protected]
        if notes:
            shown = notes[:MAX_NOTES]
            if len(notes) > MAX_NOTES:
                shown.append(f"- ... and {len(notes) - MAX_NOTES} more notes in the full plan")
            head += ["**Notes**", "", *shown, ""]
        return "\n".join(head) + "\n"

    def closing_note(self, summarised: int, omitted: int, total: int) -> str:
        parts = []
        if summarised:
            parts.append(f"{summarised} listed without their details")
        if omitted:
            parts.append(f"{omitted} not listed")
        return (f"\n> :scissors: {' and '.join(parts)} (of {total} changes) to fit GitHub's "
                f"{GITHUB_LIMIT:,}-character comment limit; {_esc(self.hint)}.\n")

    def render(self, plan: Plan) -> str:
        text = self.head(plan)
        ordered = sorted(plan.changes, key=lambda c: (not c.action.is_removal, c.sort_key()))
        total = len(ordered)
        reserve = len(self.closing_note(total, total, total)) + 64
        n_removals = sum(1 for c in ordered if c.action.is_removal)
        headings = {0: f"\n### :warning: Removals ({n_removals})\n\n" if n_removals else "",
                    n_removals: f"\n### Changes ({total - n_removals})\n\n" if total > n_removals else ""}
        compact = [compact_line(c) for c in ordered]
        # room kept for one-line entries of what follows, so a few huge blocks cannot crowd out the list
        suffix = [0] * (total + 1)
        for i in range(total - 1, -1, -1):
            suffix[i] = suffix[i + 1] + len(compact[i])
        keep_for_list = self.limit // 4

        i = 0
        budget = self.limit - reserve
        while i < total:  # details
            block = headings.get(i, "") + change_block(ordered[i])
            if len(text) + len(block) + min(suffix[i + 1], keep_for_list) > budget:
                break
            text += block
            i += 1
        detailed = i
        while i < total:  # one line each
            line = headings.get(i, "") + compact[i]
            if i == detailed and i not in headings:
                line = "\n" + line
            if len(text) + len(line) > budget:
                break
            text += line
            i += 1
        summarised, omitted = i - detailed, total - i
        if summarised or omitted:
            text += self.closing_note(summarised, omitted, total)
        return text
