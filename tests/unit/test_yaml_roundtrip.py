"""What reconciler writes as YAML reads back as the same text (issue 14: YAML 1.1 read, 1.2 written).

The reader resolves plain scalars the YAML 1.1 way (NO, on, yes are booleans); ruamel.yaml writes 1.2
and left them plain, so an imported `department: NO` came back as false and the config did not load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config.loader import load_config
from reconciler.config.yamlout import reads_as_text
from reconciler.importer import render_yaml
from reconciler.usermaps.edit import add_identities
from reconciler.usermaps.formats import PortableMap, write_yaml

# text a config field can hold: no control, format (bidi, zero-width), surrogate or separator characters,
# no secret reference
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn")), min_size=1,
               max_size=24).filter(lambda s: "${" not in s and s == s.strip())
YAML_11_TRAPS = ["NO", "no", "Yes", "on", "OFF", "y", "n", "~", "null", "0x1F", "0o17", "017", "1_000", "1e3",
                 ".inf", "2024-01-01", "2024-01-01T10:00:00Z", "12:30", "<<", "=", "true", "1.0", "-", "?"]


def member_file(tmp: Path, value: str) -> Path:
    d = tmp / "c"
    d.mkdir(exist_ok=True)
    (d / "members.yaml").write_text(render_yaml("members", [{"email": "a@acme.io", "department": value,
                                                             "title": value}], "p"))
    return d


@pytest.mark.parametrize("value", YAML_11_TRAPS)
def test_import_writes_what_reads_back_as_the_same_text(tmp_path: Path, value: str) -> None:
    m = load_config(member_file(tmp_path, value)).members[0]
    assert (m.department, m.title) == (value, value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=TEXT)
def test_any_text_import_writes_reads_back_the_same(tmp_path: Path, value: str) -> None:
    m = load_config(member_file(tmp_path, value)).members[0]
    assert (m.department, m.title) == (value, value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ident=st.one_of(st.sampled_from(YAML_11_TRAPS), TEXT))
def test_usermaps_written_by_import_and_resolve_read_back_the_same(tmp_path: Path, ident: str) -> None:
    d = tmp_path / "u"
    d.mkdir(exist_ok=True)
    (d / "members.yaml").write_text("members:\n  - email: a@acme.io\n  - email: b@acme.io\n")
    (d / "user_maps.yaml").write_text(write_yaml([PortableMap("a@acme.io", {"jenkins": [ident]})]))
    assert load_config(d).user_maps[0].identities["jenkins"] == ident
    add_identities(load_config(d), "ci", {"a@acme.io": ident, "b@acme.io": ident + "2"})  # resolve --write
    maps = {um.member: dict(um.identities) for um in load_config(d).user_maps}
    assert maps == {"a@acme.io": {"jenkins": ident, "ci": ident}, "b@acme.io": {"ci": ident + "2"}}


def test_the_traps_are_traps() -> None:
    """The cases above would not read back if written plain: the test can fail."""
    assert not any(reads_as_text(v) for v in ["NO", "on", "yes", "0x1F", "2024-01-01", "~"])
