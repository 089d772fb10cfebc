"""Real plans from the real scim2-server validate against schemas/plan.schema.json."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.render.json import FORMAT_VERSION
from tests.conftest import ROOT, dump_yaml
from tests.servers import ScimServer

SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def plan_json(config: Path, *extra: str) -> dict[str, Any]:
    res = CliRunner().invoke(main, ["plan", str(config), "--format", "json", *extra], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


@pytest.mark.parametrize("removal", ["deactivate", "delete"])
def test_plans_with_every_action_validate(scim: ScimServer, write_config: Callable[..., Path], removal: str) -> None:
    cfg = write_config(scim.base_url, removal=removal,
                       members=[{"email": "alice@acme.io", "department": "AppSec"}, "bob@acme.io", "carol@acme.io"],
                       teams=[{"name": "appsec", "members": ["alice@acme.io"]}, {"name": "old", "members": []}])
    first = plan_json(cfg)
    VALIDATOR.validate(first)
    assert first["summary"]["create"] == 5
    applied = CliRunner().invoke(main, ["apply", str(cfg), "--auto-approve",
                                        "--audit-log", str(cfg.parent / "audit.jsonl")])
    assert applied.exit_code == 0, applied.output
    (cfg / "members.yaml").write_text(dump_yaml({"members": [
        {"email": "alice@acme.io", "department": "Security", "manager": "carol@acme.io"},
        {"email": "carol@acme.io"}, {"email": "dave@acme.io"}]}))
    (cfg / "teams.yaml").write_text(dump_yaml({"teams": [{"name": "appsec",
                                                         "members": ["alice@acme.io", "dave@acme.io"]}]}))
    doc = plan_json(cfg, "--allow-removals", "5")
    VALIDATOR.validate(doc)
    actions = {c["address"]: c["action"] for c in doc["changes"]}
    assert actions == {'scim.platform.group["appsec"]': "update", 'scim.platform.group["old"]': "delete",
                       'scim.platform.user["alice@acme.io"]': "update",
                       'scim.platform.user["bob@acme.io"]': removal,
                       'scim.platform.user["dave@acme.io"]': "create"}
    assert doc["format_version"] == FORMAT_VERSION
    assert all(c["precondition"] for c in doc["changes"] if c["action"] != "create")


def test_the_schema_rejects_what_it_must(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    doc = plan_json(write_config(scim.base_url, members=["alice@acme.io"]))
    VALIDATOR.validate(doc)
    broken: list[dict[str, Any]] = []
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["changes"][0].__setitem__("action", "explode"),
        lambda d: d.__setitem__("format_version", f"{int(FORMAT_VERSION.split('.')[0]) + 1}.0"),
        lambda d: d["changes"][0].__setitem__("before", {"userName": "x"}),  # a create has no before
        lambda d: d.pop("summary"),
        lambda d: d["changes"][0].__setitem__("surprise", 1)]
    for mutate in mutations:
        d = copy.deepcopy(doc)
        mutate(d)
        broken.append(d)
    for d in broken:
        assert not VALIDATOR.is_valid(d), d


def test_format_version_is_described_by_the_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert jsonschema.Draft202012Validator(SCHEMA["properties"]["format_version"]).is_valid(FORMAT_VERSION)
