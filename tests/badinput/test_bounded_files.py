"""Files named by a config or a command line: FIFOs and devices are refused before a byte is read, regular
files past their limit are refused with the size and the limit. Real files, real FIFOs (os.mkfifo); each
command runs in its own process with a timeout, so a read that blocks fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.errors import SecretError
from reconciler.files import SECRET_FILE_BYTES, FileRefused, read_limited
from reconciler.secrets import resolve

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    return p.returncode, p.stdout + p.stderr


def one_error_line(out: str) -> str:
    assert "Traceback" not in out and "internal error" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors, out
    return errors[0]


def config_with_token_file(d: Path, secret: str) -> Path:
    (d / "providers.yaml").write_text(
        "providers:\n  - name: p\n    type: scim\n    base_url: http://127.0.0.1:9/v2\n"
        f"    auth:\n      type: bearer\n      token: ${{file:{secret}}}\n")
    return d


@pytest.mark.parametrize("make", ["fifo", "dev-zero", "too-large"])
def test_secret_file_is_bounded(make: str, tmp_path: Path) -> None:
    if make == "fifo":
        path = tmp_path / "token"
        os.mkfifo(path)
        expected = "is a FIFO (named pipe); only regular files are read"
    elif make == "dev-zero":
        path = Path("/dev/zero")
        expected = "is a device; only regular files are read"
    else:
        path = tmp_path / "token"
        path.write_bytes(b"x" * (SECRET_FILE_BYTES + 1))
        expected = f"is {SECRET_FILE_BYTES + 1:,} bytes; the limit is {SECRET_FILE_BYTES:,} bytes"
    with pytest.raises(SecretError) as err:
        resolve(f"${{file:{path}}}", "token")
    assert expected in str(err.value)
    code, out = run("plan", str(config_with_token_file(tmp_path, str(path))), cwd=tmp_path)
    assert code == 1
    assert expected in one_error_line(out)


def test_show_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "plan.json"
    os.mkfifo(fifo)
    code, out = run("show", str(fifo), cwd=tmp_path)
    assert code == 1
    assert "FIFO" in one_error_line(out) or "not a regular file" in one_error_line(out)


def test_show_refuses_a_saved_plan_past_the_limit(tmp_path: Path) -> None:
    from reconciler.files import PLAN_FILE_BYTES
    big = tmp_path / "plan.json"
    with big.open("wb") as fh:
        fh.write(b'{"kind": "reconciler-plan", "changes": [')
        fh.truncate(PLAN_FILE_BYTES + 10)  # sparse: no disk, the size is what counts
    code, out = run("show", str(big), cwd=tmp_path)
    assert code == 1
    assert f"the limit is {PLAN_FILE_BYTES:,} bytes" in one_error_line(out)


def test_the_plan_limit_holds_the_plan_that_onboards_a_hundred_thousand_members(tmp_path: Path) -> None:
    """The size gate is for hostile files, not large orgs: the saved plan that onboards 100,000 members and
    10,000 teams into an empty provider is 69 MB (110,000 creates, measured); one of 70 MB passes the gate
    and is then read as JSON (here: not JSON, so that is the one error)."""
    big = tmp_path / "plan.json"
    with big.open("wb") as fh:
        fh.truncate(70 * 1000 * 1000)  # sparse
    code, out = run("show", str(big), cwd=tmp_path)
    assert code == 1
    line = one_error_line(out)
    assert "the limit is" not in line and "not a readable saved plan" in line, line


@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_usermaps_import_refuses_devices_and_fifos(source: str, tmp_path: Path) -> None:
    path = Path(source)
    if source == "fifo":
        path = tmp_path / "maps.csv"
        os.mkfifo(path)
    code, out = run("usermaps", "import", str(path), "--format", "csv", "--out", str(tmp_path / "out.yaml"),
                    cwd=tmp_path)
    assert code == 1
    line = one_error_line(out)
    assert "only regular files are read" in line, line
    assert not (tmp_path / "out.yaml").exists()


def test_config_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    code, out = run("validate", str(fifo), cwd=tmp_path)
    assert code == 1
    assert "not a regular file" in one_error_line(out)


def test_a_file_growing_past_the_limit_while_read_is_refused(tmp_path: Path) -> None:
    """The limit holds on the bytes read, not only on the size the stat saw."""
    f = tmp_path / "grow"
    f.write_bytes(b"x" * 10)
    assert read_limited(f, 10) == b"x" * 10
    f.write_bytes(b"x" * 11)
    with pytest.raises(FileRefused, match="11 bytes; the limit is 10 bytes"):
        read_limited(f, 10)
