"""Help texts that say what the commands do."""

from __future__ import annotations

from click.testing import CliRunner

from reconciler.cli import main
from reconciler.session import PLANNER_MODULES


def help_of(*command: str) -> str:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_check_help_names_every_kind_of_system_it_checks() -> None:
    text = help_of("check").lower()
    assert "scim" in text
    for module in PLANNER_MODULES:  # each tracker's planner also checks its connections
        tracker = module.rsplit(".", 1)[1]
        assert tracker in text, f"check also checks {tracker} connections; its help does not say so"


def test_sandbox_help_lists_both_servers() -> None:
    text = help_of("sandbox")
    assert "jira" in text and "scim" in text
    assert "18451" in help_of("sandbox", "scim")  # where examples/ point
