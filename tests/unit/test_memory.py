"""tune_malloc: glibc's malloc is asked to map large blocks on their own and to keep two arenas (see
reconciler/memory.py for the figures); the environment's own settings and RECONCILER_MALLOC=default win."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.memory import tune_malloc

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="the settings are glibc's")


@glibc
def test_on_glibc_both_settings_are_made(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX", "RECONCILER_MALLOC"):
        monkeypatch.delenv(name, raising=False)
    assert tune_malloc() == {"MALLOC_MMAP_THRESHOLD_": 128 * 1024, "MALLOC_ARENA_MAX": 2}


@glibc
def test_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILER_MALLOC", raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert tune_malloc() == {"MALLOC_MMAP_THRESHOLD_": 128 * 1024}
    monkeypatch.setenv("RECONCILER_MALLOC", "default")
    assert tune_malloc() == {}


@glibc
def test_the_command_line_tunes_before_it_runs() -> None:
    """Every command runs main's callback first: a subprocess shows what it set."""
    code = ("import reconciler.memory as m, reconciler.cli as c, sys\n"
            "seen = []\n"
            "orig = m.tune_malloc\n"
            "m.tune_malloc = lambda: seen.append(orig()) or seen[-1]\n"
            "try:\n    c.main(['validate', sys.argv[1]], standalone_mode=False)\n"
            "finally:\n    print('TUNED', seen)\n")
    out = subprocess.run([sys.executable, "-c", code, str(QUICKSTART)], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    assert "TUNED [{'MALLOC_MMAP_THRESHOLD_': 131072, 'MALLOC_ARENA_MAX': 2}]" in out
