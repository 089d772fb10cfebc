"""The terminal plan: long values spread over lines at the terminal's width, none without one; notes
shown once per output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.plan.model import Action, AttributeChange, Change, Plan
from reconciler.render.text import PlanText, fit, terminal_width, wrap, wrap_at_commas

PRIORITIES = {"critical": {"id": "1", "name": "Highest"}, "exceptional": {"id": "1", "name": "Highest"},
              "high": {"id": "2", "name": "High"}, "low": {"id": "4", "name": "Low"},
              "medium": {"id": "3", "name": "Medium"}}
NOTE = ("scim.platform: team permissions (roles, collections) are not managed on this provider: core SCIM "
        "Groups cannot express them (declare team_schema where the provider has an extension)")


def integration(after: dict[str, Any]) -> Plan:
    c = Change(provider="acme-cloud", kind="integration", key="web", action=Action.CREATE,
               address='jira.acme-cloud.integration["web"]', after=after)
    return Plan(changes=[c], notes=[NOTE])


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_no_line_is_wider_than_the_terminal(width: int) -> None:
    text = PlanText(width=width).render(integration({"priorities": PRIORITIES, "labels": ["a", "b"]}))
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, too_wide


def test_a_spread_map_is_the_same_json() -> None:
    lines = fit("      + priorities: ", PRIORITIES, 60)
    assert len(lines) > 1 and lines[0] == "      + priorities: {" and lines[-1] == "      }"
    assert json.loads("".join(lines).split(": ", 1)[1]) == PRIORITIES
    assert all(line.startswith("          ") for line in lines[1:-1])  # four in from the prefix's indent


def test_without_a_width_every_value_stays_on_one_line() -> None:
    text = PlanText().render(integration({"priorities": PRIORITIES}))
    assert "      + priorities: " + json.dumps(PRIORITIES, sort_keys=True) in text
    assert f"  - {NOTE}\n" in text


def test_what_fits_is_not_spread() -> None:
    assert fit("  + a: ", {"x": 1}, 60) == ['  + a: {"x": 1}']
    assert fit("  + a: ", "a long scalar " * 10, 60) == ['  + a: ' + json.dumps("a long scalar " * 10)]


def test_an_update_too_wide_puts_the_new_value_on_its_own_line() -> None:
    c = Change(provider="p", kind="user", key="k", action=Action.UPDATE, address='scim.p.user["k"]',
               before={}, after={}, diff=[AttributeChange("enterprise:department", None, "Application Security")])
    lines = PlanText(width=46).change_lines(c)
    assert lines[-2:] == ["      ~ enterprise:department: null ->", '          "Application Security"']


def test_notes_wrap_with_a_hanging_indent() -> None:
    lines = wrap(NOTE, 60, "  - ", "    ")
    assert len(lines) > 1 and all(len(x) <= 60 for x in lines)
    assert lines[0].startswith("  - scim.platform:") and all(x.startswith("    ") for x in lines[1:])
    assert " ".join(x.strip() for x in lines)[2:] == NOTE


def test_summaries_break_only_after_a_comma() -> None:
    assert wrap_at_commas("Plan: 5 to create, 1 to update, 1 to deactivate, 0 to delete.", 60) == [
        "Plan: 5 to create, 1 to update, 1 to deactivate,", "  0 to delete."]


def test_notes_already_shown_in_the_same_output_are_counted_not_repeated() -> None:
    shown: set[str] = set()
    renderer = PlanText(notes_shown=shown)
    first = renderer.render(Plan(notes=["a note", "b note"]))
    assert "  - a note\n  - b note\n" in first
    second = renderer.render(Plan(notes=["a note", "b note"]))
    assert "a note" not in second and "Notes: the same as above (2)." in second
    third = renderer.render(Plan(notes=["a note", "c note"]))
    assert "  - c note\n  - and the 1 shown above\n" in third and "a note" not in third


def test_terminal_width_from_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    assert terminal_width() == 60
    monkeypatch.setenv("COLUMNS", "10")
    assert terminal_width() == 40  # narrower than that reads worse, not better
    monkeypatch.delenv("COLUMNS")
    assert terminal_width() is None  # pytest's stdout is not a terminal


def many(n: int) -> Plan:
    changes = [Change(provider="platform", kind="user", key=f"u{i}@example.com", action=Action.CREATE,
                      address=f'scim.platform.user["u{i}@example.com"]', after={"userName": f"u{i}@example.com"})
               for i in range(n)]
    return Plan(changes=changes, notes=[NOTE])


def test_the_text_is_made_a_change_at_a_time() -> None:
    """The CLI writes the plan as it is made (cliout.echo_chunks): a plan of 110,000 creates is never held
    whole as text. The pieces are the rendering, byte for byte."""
    plan = many(50)
    pieces = list(PlanText(width=80).chunks(plan))
    assert len(pieces) == 1 + 50 + 1  # the heading, each change, the notes and summary
    assert "".join(pieces) == PlanText(width=80).render(plan)
    assert all(p.count("scim.platform.user[") == 2 for p in pieces[1:-1])  # its header and its symbol line


def test_the_cli_writes_pieces_in_batches_and_redacts_each(capsys: pytest.CaptureFixture[str]) -> None:
    from reconciler.cliout import echo_chunks
    from reconciler.secrets import remember

    secret = "s3cr3t-value-for-the-chunk-test"
    remember(secret)
    pieces = [f"line {i} {secret if i % 7 == 0 else ''}\n" for i in range(1000)]
    echo_chunks(iter(pieces), limit=256)
    out = capsys.readouterr().out
    assert secret not in out
    assert out == "".join(pieces).replace(secret, "***")
