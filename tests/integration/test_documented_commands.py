"""Every `reconciler ...` command line of README.md and docs/*.md does what the docs say.

The command lines are extracted from the Markdown (fenced blocks and inline code). Each is:

- run, in one scenario against one real scim2-server (the GitOps story: import, adopt, plan on a pull
  request, apply the saved plan, drift, audit), or against the examples that need no server; the
  exit code and a key part of the output are checked;
- or run by another test, named here (the quickstart, docs/jira.md's walk-through with its three
  served sandboxes);
- and in every case parsed against the command line itself: the command exists, every option it
  names is one of that command's, and every choice it lists (``--format a|b``) is a valid one. That is
  all a command needing a real Jira gets here.

A command line added to the docs and not accounted for here fails the test.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from reconciler.cli import main
from tests.conftest import ROOT, dump_yaml
from tests.servers import ScimServer

pytestmark = pytest.mark.integration
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def documented() -> dict[str, set[str]]:
    """Each documented command line (whitespace collapsed, `# comment`, `$ ` and a trailing `&` taken
    off) -> the files it appears in."""
    out: dict[str, set[str]] = {}
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        found: list[str] = []
        for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
            found += [line for line in block.splitlines() if re.match(r"\s*(\$ )?reconciler(\s|$)", line)]
        prose = re.sub(r"\s*\n\s*", " ", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
        found += [m.replace("\\|", "|") for m in re.findall(r"`(reconciler [^`]+)`", prose)]  # \| in tables
        for line in found:
            line = re.sub(r"\s+#\s.*$", "", line.strip()).removeprefix("$ ").rstrip(" &")
            out.setdefault(" ".join(line.split()), set()).add(doc.name)
    return out


# --- the scenario ---------------------------------------------------------------------------------

@dataclass
class Step:
    doc: str  # the documented command line
    args: list[str] | None = None  # what runs, when it is not the documented line itself
    exit: int = 0
    says: tuple[str, ...] = ()  # in the output
    before: str | None = None  # a change of the world first (see Scenario.do)


# In order: each step sees what the steps before it did.
SCENARIO = [
    Step("reconciler validate CONFIG", ["validate", "config"],
         says=("Configuration is valid: 1 file(s), 1 provider(s)",)),
    Step("reconciler check CONFIG", ["check", "config"], says=("ok", "discovery")),
    Step("reconciler check", ["check", "unreachable"], exit=1, says=("FAIL",)),
    Step("reconciler import config --provider platform", says=("Imported 2 member(s) and 1 team(s) from platform",)),
    Step("reconciler import CONFIG --provider NAME",
         ["import", "config", "--provider", "platform", "--out", "elsewhere"],
         says=("Imported 2 member(s)", "Copy the provider declaration into elsewhere")),
    # what adopting would change: the ownership marks
    Step("reconciler plan config",
         says=("Plan: 0 to create, 3 to update", 'externalId: null -> "reconciler:alice@acme.io"')),
    Step("reconciler import config --provider platform --adopt --force", says=("Adopted 3 object(s)",)),
    Step("reconciler plan", ["plan", "config"], says=("No changes",)),
    Step("reconciler plan config --out plan.json --format markdown --detailed-exitcode", exit=2,
         says=('scim.platform.user["carol@acme.io"]',), before="hire carol"),
    Step("reconciler plan config --out plan.json --detailed-exitcode --format markdown", exit=2,
         says=("1 to create",)),
    Step("reconciler show plan.json", says=('+ scim.platform.user["carol@acme.io"]',)),
    Step("reconciler apply plan.json",
         says=("are unchanged since it was made", "Apply complete: 1 created, 1 updated")),
    Step("reconciler plan config --detailed-exitcode --drift-base HEAD", exit=0, says=("No changes",),
         before="commit"),
    Step("reconciler plan config --detailed-exitcode --drift-base HEAD --format markdown", exit=2,
         says=("drift detected",), before="deactivate carol by hand"),
    Step("reconciler apply CONFIG", ["apply", "config"], exit=1, says=("refusing to apply without confirmation",)),
    Step("reconciler apply", ["apply", "config", "--auto-approve"], says=("Apply complete: 0 created, 1 updated",)),
    Step("reconciler audit --member alice@acme.io", says=('scim.platform.user["alice@acme.io"]',)),
    Step("reconciler audit [--member EMAIL]", ["audit", "--member", "carol@acme.io"],
         says=('scim.platform.user["carol@acme.io"]', "create", "update")),
    Step("reconciler audit --address 'scim.platform.group[\"appsec\"]' --since 30d", says=('group["appsec"]',)),
    # the ownership marks went in one Bulk request: listed under each change it carried
    Step("reconciler audit --member alice@acme.io --calls", says=("POST /v2/Bulk -> 200",)),
    Step("reconciler audit --member alice@acme.io --json | jq .", ["audit", "--member", "alice@acme.io", "--json"],
         says=('"address": "scim.platform.user[\\"alice@acme.io\\"]"',)),
    Step("reconciler audit", ["audit", "--since", "1h"], says=("carol@acme.io",)),
    # the examples, which need no server
    Step("reconciler usermaps explain examples/usermaps carol@acme.io --system acme-cloud --project SEC "
         "--field reporter", says=("fallback user for acme-cloud (project=SEC, field=reporter): bob@acme.io at "
                                   "examples/usermaps/usermaps.yaml:33:5",)),
    Step("reconciler usermaps explain", ["usermaps", "explain", "examples/usermaps", "bob@acme.io"],
         says=("bob@acme.io",)),
    Step("reconciler usermaps export CONFIG --format connect-xml|csv|json [--out FILE] [--source 'DS=SYSTEM' ...] "
         "[--member-source DS]", ["usermaps", "export", "examples/usermaps", "--format", "csv", "--out", "maps.csv"]),
    Step("reconciler usermaps import FILE --format connect-xml|csv|json --out FILE [--config CONFIG] "
         "[--source 'DS=SYSTEM' ...] [--member-source DS]",
         ["usermaps", "import", "maps.csv", "--format", "csv", "--out", "imported-usermaps.yaml", "--config",
          "examples/usermaps"]),
    Step("reconciler sandbox scim --help", says=("--empty", "--port")),
    Step("reconciler validate examples/quickstart", ["validate", str(ROOT / "examples" / "quickstart")],
         says=("Configuration is valid: 3 file(s), 1 provider(s)",)),
    Step("reconciler demo", ["demo", "--no-color"], says=("No changes. The live systems match the configuration.",)),
]
# Run by another test, as written there.
ELSEWHERE = {
    "reconciler sandbox scim --empty --port 18451": "tests/integration/test_docs_walkthrough.py",
    "reconciler sandbox jira --flavour cloud --port 8089": "tests/integration/test_docs_walkthrough.py",
    "reconciler sandbox jira --flavour datacenter --port 8090": "tests/integration/test_docs_walkthrough.py",
    "reconciler plan /tmp/full-sandbox": "tests/integration/test_docs_walkthrough.py",
}
# Checked against the command line only: they need a real Jira, or name a command the steps above run.
PARSED_ONLY = {
    "reconciler apply CONFIG", "reconciler apply plan.json", "reconciler import", "reconciler plan CONFIG",
    "reconciler plan --detailed-exitcode", "reconciler sandbox scim",
    "reconciler sandbox scim [--port 18451] [--empty]", "reconciler sandbox jira --flavour cloud|datacenter --port N",
    "reconciler usermaps resolve", "reconciler usermaps resolve CONFIG --connection NAME [--write]",
    "reconciler usermaps explain|resolve|export|import", "reconciler check", "reconciler show plan.json",
    "reconciler audit", "reconciler demo", "reconciler plan", "reconciler apply", "reconciler validate",
}
# Prose that starts with the word but is no command: a webhook's and a test issue's name.
NOT_COMMANDS = {"reconciler <name>", "reconciler activation test: <name>"}


class Scenario:
    """One directory (the current one), one server, and the world changes steps ask for."""

    def __init__(self, root: Path, scim: ScimServer) -> None:
        self.root, self.scim = root, scim

    def do(self, change: str) -> None:
        if change == "hire carol":  # a pull request adds a member and puts her in a team
            members = self.root / "config" / "members.yaml"
            members.write_text(members.read_text() + "  - email: carol@acme.io\n")
            teams = self.root / "config" / "teams.yaml"
            teams.write_text(re.sub(r"^( *- )bob@acme\.io$", r"\g<0>\n\g<1>carol@acme.io", teams.read_text(),
                                    flags=re.M))
        elif change == "commit":
            git(self.root, "add", "config")
            git(self.root, "commit", "-qm", "carol joins appsec")
        elif change == "deactivate carol by hand":
            with self.scim.client() as c:
                uid = c.get("Users", params={"filter": 'userName eq "carol@acme.io"'}).json()["Resources"][0]["id"]
                r = c.patch(f"Users/{uid}", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                                  "Operations": [{"op": "replace", "path": "active", "value": False}]})
                assert r.status_code in (200, 204), r.text
        else:
            raise AssertionError(f"unknown change {change!r}")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=ci@acme.io", "-c", "user.name=CI",
                    "-c", "commit.gpgsign=false", *args], check=True, capture_output=True)


def seed(scim: ScimServer) -> None:
    """What the platform holds before reconciler: two people in one team, made by hand."""
    with scim.client() as c:
        ids = []
        for email in ("alice@acme.io", "bob@acme.io"):
            r = c.post("Users", json={"schemas": [USER], "userName": email, "emails": [{"value": email}]})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        r = c.post("Groups", json={"schemas": [GROUP], "displayName": "appsec",
                                   "members": [{"value": i} for i in ids]})
        assert r.status_code == 201, r.text


@pytest.fixture
def scenario(scim: ScimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scenario]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.delenv("RECONCILER_AUDIT_LOG", raising=False)
    provider = {"name": "platform", "type": "scim", "base_url": scim.base_url,
                "auth": {"type": "bearer", "token": "${env:SCIM_TOKEN}"}}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "providers.yaml").write_text(dump_yaml({"providers": [provider]}))
    (tmp_path / "unreachable").mkdir()
    (tmp_path / "unreachable" / "providers.yaml").write_text(dump_yaml({"providers": [
        {**provider, "base_url": "http://127.0.0.1:9/v2"}]}))
    shutil.copytree(ROOT / "examples" / "usermaps", tmp_path / "examples" / "usermaps")
    git(tmp_path, "init", "-q")
    seed(scim)
    yield Scenario(tmp_path, scim)


def test_the_documented_commands_run_as_documented(scenario: Scenario, backoff_sleeps: list[float]) -> None:
    docs = documented()
    for step in SCENARIO:
        assert step.doc in docs, f"{step.doc!r} is no longer in the docs: update the scenario"
        if step.before:
            scenario.do(step.before)
        args = step.args if step.args is not None else shlex.split(step.doc)[1:]
        r = CliRunner().invoke(main, args, catch_exceptions=False)
        where = f"{step.doc} (documented in {', '.join(sorted(docs[step.doc]))}; ran: reconciler {shlex.join(args)})"
        assert r.exit_code == step.exit, f"{where}: exit {r.exit_code}\n{r.output[-3000:]}"
        for text in step.says:
            assert text in r.output, f"{where}: {text!r} not in\n{r.output[-3000:]}"
        if "--json" in args:
            assert all(json.loads(line) for line in r.stdout.splitlines()), "one JSON document a line"


def test_every_documented_command_is_accounted_for() -> None:
    docs = documented()
    assert len(docs) > 30, "the extraction found almost nothing"
    run = {s.doc for s in SCENARIO}
    unknown = sorted(set(docs) - run - set(ELSEWHERE) - PARSED_ONLY - NOT_COMMANDS)
    assert not unknown, f"documented and neither run nor checked: {unknown} (add each to SCENARIO or ELSEWHERE)"
    for line, test in ELSEWHERE.items():
        assert line in docs, f"{line!r} is no longer in the docs: update ELSEWHERE"
        # that test runs the docs' own block, which holds the line
        source = (ROOT / test).read_text()
        assert all(f'"{name}"' in source for name in ("docs", "jira.md")), test


def _command(words: list[str]) -> tuple[click.Command, list[str]]:
    """Follow the subcommands of ``words``; return the command and the words left."""
    cmd: click.Command = main
    while words and isinstance(cmd, click.Group):
        name = words[0]
        alternatives = name.split("|")
        group = cmd
        for alt in alternatives:
            assert group.get_command(click.Context(group), alt) is not None, f"no command {alt!r} in {group.name}"
        cmd = group.get_command(click.Context(group), alternatives[0])  # type: ignore[assignment]
        words = words[1:]
    return cmd, words


def _options(cmd: click.Command) -> dict[str, click.Parameter]:
    out: dict[str, click.Parameter] = {}
    for p in [*cmd.params, *main.params]:
        for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]:
            out[o] = p
    return out | {"--help": click.Option(["--help"], is_flag=True), "-h": click.Option(["-h"], is_flag=True)}


@pytest.mark.parametrize("line", sorted(set(documented()) - NOT_COMMANDS))
def test_the_documented_command_line_parses(line: str) -> None:
    words = line.split(" | ")[0].replace("[", " ").replace("]", " ").replace("...", " ")
    tokens = shlex.split(words)[1:]
    cmd, rest = _command(tokens)
    opts = _options(cmd)
    for i, tok in enumerate(rest):
        if not tok.startswith("-"):
            continue
        name, _, inline = tok.partition("=")
        assert name in opts, f"{line}: {cmd.name} has no option {name}; it has {sorted(opts)}"
        param = opts[name]
        value: Any = inline or (rest[i + 1] if i + 1 < len(rest) else None)
        if isinstance(param.type, click.Choice) and value is not None and not value.isupper():
            wrong = [v for v in value.split("|") if v not in param.type.choices]
            assert not wrong, f"{line}: {name} does not take {wrong}; it takes {list(param.type.choices)}"


def test_the_parser_of_command_lines_catches_a_wrong_one() -> None:
    with pytest.raises(AssertionError, match="has no option --outt"):
        test_the_documented_command_line_parses("reconciler plan config --outt plan.json")
    with pytest.raises(AssertionError, match="does not take"):
        test_the_documented_command_line_parses("reconciler plan config --format markdown|html")
    with pytest.raises(AssertionError, match="no command 'paln'"):
        test_the_documented_command_line_parses("reconciler paln config")
