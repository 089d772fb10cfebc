"""`reconciler demo` reads well and can be repeated by hand: where its starting state comes from, paths
as the user would type them, each note once, apply lines in plan order, lines fitted to the terminal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.demo import example_dir
from reconciler.demo_common import shown_path
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def demo(monkeypatch: pytest.MonkeyPatch, columns: int | None = None) -> str:
    monkeypatch.chdir(ROOT)
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(columns))
    result = CliRunner().invoke(main, ["demo", "--no-color"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_starting_state_is_explained_before_the_first_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    head = demo(monkeypatch).split("$ reconciler plan", 1)[0]
    erin = next(line for line in head.splitlines() if "erin@acme.io" in line)
    assert "managed by reconciler earlier" in erin and "removed from the config" in head
    assert "reconciler sandbox scim" in head and "export SCIM_TOKEN=demo-token" in head


def test_apply_lines_follow_the_plan_and_two_runs_print_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    first = demo(monkeypatch)
    assert demo(monkeypatch) == first
    for part in first.split("$ reconciler apply ")[1:]:
        plan_order = re.findall(r"^  [+~-] (\S+)$", first.split(part)[0].rsplit("$ reconciler plan", 1)[1], re.M)
        applied = re.findall(r"^(\S+): \w+ done$", part.split("\nApply complete", 1)[0], re.M)
        assert applied and applied == plan_order


def test_each_note_is_printed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    out = demo(monkeypatch)
    notes = re.findall(r"^  - (.+)$", out, re.M)
    assert notes and len(notes) == len(set(notes)), notes
    assert "Notes: the same as above" in out


@pytest.mark.parametrize("columns", [60, 120])
def test_lines_fit_the_terminal(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    out = demo(monkeypatch, columns)
    # what cannot be split: one string value, or an apply line naming one address
    unsplittable = re.compile(r'^ +[+-] [\w:.]+: "[^"]*"$|^\S.*\]: \w+ done$')
    too_wide = [x for x in out.splitlines() if len(x) > columns and not unsplittable.match(x)]
    assert not too_wide, too_wide


def test_paths_are_the_ones_to_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = example_dir("full")
    monkeypatch.chdir(tmp_path)
    assert shown_path(bundled) == bundled  # nothing here: the installed copy, which runs as printed
    shutil.copytree(bundled, tmp_path / "examples" / "full")
    assert shown_path(bundled) == Path("examples/full")  # a clone: what the user would type
    (tmp_path / "examples" / "full" / "teams.yaml").write_text("teams: []\n")
    assert shown_path(bundled) == bundled  # an edited copy is not the example the demo runs


def test_the_demos_error_names_the_path_it_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    out = demo(monkeypatch)
    error = out.split("error: ", 1)[1]
    assert "  - examples/full/integrations.yaml:15:13: integration 'web-findings'" in error
    assert "site-packages" not in out and "_examples" not in out
