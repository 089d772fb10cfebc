"""The command line starts the three ways users start it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


@pytest.mark.parametrize("argv", [["-m", "reconciler"], ["-m", "reconciler.cli"]])
def test_module_entry_points_validate(argv: list[str], tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, *argv, "validate", str(QUICKSTART)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "Configuration is valid" in r.stdout
