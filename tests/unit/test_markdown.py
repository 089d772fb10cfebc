"""The PR-comment rendering: table, removals first, collapsible blocks, GitHub's size limit, drift."""

from __future__ import annotations

import re

from reconciler.plan.model import Action, AttributeChange, Change, Plan
from reconciler.render.markdown import GITHUB_LIMIT, HEADROOM, MAX_BLOCK_LINES, PlanMarkdown


def user(email: str, action: Action, **attrs: object) -> Change:
    addr = f'scim.platform.user["{email}"]'
    before = {"userName": email, "active": True, "title": None}
    if action is Action.CREATE:
        return Change("platform", "user", email, action, addr, after={"userName": email, **attrs})
    if action is Action.DELETE:
        return Change("platform", "user", email, action, addr, before=before, id="1")
    if action is Action.DEACTIVATE:
        return Change("platform", "user", email, action, addr, before=before, after=dict(before, active=False),
                      diff=[AttributeChange("active", True, False)], id="1")
    return Change("platform", "user", email, action, addr, before=before, after=dict(before, title="Eng"),
                  diff=[AttributeChange("title", None, "Eng")], id="1")


def group(name: str, before: list[str], after: list[str]) -> Change:
    return Change("platform", "group", name, Action.UPDATE, f'scim.platform.group["{name}"]',
                  before={"members": before}, after={"members": after},
                  diff=[AttributeChange("members", before, after)], id="g")


def test_summary_table_removals_first_and_collapsible_blocks() -> None:
    plan = Plan(changes=[user("a@acme.io", Action.CREATE, title="x"), user("b@acme.io", Action.UPDATE),
                         user("c@acme.io", Action.DEACTIVATE), group("appsec", ["b@acme.io"], ["a@acme.io"])])
    md = PlanMarkdown().render(plan)
    assert "**Plan: 1 to create, 2 to update, 1 to deactivate, 0 to delete.**" in md
    assert "| action | group | user | total |" in md
    assert "| - deactivate | 0 | 1 | 1 |" in md and "| ~ update | 1 | 1 | 2 |" in md
    table = md[md.index("| action"):md.index("\n\n", md.index("| action"))]
    assert table.index("deactivate") < table.index("create")  # removals lead the table too
    assert md.index("### :warning: Removals (1)") < md.index('c@acme.io') < md.index("### Changes (3)")
    assert md.count("<details>") == 4 and md.count("</details>") == 4
    assert "+ members: \"a@acme.io\"\n- members: \"b@acme.io\"" in md
    assert "```diff\n- title: null\n+ title: \"Eng\"\n```" in md
    assert ":scissors:" not in md


def test_thousands_of_changes_fit_githubs_limit_with_a_note() -> None:
    changes = [user(f"user{i:05d}@acme.io", Action.CREATE, title="Engineer " * 5) for i in range(5000)]
    changes += [user(f"gone{i:04d}@acme.io", Action.DEACTIVATE) for i in range(300)]
    md = PlanMarkdown(full_plan_hint="the full plan is at https://ci.example/run/1").render(Plan(changes=changes))
    assert len(md) <= GITHUB_LIMIT - HEADROOM  # the workflow adds its marker and still fits
    assert len(md) > GITHUB_LIMIT - HEADROOM - 2_000  # and the room is used, not wasted
    m = re.search(r":scissors: (\d+) listed without their details and (\d+) not listed \(of 5300 changes\)", md)
    assert m, md[-500:]
    detailed = md.count("<details>")
    listed, omitted = int(m.group(1)), int(m.group(2))
    assert detailed + listed + omitted == 5300
    assert detailed > 0 and listed > 0 and omitted > 0
    assert md.count("- <code>") == listed
    assert "https://ci.example/run/1" in md
    # removals come first, so every deactivation is shown before any create
    assert md.index("gone0299@acme.io") < md.index("user00000@acme.io")


def test_a_huge_change_is_cut_not_dropped() -> None:
    big = group("everyone", [], [f"u{i:05d}@acme.io" for i in range(20_000)])
    md = PlanMarkdown().render(Plan(changes=[big, user("z@acme.io", Action.UPDATE)]))
    assert len(md) <= GITHUB_LIMIT
    assert f"... {20_000 - MAX_BLOCK_LINES} more lines in the full plan" in md
    assert md.count("<details>") == 2 and ":scissors:" not in md


def test_limit_holds_for_any_budget() -> None:
    changes = [user(f"user{i:04d}@acme.io", Action.UPDATE) for i in range(400)]
    for limit in (2_000, 5_000, 20_000):
        md = PlanMarkdown(limit=limit).render(Plan(changes=changes, notes=[f"note {i}" for i in range(100)]))
        assert len(md) <= limit, limit
        assert "more notes in the full plan" in md


def test_values_cannot_break_out_of_the_code_block() -> None:
    c = Change("platform", "user", "x@acme.io", Action.UPDATE, 'scim.platform.user["x@acme.io"]',
               before={"title": "a"}, after={"title": "```\n</details><script>"},
               diff=[AttributeChange("title", "a", "``` </details><script>")], id="1")
    md = PlanMarkdown().render(Plan(changes=[c]))
    assert "````diff" in md and "\n````\n" in md  # a longer fence than the value's backticks


def test_drift_wording() -> None:
    plan = Plan(changes=[user("b@acme.io", Action.UPDATE)])
    md = PlanMarkdown(drift=True).render(plan)
    assert md.startswith("## reconciler plan — drift detected")
    assert "the configuration did not change, but the live systems did" in md
    assert "drift" not in PlanMarkdown().render(plan)
    assert "No drift" in PlanMarkdown(drift=True).render(Plan())
