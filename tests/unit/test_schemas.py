"""The published config JSON Schema: up to date with the models, documented, and true to the examples."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from reconciler import schemas
from reconciler.config.loader import load_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas"


def _is_workflow(path: Path) -> bool:
    data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    return isinstance(data, dict) and "jobs" in data


_YAML = sorted(p for p in (ROOT / "examples").rglob("*") if p.suffix in (".yaml", ".yml"))
# examples/ also holds CI setups (GitHub Actions workflows and their tools' settings); a folder with a
# workflow in it is one of those, every other folder is a config
_CI_DIRS = {p.parent for p in _YAML if _is_workflow(p)}
EXAMPLES = [p for p in _YAML if p.parent not in _CI_DIRS]
EXAMPLE_DIRS = sorted({p.parent for p in EXAMPLES})
SCHEMA_COMMENT = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)
CORE = ("BasicAuth", "BearerAuth", "Member", "OAuth2Auth", "Permissions", "ScimProvider", "Team", "TeamSchema")


def config_schema() -> dict[str, Any]:
    return schemas.config_schema()


@pytest.mark.parametrize("name", sorted(schemas.SCHEMAS))
def test_published_schema_is_up_to_date(name: str) -> None:
    path = SCHEMA_DIR / name
    expected = schemas.render(schemas.SCHEMAS[name]())
    actual = path.read_text(encoding="utf-8") if path.is_file() else ""
    if actual != expected:
        pytest.fail(f"schemas/{name} is out of date; run `python -m reconciler.schemas`", pytrace=False)


def test_generation_is_deterministic(tmp_path: Path) -> None:
    assert schemas.write(tmp_path) == sorted(schemas.SCHEMAS)
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert schemas.write(tmp_path) == []  # nothing changed, nothing rewritten
    assert schemas.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "config.schema.json").write_text("{}\n")
    assert schemas.main(["--out", str(tmp_path), "--check"]) == 1
    assert schemas.main(["--out", str(tmp_path)]) == 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first


def test_check_names_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schemas.main(["--out", str(tmp_path), "--check"]) == 1
    assert "run `python -m reconciler.schemas`" in capsys.readouterr().err


def test_schema_is_a_valid_titled_draft_2020_12_schema() -> None:
    s = config_schema()
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["title"] == "reconciler configuration file"
    assert s["additionalProperties"] is False


@pytest.mark.parametrize("definition", CORE)
def test_every_core_field_is_described(definition: str) -> None:
    d = config_schema()["$defs"][definition]
    assert d.get("description"), definition
    undocumented = [name for name, prop in d["properties"].items()
                    if not prop.get("description") and "const" not in prop]
    assert undocumented == [], f"{definition}: add a docstring to {undocumented}"


def test_credential_fields_document_secret_references() -> None:
    defs = config_schema()["$defs"]
    for definition, field in (("BearerAuth", "token"), ("BasicAuth", "token"), ("OAuth2Auth", "client_secret")):
        prop = defs[definition]["properties"][field]
        assert "${env:NAME}" in prop["description"] and "${file:PATH}" in prop["description"]
        assert prop["examples"][0].startswith("${env:")
        validator = jsonschema.Draft202012Validator({"$defs": defs, **prop})
        assert validator.is_valid("${env:SCIM_TOKEN}")
        assert not validator.is_valid("s3cr3t-literal-token")


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(config_schema())


@pytest.mark.parametrize("bad, where", [
    ({"members": [{"email": "a@acme.io", "given_nmae": "A"}]}, "given_nmae"),
    ({"providers": [{"name": "p", "type": "scim", "base_url": "http://127.0.0.1/v2",
                     "auth": {"type": "bearer", "token": "literal"}}]}, "literal"),
    ({"providers": [{"name": "p", "type": "ldap"}]}, "ldap"),
    ({"teams": [{"name": "x", "members": "a@acme.io"}]}, "a@acme.io"),
    ({"memebrs": []}, "memebrs"),
])
def test_schema_rejects_what_the_loader_rejects(bad: dict[str, Any], where: str) -> None:
    errors = list(_validator().iter_errors(bad))
    assert errors and any(where in e.message or where in str(e.instance) for e in errors)


def test_there_are_examples() -> None:
    assert EXAMPLES, "examples/ holds no YAML files"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_file_validates_against_the_schema(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    m = SCHEMA_COMMENT.search(text)
    assert m, f"{path.relative_to(ROOT)}: first lines need '# yaml-language-server: $schema=...'"
    assert (path.parent / m.group(1)).resolve() == (SCHEMA_DIR / "config.schema.json").resolve()
    data = YAML(typ="safe", pure=True).load(text)
    errors = sorted(_validator().iter_errors(data or {}), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("folder", EXAMPLE_DIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_config_loads(folder: Path) -> None:
    config = load_config(folder)
    assert config.files
