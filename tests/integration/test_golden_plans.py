"""The plans of examples/quickstart and examples/full, in every rendering, byte for byte.

They are golden files (tests/golden/): a refactor that changes what a user reads in a plan
fails here. A change that means to alter a plan rewrites them with GOLDEN_UPDATE=1 and the
diff of tests/golden/ shows, in review, exactly what users will see differently.
The ids the embedded SCIM server makes up and the commit are replaced before comparing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reconciler.config.loader import load_config
from reconciler.plan.model import Plan
from reconciler.render import PlanJson, PlanMarkdown, PlanText
from reconciler.sandbox import scim as scim_sandbox
from reconciler.sandbox.jira import CLOUD_TOKEN, DC_TOKEN, new_state, transport
from reconciler.session import Session

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def _plan(example: str) -> Plan:
    config = load_config(ROOT / "examples" / example)
    scim_t, _ = scim_sandbox.transport("example-token")
    transports = {"platform": scim_t, "acme-cloud": transport(new_state("cloud")),
                  "acme-dc": transport(new_state("datacenter"))}
    with Session(config, transports=transports) as s:
        plan = s.plan()
    return plan.model_copy(update={"commit": None})


def _stable(text: str) -> str:
    seen: dict[str, str] = {}
    return _UUID.sub(lambda m: seen.setdefault(m.group(0), f"<id-{len(seen) + 1}>"), text)


@pytest.mark.parametrize("example", ["quickstart", "full"])
@pytest.mark.parametrize(("fmt", "render"), [
    ("txt", lambda p: PlanText(colour=False, width=None).render(p)),
    ("md", lambda p: PlanMarkdown().render(p)),
    ("json", lambda p: PlanJson().render(p)),
])
def test_plan_matches_golden_file(example: str, fmt: str, render: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_TOKEN", "example-token")
    monkeypatch.setenv("JIRA_CLOUD_TOKEN", CLOUD_TOKEN)
    monkeypatch.setenv("JIRA_DC_TOKEN", DC_TOKEN)
    assert callable(render)
    got = _stable(str(render(_plan(example))))
    path = GOLDEN / f"{example}.plan.{fmt}"
    if os.environ.get("GOLDEN_UPDATE") == "1":
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8"), f"{path.relative_to(ROOT)} differs (GOLDEN_UPDATE=1 rewrites it)"
