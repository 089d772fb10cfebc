"""Property tests: random and mutated configs either load or fail with a clean, located ConfigError.

Never a traceback, never another exception type, and every diagnostic names the file and a
line and column inside it.
"""

from __future__ import annotations

import copy
import io
import tempfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.cli import main
from reconciler.config.loader import load_config
from reconciler.errors import ConfigError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID: dict[str, Any] = {
    "providers": [{"name": "platform", "type": "scim", "base_url": "https://scim.acme.io/v2",
                   "auth": {"type": "bearer", "token": "${env:SCIM_TOKEN}"}, "removal": "deactivate",
                   "max_removals": 10, "concurrency": 4, "team_schema": {"urn": "urn:acme:team", "roles": "roles"}}],
    "members": [{"email": "alice@acme.io", "given_name": "Alice", "department": "AppSec", "roles": ["admin"]},
                {"email": "bob@acme.io", "manager": "alice@acme.io", "active": False,
                 "attributes": {"nickName": "bobby"}}],
    "teams": [{"name": "appsec", "members": ["alice@acme.io", "bob@acme.io"],
               "permissions": {"roles": ["triage"], "collections": ["web"]}}],
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["", "platform", "alice@acme.io", "${env:X}", "scim",
                                                           "bearer", "oauth2", "delete", "~", "yes", "0x1F"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)


def _dump(data: Any) -> str:
    y = YAML()
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    data: Any = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["replace", "delete", "add-key", "duplicate-item"]))
        if not path:
            data = draw(values) if how == "replace" else data
            continue
        parent = data
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        if how == "replace":
            parent[last] = draw(values)
        elif how == "delete":
            del parent[last]
        elif how == "add-key" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        elif how == "duplicate-item" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return data


def _check_load(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "config.yaml"
        f.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        try:
            load_config(f)
        except ConfigError as exc:
            assert exc.diagnostics
            for d in exc.diagnostics:
                assert d.file.endswith("config.yaml"), d
                assert d.line >= 1 and d.column >= 1, d
                assert d.message and "Traceback" not in d.message, d


@SETTINGS
@given(mutated())
def test_mutated_configs_load_or_fail_cleanly(data: Any) -> None:
    _check_load(_dump(data))


@SETTINGS
@given(values)
def test_random_documents_load_or_fail_cleanly(data: Any) -> None:
    _check_load(_dump(data))


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_load_or_fail_cleanly(raw: bytes) -> None:
    _check_load(raw)


@SETTINGS
@given(st.data())
def test_byte_level_mutations_of_a_valid_file_load_or_fail_cleanly(data: st.DataObject) -> None:
    raw = bytearray(_dump(VALID).encode())
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(raw) - 1))
        how = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if how == "flip":
            raw[at] = data.draw(st.sampled_from(list(b":-[]{}&*!|>'\"#%@` \t\n\x00\xff")))
        elif how == "delete":
            del raw[at]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    _check_load(bytes(raw))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_validate_command_never_shows_a_traceback(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "config.yaml"
        f.write_text(_dump(data))
        result = CliRunner().invoke(main, ["validate", str(f)])
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    if result.exit_code == 1:
        problems = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert problems and all("config.yaml:" in line for line in problems), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_the_valid_seed_is_valid() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "config.yaml"
        f.write_text(_dump(VALID))
        config = load_config(f)
    assert [m.email for m in config.members] == ["alice@acme.io", "bob@acme.io"]
