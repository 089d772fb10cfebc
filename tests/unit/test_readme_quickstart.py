"""The README's quickstart is what CI runs: its two commands appear, as written, in .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_the_quickstart_is_two_commands() -> None:
    cmds = quickstart_commands()
    assert len(cmds) == 2, cmds
    assert all("\n" not in c for c in cmds), cmds
    assert "reconciler demo" in cmds[0] and cmds[1] == "bash scripts/test.sh"


def test_ci_runs_the_quickstart_lines_as_written() -> None:
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    for cmd in quickstart_commands():
        assert cmd in ci, f".ci/run does not run the README's {cmd!r} as written"


def test_nothing_reads_outside_the_repository() -> None:
    """A bare clone has nothing beside it: no project file may reach for a sibling folder."""
    offenders = []
    for path in ROOT.rglob("*"):
        if not path.is_file() or any(p in path.parts for p in (".git", ".venv", "__pycache__", "node_modules")):
            continue
        if path.suffix not in {".py", ".sh", ".yml", ".yaml", ".toml", ".md", ".json", ".cfg", ".ini"} \
                and path.name != "run":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if re.search(r"\.\./shared|\"shared\" */ *\"specs\"", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
