"""docs/jira.md's walk-through (examples/full against served SCIM and Jira sandboxes), run as written:
only the three ports are swapped for free ones and /tmp/full-sandbox for the test's directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.servers import free_port

pytestmark = pytest.mark.integration


def walkthrough() -> str:
    doc = (ROOT / "docs" / "jira.md").read_text()
    section = doc.split("To run `examples/full` against served sandboxes", 1)[1]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    assert m, "docs/jira.md: the walk-through's sh block is missing"
    return m.group(1)


def test_the_walkthrough_in_docs_jira_md_plans_examples_full(tmp_path: Path) -> None:
    block = walkthrough()
    for needed in ("reconciler sandbox scim", "reconciler sandbox jira --flavour cloud",
                   "reconciler sandbox jira --flavour datacenter", "export SCIM_TOKEN=", "reconciler plan"):
        assert needed in block, needed
    ports = {old: str(free_port()) for old in ("18451", "8089", "8090")}
    for old, new in ports.items():
        block = block.replace(old, new)
    block = block.replace("/tmp/full-sandbox", str(tmp_path / "full-sandbox"))
    # the test's examples/full points at the test's SCIM port, as the real one points at 18451
    shutil.copytree(ROOT / "examples" / "full", tmp_path / "examples" / "full")
    providers = tmp_path / "examples" / "full" / "providers.yaml"
    providers.write_text(providers.read_text().replace("18451", ports["18451"]))
    # added to the block: wait for the three servers before planning (a person types slower than bash),
    # so that the plan does not spend its retries, with their real backoff, on servers still starting
    wait = "".join(f"for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; "
                   "sleep 0.1; done\n" for port in ports.values())
    block = block.replace("reconciler plan ", wait + "reconciler plan ", 1)
    script = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + block
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    env.pop("COLUMNS", None)
    res = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Plan: 11 to create, 3 to update, 0 to deactivate, 0 to delete." in res.stdout, res.stdout[-3000:]
