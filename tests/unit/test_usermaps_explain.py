"""``reconciler usermaps explain`` on the shipped example, and the in-place YAML edit putting files back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.config.loader import load_config
from reconciler.errors import ReconcilerError
from reconciler.usermaps.edit import add_identities

EXAMPLE = Path(__file__).parents[2] / "examples" / "usermaps"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "usermaps" / "resolve"


def explain(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["usermaps", "explain", str(EXAMPLE), *args])
    return r.exit_code, r.output


def test_mapped_identities_of_every_system() -> None:
    code, out = explain("alice@acme.io")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "alice@acme.io"
    assert "  acme-cloud (jira-cloud): 5b10ac8d82e05b22cc7d4ef5" in lines
    assert "  acme-dc (jira-datacenter): asmith" in lines
    assert "  jenkins: alice  (also mapped: asmith)" in lines
    assert "  azure-devops: Alice Smith" in lines
    assert any(line.startswith("    mapped: user map of alice@acme.io at ") and "usermaps.yaml:11:17" in line
               for line in lines)


@pytest.mark.parametrize(("args", "identity", "why"), [
    (["--system", "acme-cloud"], "5b10a2844c20165700ede21a", "fallback user for acme-cloud (general): triage@acme.io"),
    (["--system", "acme-cloud", "--project", "SEC"], "5b10ac8d82e05b22cc7d4ef5",
     "fallback user for acme-cloud (project=SEC): alice@acme.io"),
    (["--system", "acme-cloud", "--project", "SEC", "--field", "reporter", "--type", "Bug"],
     "712020:2c5a8a9e-1b6f-4d1c-9a57-0d8f5c0e1a22",
     "fallback user for acme-cloud (project=SEC, field=reporter): bob@acme.io"),
    (["--system", "acme-cloud", "--project", "WEB", "--field", "reporter"], "5b10a2844c20165700ede21a",
     "fallback user for acme-cloud (general)"),
])
def test_fallback_rule_that_won(args: list[str], identity: str, why: str) -> None:
    code, out = explain("carol@acme.io", *args)
    assert code == 0, out
    assert f"  acme-cloud (jira-cloud): {identity}\n" in out
    assert "    fallback: carol@acme.io has no identity in acme-cloud; " + why in out


def test_unresolved_system() -> None:
    code, out = explain("carol@acme.io", "--system", "jenkins")
    assert code == 0
    assert "  jenkins: -\n    unresolved: carol@acme.io has no identity in jenkins and no fallback user matches" in out


def test_deactivated_member_is_flagged_and_keeps_the_map() -> None:
    code, out = explain("dave@acme.io", "--system", "acme-dc")
    assert code == 0
    assert out.splitlines()[0] == "dave@acme.io  [deactivated: active: false; the map is kept for history]"
    assert "  acme-dc (jira-datacenter): dold\n    mapped:" in out


@pytest.mark.parametrize(("args", "message"), [
    (["zed@acme.io"], "error: unknown member 'zed@acme.io' (did you mean 'dave@acme.io'?)"),
    (["alice@acme.io", "--system", "jenkinz"], "error: no user map, fallback user or connection names system "
                                                "'jenkinz' (did you mean 'jenkins'?)"),
])
def test_bad_arguments(args: list[str], message: str) -> None:
    code, out = explain(*args)
    assert code == 1
    assert message in out
    assert "Traceback" not in out


def test_an_edit_that_breaks_the_config_is_put_back(tmp_path: Path) -> None:
    d = tmp_path / "c"
    shutil.copytree(FIXTURES, d, ignore=shutil.ignore_patterns("*.golden.yaml"))
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    config = load_config(d)
    # alice already holds this account ID: writing it for carol would make two claims
    with pytest.raises(ReconcilerError) as exc:
        add_identities(config, "cloud", {"bob@acme.io": "5b10ac8d82e05b22cc7d4ef6",
                                         "carol@acme.io": "5b10ac8d82e05b22cc7d4ef5"})
    assert "every file was put back" in str(exc.value)
    assert "claimed by 'carol@acme.io'" in str(exc.value)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
