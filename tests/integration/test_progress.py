"""Progress of reads and applies over a second: a live display on a terminal, plain lines when piped,
nothing with JSON output; the plan and apply output on stdout stays as it is without it."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler import progress
from reconciler.cli import main
from reconciler.execute import Outcome
from reconciler.plan.model import Action, Change
from reconciler.providers._http import CallRecord
from tests.conftest import ROOT
from tests.faultproxy import Fault, fault_proxy
from tests.servers import ScimServer

pytestmark = pytest.mark.integration
WriteConfig = Callable[..., Path]
ESC = "\x1b"
MEMBERS = [f"m{i}@acme.io" for i in range(6)]


def text(shown: str) -> str:
    """What a terminal shows as text: without the escape sequences (colour, cursor)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def page(provider: str = "platform", path: str = "/v2/Users") -> CallRecord:
    return CallRecord(provider, "", "GET", path, 200, 1.0)


# --- the display itself -----------------------------------------------------------------------------

def test_plain_lines_for_a_slow_read_and_nothing_for_a_fast_one(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    p = progress.Progress("plain", stream=out)
    with p.reading():
        p.record(page())
    assert out.getvalue() == "", "a read under a second shows nothing"

    monkeypatch.setattr(progress, "DELAY", 0.05)
    monkeypatch.setattr(progress, "PLAIN_EVERY", 10.0)
    with p.reading():
        p.record(page())
        p.record(page("acme-cloud", "/rest/api/3/project/SEC"))
        time.sleep(0.3)
        p.record(page())
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(r"progress: reading: acme-cloud \(1 page\(s\)\), platform \(1 page\(s\)\) \(0\.\d s\)",
                        lines[0]), lines
    assert re.fullmatch(r"progress: read: acme-cloud \(1 page\(s\)\), platform \(2 page\(s\)\) \(0\.\d s\)",
                        lines[1]), lines
    assert ESC not in out.getvalue()


def test_tty_bar_counts_changes_done_of_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "DELAY", 0.0)
    out = io.StringIO()
    p = progress.Progress("tty", stream=out)
    changes = [Change("platform", "user", m, Action.CREATE, f'scim.platform.user["{m}"]', after={"userName": m})
               for m in MEMBERS]
    with p.applying(len(changes)):
        time.sleep(0.2)
        for n, c in enumerate(changes):
            p.outcome(Outcome(c, ok=n != 2, error=None if n != 2 else "boom"))
    shown = out.getvalue()
    assert ESC + "[" in shown  # a live display: cursor control
    assert "applying" in text(shown) and "6/6 changes, 1 failed" in text(shown), shown


def test_off_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "DELAY", 0.0)
    out = io.StringIO()
    p = progress.Progress("off", stream=out)
    with p.reading():
        p.record(page())
        time.sleep(0.1)
    assert out.getvalue() == ""


@pytest.mark.parametrize("setting, stderr_tty, expected", [
    ("auto", False, "plain"), ("auto", True, "tty"), ("tty", False, "tty"), ("off", True, "off"),
    ("plain", True, "plain"), ("nonsense", False, "plain"),
])
def test_mode(monkeypatch: pytest.MonkeyPatch, setting: str, stderr_tty: bool, expected: str) -> None:
    monkeypatch.setenv("RECONCILER_PROGRESS", setting)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: stderr_tty)
    assert progress.progress_mode() == expected
    assert progress.progress_mode(quiet=True) == "off"


# --- the commands -----------------------------------------------------------------------------------

@pytest.fixture
def cfg(scim: ScimServer, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(progress, "DELAY", 0.0)  # every read and apply counts as slow
    return write_config(scim.base_url, members=MEMBERS, teams=[{"name": "appsec", "members": MEMBERS[:2]}],
                        bulk="never")


def test_apply_on_a_terminal_shows_reads_and_a_bar_on_stderr_only(cfg: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_PROGRESS", "tty")
    r = run("apply", str(cfg), "--auto-approve", "--no-color", "--audit-log", str(tmp_path / "a.jsonl"))
    assert r.exit_code == 0, r.output
    assert "reading platform" in text(r.stderr) and "applying" in text(r.stderr), r.stderr
    assert "7/7 changes" in text(r.stderr), r.stderr
    assert ESC in r.stderr
    assert ESC not in r.stdout and "Apply complete: 7 created" in r.stdout


def test_piped_plan_and_apply_print_plain_lines_without_escape_codes(cfg: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_PROGRESS", "auto")  # stderr is not a terminal here
    plan = run("plan", str(cfg), "--no-color")
    assert plan.exit_code == 0, plan.output
    assert re.search(r"^progress: read: platform \(\d+ page\(s\)\)", plan.stderr, re.M), plan.stderr
    r = run("apply", str(cfg), "--auto-approve", "--no-color", "--audit-log", str(tmp_path / "a.jsonl"))
    assert r.exit_code == 0, r.output
    assert "progress: applied: 7 of 7 change(s) done" in r.stderr, r.stderr
    assert ESC not in plan.output + r.output
    assert "progress" not in plan.stdout + r.stdout


def test_nothing_with_json_output(cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_PROGRESS", "tty")  # even where a display is forced
    plan = run("plan", str(cfg), "--format", "json")
    applied = run("apply", str(cfg), "--auto-approve", "--json", "--audit-log", str(tmp_path / "a.jsonl"))
    assert plan.exit_code == 0 and applied.exit_code == 0, plan.output + applied.output
    assert plan.stderr == "" and applied.stderr == ""
    for_comparison = run("plan", str(cfg), "--no-color")
    assert "reading platform" in text(for_comparison.stderr)  # the same config, not as JSON: shown


# --- a real terminal ---------------------------------------------------------------------------------

def _in_a_pty(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(10), out.decode(errors="replace")


def test_a_slow_plan_on_a_real_terminal(scim: ScimServer, write_config: WriteConfig) -> None:
    """Reads slowed to over a second (DELAY as shipped; /Users and /Groups are read at once, so each page
    is delayed past it): on a pseudo-terminal the live display says what
    it reads, and goes before the plan is printed. (Piped: test_piped_plan_and_apply_print_plain_lines...)"""
    env = {**os.environ, "SCIM_TOKEN": scim.token, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "100"}
    env.pop("RECONCILER_PROGRESS")
    cmd = [sys.executable, "-m", "reconciler", "plan", "--no-color"]
    with fault_proxy(scim.base_url, [Fault("delay", path="/(Users|Groups)", seconds=1.2, methods=("GET",))]) as proxy:
        rc, shown = _in_a_pty([*cmd, str(write_config(proxy.url, members=MEMBERS))], env)
    assert rc == 0, shown
    assert re.search(r"reading platform \d+ page\(s\) /v2/", text(shown)) and ESC + "[" in shown, shown
    assert ESC not in shown[shown.index("reconciler will perform"):], "the display is gone before the plan"
    assert "Plan: 6 to create" in shown, shown
