"""The pull-request rendering: a summary table, removals first, each change in a collapsible block.

Always fits GitHub's 65,536-character comment limit: past a budget, details
are cut and a note says how many changes were left out.
"""

from __future__ import annotations

from collections import Counter

from reconciler.plan.model import SUMMARY_ORDER, Action, Change, Plan
from reconciler.render.text import list_delta, value

GITHUB_LIMIT = 65_536
_RESERVE = 1_500  # for the closing note and the footer


def _change_block(c: Change) -> str:
    lines = [f"<details><summary><code>{c.action.symbol} {_esc(c.address)}</code> ({c.action.value})</summary>",
             "", "```diff"]
    if c.action is Action.CREATE:
        lines += [f"+ {k}: {value(v)}" for k, v in (c.after or {}).items() if v is not None and v != []]
    elif c.action is Action.DELETE:
        lines += [f"- {k}: {value(v)}" for k, v in (c.before or {}).items() if v is not None and v != []]
    else:
        for d in c.diff:
            delta = list_delta(d.before, d.after)
            if delta is not None:
                lines += [f"+ {d.path}: {value(x)}" for x in delta[0]]
                lines += [f"- {d.path}: {value(x)}" for x in delta[1]]
            else:
                lines += [f"- {d.path}: {value(d.before)}", f"+ {d.path}: {value(d.after)}"]
    lines += ["```", "", "</details>", ""]
    return "\n".join(lines)


def _esc(s: str) -> str:
    return s.replace("<", "&lt;").replace(">", "&gt;")


class PlanMarkdown:
    def __init__(self, colour: bool = False, *, title: str = "reconciler plan", drift: bool = False,
                 full_plan_hint: str = "the full plan is in the workflow run's artifacts",
                 limit: int = GITHUB_LIMIT) -> None:
        self.title, self.drift, self.hint, self.limit = title, drift, full_plan_hint, limit

    def render(self, plan: Plan) -> str:
        head = [f"## {self.title}" + (" — drift detected" if self.drift and plan.has_changes else ""), ""]
        if self.drift and plan.has_changes:
            head += ["> **Drift:** the configuration did not change, but the live systems did. "
                     "Applying this plan puts them back as the configuration declares.", ""]
        head += [f"**{plan.summary()}**", ""]
        if plan.has_changes:
            kinds = sorted({c.kind for c in plan.changes})
            counts = Counter((c.action, c.kind) for c in plan.changes)
            head += ["| action | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
            for a in SUMMARY_ORDER:
                if any(counts[(a, k)] for k in kinds):
                    head.append(f"| {a.symbol} {a.value} | " + " | ".join(str(counts[(a, k)]) for k in kinds) + " |")
            head.append("")
        notes = [f"- {_esc(n)}" for n in plan.notes] + [f"- `{_esc(a)}` is protected: not removed"
                                                      for a in plan.protected]
        if notes:
            head += ["**Notes**", "", *notes, ""]
        text = "\n".join(head)
        ordered = sorted(plan.changes, key=lambda c: (not c.action.is_removal, c.sort_key()))
        if any(c.action.is_removal for c in ordered):
            text += "\n### :warning: Removals\n\n"
        shown = 0
        in_removals = True
        for c in ordered:
            if in_removals and not c.action.is_removal:
                in_removals = False
                text += "\n### Changes\n\n"
            block = _change_block(c)
            if len(text) + len(block) > self.limit - _RESERVE:
                break
            text += block
            shown += 1
        left = len(ordered) - shown
        if left:
            text += (f"\n> :scissors: {left} of {len(ordered)} changes are not shown here to fit the "
                     f"{self.limit:,}-character comment limit; {self.hint}.\n")
        return text
