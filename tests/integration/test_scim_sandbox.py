"""`reconciler sandbox scim`: the demo's SCIM server on a real socket, so the demo's commands run by hand."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from reconciler.cli import main
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def serve(*extra: str) -> Iterator[tuple[str, list[str]]]:
    """`reconciler sandbox scim --port 0`; yields its base URL and the lines it printed before serving."""
    exe = Path(sys.executable).parent / "reconciler"
    proc = subprocess.Popen([str(exe), "sandbox", "scim", "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("(a sandbox credential"):
                break
        m = re.search(r" on (http://127\.0\.0\.1:\d+/v2) ", lines[0])
        assert m, lines
        yield m.group(1), lines
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def served() -> Iterator[tuple[str, list[str]]]:
    yield from serve()


@pytest.fixture
def served_empty() -> Iterator[tuple[str, list[str]]]:
    yield from serve("--empty")


def quickstart_at(tmp_path: Path, url: str) -> Path:
    """A copy of examples/quickstart whose provider points at ``url`` (the test's port, not 18451)."""
    copy = tmp_path / "quickstart"
    shutil.copytree(ROOT / "examples" / "quickstart", copy)
    providers = copy / "providers.yaml"
    text = providers.read_text()
    assert "http://127.0.0.1:18451/v2" in text
    providers.write_text(text.replace("http://127.0.0.1:18451/v2", url))
    return copy


def plan_section(demo_output: str) -> str:
    """The demo's first plan of examples/quickstart, as `reconciler plan` prints it."""
    first = demo_output.split("$ reconciler plan examples/quickstart\n\n", 1)[1]
    return first.split("\n$ reconciler apply", 1)[0]


def test_prints_the_export_line_and_the_command(served: tuple[str, list[str]]) -> None:
    url, lines = served
    assert "export SCIM_TOKEN=demo-token" in lines
    assert "reconciler plan examples/quickstart" in lines
    assert any(line.strip().startswith("erin@acme.io ") and "removed from the config" in line for line in lines)
    # a port other than the examples' one is said, with what to change
    assert any("set base_url in providers.yaml to " + url in line for line in lines), lines


def test_the_plan_by_hand_is_the_demos_first_plan(served: tuple[str, list[str]], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url, lines = served
    token = next(line.split("=", 1)[1] for line in lines if line.startswith("export SCIM_TOKEN="))
    monkeypatch.setenv("SCIM_TOKEN", token)
    monkeypatch.delenv("COLUMNS", raising=False)
    by_hand = CliRunner().invoke(main, ["plan", str(quickstart_at(tmp_path, url)), "--no-color"])
    assert by_hand.exit_code == 0, by_hand.output
    monkeypatch.chdir(ROOT)  # the demo prints examples/quickstart when run in a clone
    demo = CliRunner().invoke(main, ["demo", "--no-color"])
    assert demo.exit_code == 0, demo.output
    monkeypatch.delenv("SCIM_TOKEN")
    assert 'scim.platform.user["erin@acme.io"] will be deactivated' in by_hand.stdout
    assert by_hand.stdout == plan_section(demo.stdout)


def test_empty_starts_with_no_users(served_empty: tuple[str, list[str]]) -> None:
    url, lines = served_empty
    assert "It starts with no users and no groups." in lines
    users = httpx.get(url + "/Users", headers={"Authorization": "Bearer demo-token"}, timeout=10).json()
    assert users["totalResults"] == 0


def test_a_port_in_use_is_a_clean_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = CliRunner().invoke(main, ["sandbox", "scim", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "Traceback" not in result.output
