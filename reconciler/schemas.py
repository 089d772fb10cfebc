"""The published JSON Schemas in ``schemas/``, generated from the models.

``python -m reconciler.schemas`` rewrites them; ``--check`` only reports whether
they are out of date (exit 1). The output is deterministic (keys sorted, a
trailing newline), so a test can compare the files with what the models say.
Editors read ``schemas/config.schema.json`` through the comment
``# yaml-language-server: $schema=...`` at the top of a config file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.config.models import ConfigFile
from reconciler.plan.document import plan_schema
from reconciler.secrets import SECRET_PATTERN

BASE_ID = "https://reconciler.dev/schemas/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
SECRET_NOTE = ("A secret reference, never the secret itself: ${env:NAME} reads an environment variable, "
               "${file:PATH} a file (relative to the config directory). A missing variable or file is an error "
               "that names this field.")


def config_schema() -> dict[str, Any]:
    """The schema of one config file (any of its kinds may be split across files)."""
    schema = ConfigFile.model_json_schema(by_alias=True, mode="validation")
    schema = _document_secrets(schema)
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "config.schema.json",
        **schema,
        "title": "reconciler configuration file",
        "description": ("One YAML file of a reconciler config. A config is a directory of such files; every "
                        "top-level key is optional and kinds may be split across files. Secrets are never "
                        "written here: credential fields take ${env:NAME} or ${file:PATH}."),
    }


# File name -> generator.
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {"config.schema.json": config_schema,
                                                    "plan.schema.json": plan_schema}


def _document_secrets(node: Any) -> Any:
    """Every string field that only takes a secret reference says how to write one, with examples."""
    if isinstance(node, dict):
        out = {k: _document_secrets(v) for k, v in node.items()}
        pattern = out.get("pattern")
        if out.get("type") == "string" and isinstance(pattern, str) and pattern == SECRET_PATTERN:
            description = str(out.get("description", "")).strip()
            if SECRET_NOTE not in description:
                out["description"] = (description + " " + SECRET_NOTE).strip()
            out["examples"] = ["${env:API_TOKEN}", "${file:/run/secrets/api-token}"]
        return out
    if isinstance(node, list):
        return [_document_secrets(v) for v in node]
    return node


def render(schema: dict[str, Any]) -> str:
    """The exact bytes written for a schema: sorted keys, two-space indent, a trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def default_dir() -> Path:
    """``schemas/`` of the source tree this module runs from, else ``./schemas``."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return root / "schemas"
    return Path("schemas")


def stale(directory: Path) -> list[str]:
    """Names of the schema files under ``directory`` that are missing or differ from the models."""
    out = []
    for name, make in sorted(SCHEMAS.items()):
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(make()):
            out.append(name)
    return out


def write(directory: Path) -> list[str]:
    """Write every schema that changed; return the names written."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale(directory)
    for name in changed:
        (directory / name).write_text(render(SCHEMAS[name]()), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.schemas", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="directory to write to (default: schemas/)")
    parser.add_argument("--check", action="store_true", help="only report out-of-date files; exit 1 if any")
    args = parser.parse_args(argv)
    directory = args.out or default_dir()
    if args.check:
        names = stale(directory)
        for name in names:
            print(f"{directory / name} is out of date; run `python -m reconciler.schemas`", file=sys.stderr)
        return 1 if names else 0
    for name in write(directory):
        print(f"wrote {directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
