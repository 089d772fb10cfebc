"""Help texts that say what the commands do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.providers.registry import SYSTEMS
from tests.conftest import ROOT


def help_of(*command: str) -> str:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_check_help_names_every_kind_of_system_it_checks() -> None:
    text = help_of("check").lower()
    for system in SYSTEMS:  # every live system checks its connections
        kind = system.prefix.rstrip(".")
        assert kind in text, f"check also checks {kind} connections; its help does not say so"


def test_sandbox_help_lists_both_servers() -> None:
    text = help_of("sandbox")
    assert "jira" in text and "scim" in text
    assert "18451" in help_of("sandbox", "scim")  # where examples/ point


def completion_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Shell completion", 1)[1].split("\n#", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_the_documented_completion_scripts_are_produced() -> None:
    lines = completion_lines()
    shells = [m.group(1) for line in lines if (m := re.search(r"_RECONCILER_COMPLETE=(\w+)_source", line))]
    assert shells == ["bash", "zsh", "fish"], lines
    # the installed entry point answers the variable (its name, reconciler, is what click derives it from)
    exe = str(Path(sys.executable).parent / "reconciler")
    out = subprocess.run([exe], env={**os.environ, "_RECONCILER_COMPLETE": "bash_source"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "_RECONCILER_COMPLETE=bash_complete" in out.stdout, out.stdout + out.stderr
    for shell in shells:  # in process, as that entry point runs it
        res = CliRunner().invoke(main, [], env={"_RECONCILER_COMPLETE": f"{shell}_source"}, prog_name="reconciler")
        assert res.exit_code == 0 and "_RECONCILER_COMPLETE" in res.output, (shell, res.output)
    # and completing `reconciler sa<Tab>` in bash offers the sandbox command
    res = CliRunner().invoke(main, [], prog_name="reconciler", env={
        "_RECONCILER_COMPLETE": "bash_complete", "COMP_WORDS": "reconciler sa", "COMP_CWORD": "1"})
    assert "plain,sandbox" in res.output.splitlines(), res.output


def test_what_the_cli_declares_without_importing_the_engine_matches_the_engine() -> None:
    """cli.py names the plan formats, the audit log's default path and its lazily loaded commands itself, so
    that `reconciler validate` starts without the engine, the systems and the renderers."""
    from reconciler import cli
    from reconciler.audit import DEFAULT_PATH
    from reconciler.render import RENDERERS

    assert cli.FORMATS == tuple(sorted(RENDERERS))
    assert cli.DEFAULT_AUDIT_LOG == DEFAULT_PATH
    assert {"usermaps", "validate", "plan"} <= set(cli.main.list_commands(click.Context(cli.main)))


def test_validate_loads_neither_the_systems_nor_rich() -> None:
    code = ("import sys; from reconciler.cli import main\n"
            "try:\n    main(['validate', 'examples/quickstart'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('scim2_models', 'rich', 'httpx', 'reconciler.session', 'reconciler.render')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
