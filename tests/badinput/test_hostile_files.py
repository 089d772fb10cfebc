"""Hostile config files: each is refused with a clear, located error, through `reconciler validate`.

No timing is asserted; that each case returns at all is the point (an alias bomb or deep
nesting that the parser followed would not).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.config.loader import load_config
from reconciler.errors import ConfigError

ALIAS_BOMB = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["members: *i", ""])

CASES: dict[str, tuple[bytes, str]] = {
    "alias bomb": (ALIAS_BOMB.encode(), "aliases of mappings or lists are not allowed"),
    "merge key": (b"base: &b {given_name: A}\nmembers:\n  - {<<: *b, email: a@acme.io}\n",
                  "not allowed in config files"),
    "deep flow nesting": (b"members: " + b"[" * 50_000 + b"]" * 50_000 + b"\n", "nesting is deeper than 64"),
    "deep block nesting": (("members:\n" + "".join("  " * i + "- x:\n" for i in range(1, 400))).encode(),
                           "nesting"),
    "python/object tag": (b"members:\n  - !!python/object/apply:os.system ['touch /tmp/pwned']\n",
                          "python/object/apply:os.system is not allowed"),
    "python/name tag": (b"members: !!python/name:os.system\n", "is not allowed"),
    "custom tag": (b"members:\n  - !member {email: a@acme.io}\n", "!member is not allowed"),
    "binary tag": (b"members: !!binary aGVsbG8=\n", "not allowed"),
    "non-UTF-8 bytes": (b"members:\n  - email: caf\xe9@acme.io\n", "byte 0xe9 is not valid UTF-8"),
    "UTF-16": ("members: []\n".encode("utf-16"), "not valid UTF-8"),
    "NUL bytes": (b"members:\n  - email: a\x00@acme.io\n", "invalid YAML"),
    "not a mapping": (b"- just\n- a\n- list\n", "must be a mapping"),
    "timestamp": (b"members:\n  - email: a@acme.io\n    title: 2024-01-01\n", "quote it"),
    "duplicate key": (b"members:\n  - email: a@acme.io\n    email: b@acme.io\n", "duplicate key"),
}


def _validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file_is_refused_with_a_located_error(name: str, tmp_path: Path) -> None:
    content, expected = CASES[name]
    f = tmp_path / "config.yaml"
    f.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert all(d.line >= 1 and d.column >= 1 and d.file.endswith("config.yaml") for d in err.value.diagnostics)
    assert expected in str(err.value)
    code, output = _validate(f)
    assert code == 1
    assert "Traceback" not in output
    assert f"config.yaml:{err.value.diagnostics[0].line}:{err.value.diagnostics[0].column}: " in output
    assert expected in output


def test_a_50_mb_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    f = tmp_path / "huge.yaml"
    with f.open("w") as fh:
        fh.write("members:\n")
        line = "  - email: someone@acme.io\n"
        fh.write(line * (50 * 1024 * 1024 // len(line) + 1))
    assert f.stat().st_size > 50 * 1024 * 1024
    code, output = _validate(f)
    assert code == 1
    assert "huge.yaml:1:1: file is" in output and "at most" in output


def test_a_file_that_is_not_a_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    d = tmp_path / "config"
    d.mkdir()
    (d / "dir.yaml").mkdir()  # a directory with a config-file name
    (d / "empty.yaml").write_text("")
    code, output = _validate(d)
    assert "Traceback" not in output
    assert code in (0, 1)


def test_aliases_of_plain_values_are_refused_too(tmp_path: Path) -> None:
    """A 1 MB value named 5,000 times validated and then took plan down with MemoryError."""
    f = tmp_path / "config.yaml"
    f.write_text("members:\n  - email: a@acme.io\n    department: &d Security\n"
                 "  - email: b@acme.io\n    department: *d\n")
    with pytest.raises(ConfigError, match=r"config\.yaml:5:17: YAML aliases of values are not allowed in config "
                                          r"files; write the value where it is used \(\*d\)"):
        load_config(f)


def test_a_huge_scalar_named_thousands_of_times_is_refused_at_once(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    big = "x" * 1_000_000
    f.write_text(f"members:\n  - email: a@acme.io\n    title: &a {big}\n"
                 "teams:\n  - name: t\n    members: [" + ", ".join(["*a"] * 5000) + "]\n")
    with pytest.raises(ConfigError, match="aliases of values are not allowed"):
        load_config(f)


def test_100000_wrong_roles_are_translated_in_linear_time(tmp_path: Path) -> None:
    """Each wrong item's error was checked against every other one: 40,000 items took 127 s. A generous
    bound on CPU only (bench/linear.py measures the ratio per item at 10,000 and 100,000)."""
    import time
    f = tmp_path / "config.yaml"
    f.write_text("members:\n  - email: a@acme.io\n    roles: [" + ", ".join(["1"] * 100_000) + "]\n")
    t0 = time.process_time()
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert time.process_time() - t0 < 60
    assert len(err.value.diagnostics) == 100_000
    assert str(err.value.diagnostics[0]).startswith(f"{f}:3:13: 'roles[0]': expected text")
