"""Import and export of user maps: Connect XML, CSV and JSON round trips, located errors, malicious XML refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.config.loader import load_config
from reconciler.usermaps import identities_for

FIXTURES = Path(__file__).parent.parent / "fixtures" / "usermaps" / "connect"
SOURCES = ["--source", "Jira DataSource=jira-dc", "--source", "Octane DataSource=octane",
           "--source", "ALM DataSource=alm"]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["usermaps", *args])


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    d = tmp_path / "c"
    d.mkdir()
    shutil.copy(FIXTURES / "members.yaml", d / "members.yaml")
    return d


def import_into(config_dir: Path, src: Path, fmt: str, *extra: str) -> Path:
    out = config_dir / "usermaps.yaml"
    r = run("import", str(src), "--format", fmt, "--out", str(out), "--config", str(config_dir), *extra)
    assert r.exit_code == 0, r.output
    return out


def test_connect_xml_import_then_export_is_byte_identical(config_dir: Path) -> None:
    out = import_into(config_dir, FIXTURES / "usermaps.xml", "connect-xml", *SOURCES, "--member-source", "Platform")
    c = load_config(config_dir)
    assert identities_for(c, "alice@acme.io", "octane") == ["alice.smith@localhost", "asmith@localhost"]
    assert identities_for(c, "bob@acme.io", "jenkins") == ["bob"]
    assert identities_for(c, "carol@acme.io", "alm") == ["Carol White"]
    text = out.read_text()
    assert "label: User Map1" in text and "label: R&D <Bob>" in text
    assert "carol@acme.io\n    identities" in text  # a map named after its member needs no label
    r = run("export", str(config_dir), "--format", "connect-xml", *SOURCES, "--member-source", "Platform")
    assert r.exit_code == 0, r.output
    assert r.output == (FIXTURES / "usermaps.xml").read_text()


def test_csv_round_trip(config_dir: Path) -> None:
    import_into(config_dir, FIXTURES / "usermaps.csv", "csv")
    r = run("export", str(config_dir), "--format", "csv")
    assert r.exit_code == 0, r.output
    assert r.output == (FIXTURES / "usermaps.csv").read_text()


def test_json_round_trip(config_dir: Path, tmp_path: Path) -> None:
    import_into(config_dir, FIXTURES / "usermaps.xml", "connect-xml", *SOURCES, "--member-source", "Platform")
    first = run("export", str(config_dir), "--format", "json")
    assert first.exit_code == 0, first.output
    doc = json.loads(first.output)
    assert doc["format_version"] == 1
    assert doc["user_maps"][1] == {"member": "bob@acme.io", "label": "R&D <Bob>",
                                   "identities": {"jira-dc": ["bjones"], "jenkins": ["bob"]}}
    (tmp_path / "maps.json").write_text(first.output)
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(FIXTURES / "members.yaml", again / "members.yaml")
    import_into(again, tmp_path / "maps.json", "json")
    second = run("export", str(again), "--format", "json")
    assert second.output == first.output


def test_export_of_the_example_to_every_format(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "usermaps"
    for fmt in ("connect-xml", "csv", "json"):
        r = run("export", str(example), "--format", fmt, "--out", str(tmp_path / f"out.{fmt}"))
        assert r.exit_code == 0, r.output
    assert "<value>acme-cloud</value>" in (tmp_path / "out.connect-xml").read_text()
    assert "alice@acme.io,jenkins,asmith\n" in (tmp_path / "out.csv").read_text()


def test_import_never_overwrites(config_dir: Path) -> None:
    (config_dir / "usermaps.yaml").write_text("# mine\n")
    r = run("import", str(FIXTURES / "usermaps.csv"), "--format", "csv", "--out", str(config_dir / "usermaps.yaml"))
    assert r.exit_code == 1
    assert "exists; choose a new file" in r.output
    assert (config_dir / "usermaps.yaml").read_text() == "# mine\n"


def test_labels_need_a_member_source_on_export(config_dir: Path) -> None:
    import_into(config_dir, FIXTURES / "usermaps.xml", "connect-xml", *SOURCES, "--member-source", "Platform")
    r = run("export", str(config_dir), "--format", "connect-xml", *SOURCES)
    assert r.exit_code == 1
    assert "the user map of alice@acme.io has the label 'User Map1'; pass --member-source" in r.output


BAD_XML = """<?xml version="1.0" encoding="UTF-8"?>
<UserMaps>
   <UserMap>
      <name>alice@acme.io</name>
      <User>
         <type>DataSource</type>
         <value>Jira DataSource</value>
         <name>asmith</name>
      </User>
      <User>
         <type>DataSource</type>
         <value>Rally DataSource</value>
         <name>alice</name>
      </User>
   </UserMap>
   <UserMap>
      <name>bob@acme.io</name>
      <User>
         <type>DataSource</type>
         <value>Jira DataSource</value>
         <name>ASmith</name>
      </User>
      <User>
         <type>Group</type>
         <value>Jira DataSource</value>
         <name>devs</name>
      </User>
   </UserMap>
   <UserMap>
      <name>zoe@acme.io</name>
      <User>
         <type>DataSource</type>
         <value>Jira DataSource</value>
         <name>zoe</name>
      </User>
   </UserMap>
   <UserMap>
      <name>Alice@acme.io</name>
      <User>
         <type>DataSource</type>
         <value>jenkins</value>
         <name>alice</name>
      </User>
   </UserMap>
</UserMaps>
"""


def test_xml_problems_are_reported_with_their_lines(config_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "bad.xml"
    src.write_text(BAD_XML)
    out = tmp_path / "out.yaml"
    r = run("import", str(src), "--format", "connect-xml", "--out", str(out), "--config", str(config_dir),
            "--source", "Jira DataSource=jira-dc")
    assert r.exit_code == 1
    f = str(src)
    for expected in [
        f"{f}:12:10: unknown data source 'Rally DataSource'; map it to a system with --source "
        "'Rally DataSource=SYSTEM'; mapped data sources: Jira DataSource",
        f"{f}:21:10: jira-dc identity 'ASmith' of 'bob@acme.io' is already claimed by 'alice@acme.io' at line 8; "
        "an identity belongs to one member only",
        f"{f}:24:10: User type 'Group' is not supported; valid: DataSource",
        f"{f}:30:7: user map for unknown member 'zoe@acme.io'",
        f"{f}:38:7: member 'Alice@acme.io' has a second user map; the first is at line 4",
        "5 problem(s) found; nothing was written",
    ]:
        assert expected in r.output, r.output
    assert not out.exists()
    assert "Traceback" not in r.output


def test_map_names_must_be_emails_without_a_member_source(tmp_path: Path) -> None:
    r = run("import", str(FIXTURES / "usermaps.xml"), "--format", "connect-xml", "--out", str(tmp_path / "o.yaml"),
            *SOURCES)
    assert r.exit_code == 1
    assert "usermaps.xml:4:7: member 'User Map1' is not an email address (pass --member-source DATA_SOURCE" \
           in r.output


@pytest.mark.parametrize(("xml", "expected"), [
    pytest.param('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
                 ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
                 ' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n]>\n'
                 "<UserMaps><UserMap><name>&lol3;</name></UserMap></UserMaps>\n",
                 "bomb.xml:3:1: XML entity declarations are refused; entity 'lol': entities can expand without "
                 "bound (billion laughs)", id="billion-laughs"),
    pytest.param('<?xml version="1.0"?>\n<!DOCTYPE u [\n<!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
                 "<UserMaps><UserMap><name>&xxe;</name></UserMap></UserMaps>\n",
                 "bomb.xml:3:1: XML entity declarations are refused; external entity 'xxe' (file:///etc/passwd): "
                 "it would make the importer read a file or URL", id="external-entity"),
    pytest.param('<?xml version="1.0"?>\n<!DOCTYPE u [\n<!ENTITY % pe SYSTEM "http://127.0.0.1:9/x.dtd">\n%pe;\n]>\n'
                 "<UserMaps/>\n",
                 "bomb.xml:3:1: XML entity declarations are refused; external entity 'pe'", id="parameter-entity"),
    pytest.param('<?xml version="1.0"?>\n<!DOCTYPE UserMaps SYSTEM "http://127.0.0.1:9/evil.dtd">\n<UserMaps/>\n',
                 "bomb.xml:2:1: XML external references are refused", id="external-dtd"),
    pytest.param('<?xml version="1.0"?>\n<UserMaps>\n  <UserMap>\n</UserMaps>\n',
                 "bomb.xml:4:3: invalid XML: mismatched tag", id="not-well-formed"),
    pytest.param('<?xml version="1.0"?>\n<Connections/>\n',
                 "bomb.xml:1:1: no <UserMaps> element", id="not-a-user-maps-file"),
])
def test_malicious_or_broken_xml_is_refused(tmp_path: Path, xml: str, expected: str) -> None:
    src = tmp_path / "bomb.xml"
    src.write_text(xml)
    out = tmp_path / "out.yaml"
    r = run("import", str(src), "--format", "connect-xml", "--out", str(out))
    assert r.exit_code == 1
    assert expected in r.output, r.output
    assert "Traceback" not in r.output
    assert not out.exists()


@pytest.mark.parametrize(("csv", "expected"), [
    ("member,identity\n", "bad.csv:1:1: the first row must be the header member,system,identity"),
    ("member,system,identity\nalice@acme.io,jira-dc\n", "bad.csv:2:1: expected 3 columns"),
    ("member,system,identity\nalice,jira-dc,a\n", "bad.csv:2:1: 'alice' is not a valid email address"),
    ("member,system,identity\nalice@acme.io,Jira DC,a\n", "bad.csv:2:2: system 'Jira DC' must match"),
    ("member,system,identity\nalice@acme.io,jira-dc,a\nbob@acme.io,jira-dc,A\n",
     "bad.csv:3:3: jira-dc identity 'A' of 'bob@acme.io' is already claimed by 'alice@acme.io' at line 2"),
    ("member,system,identity\nalice@acme.io,jira-dc,a\nalice@acme.io,jira-dc,a\n",
     "bad.csv:3:3: jira-dc identity 'a' of 'alice@acme.io' is listed twice"),
])
def test_csv_problems_are_located(tmp_path: Path, csv: str, expected: str) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(csv)
    r = run("import", str(src), "--format", "csv", "--out", str(tmp_path / "o.yaml"))
    assert r.exit_code == 1
    assert expected in r.output, r.output


def test_bad_source_option(tmp_path: Path) -> None:
    r = run("import", str(FIXTURES / "usermaps.xml"), "--format", "connect-xml", "--out", str(tmp_path / "o.yaml"),
            "--source", "Jira DataSource")
    assert r.exit_code == 1
    assert "--source 'Jira DataSource': write DATA_SOURCE=SYSTEM" in r.output


def test_import_help_says_which_unmapped_data_sources_are_refused(tmp_path: Path) -> None:
    """The help once said an unmapped data source 'is taken as the system name itself'; 'Jira DataSource'
    (not a valid system name) is refused, 'jira-dc' is read as the system jira-dc. Help and behaviour agree."""
    help_text = " ".join(run("import", "--help").output.split())
    assert "is taken as the system name itself" not in help_text
    assert "any other, such as 'Jira DataSource', is refused until mapped" in help_text
    user_map = ("<UserMaps><UserMap><name>alice@acme.io</name><User><type>DataSource</type>"
                "<value>{}</value><name>alice</name></User></UserMap></UserMaps>\n")
    refused = tmp_path / "refused.xml"
    refused.write_text(user_map.format("Jira DataSource"))
    r = run("import", str(refused), "--format", "connect-xml", "--out", str(tmp_path / "a.yaml"))
    assert r.exit_code == 1 and "unknown data source 'Jira DataSource'" in r.output, r.output
    read = tmp_path / "read.xml"
    read.write_text(user_map.format("jira-dc"))
    r = run("import", str(read), "--format", "connect-xml", "--out", str(tmp_path / "b.yaml"))
    assert r.exit_code == 0, r.output
    assert "jira-dc" in (tmp_path / "b.yaml").read_text()


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised_and_read_back() -> None:
    from reconciler.usermaps.formats import PortableMap, read_csv, write_csv
    maps = [PortableMap("a@acme.io", {"ci": ["=HYPERLINK(\"http://x\")", "+1", "-bob", "@sum", "plain"]})]
    text = write_csv(maps)
    cells = [row.split(",", 2)[2] for row in text.splitlines()[1:]]
    assert not any(c.lstrip('"').startswith(("=", "+", "-", "@")) for c in cells), text
    back = read_csv(text.encode(), "maps.csv")
    assert back[0].identities == maps[0].identities


def test_csv_import_of_many_identities_of_one_member() -> None:
    """20,000 rows of one member (quadratic before: 11.5 s). Its cost per row is measured in
    bench/linear.py, not asserted here; this checks the answer at that size."""
    from reconciler.usermaps.formats import read_csv
    rows = "member,system,identity\n" + "".join(f"a@acme.io,ci,user{i}\n" for i in range(20_000))
    (pm,) = read_csv(rows.encode(), "maps.csv")
    assert len(pm.identities["ci"]) == 20_000
