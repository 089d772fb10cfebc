"""Credential references (${env:NAME}, ${file:PATH}) and the redaction of their values.

Secrets never live in YAML. A credential field holds a reference that is
resolved only when a provider connects; every resolved value is remembered so
that anything reconciler prints or writes can be scrubbed of it.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Annotated

from pydantic import Field

from reconciler.errors import SecretError

# What a credential field must hold; the JSON Schema publishes the same pattern.
SECRET_PATTERN = r"^\$\{(env|file):[^}]+\}$"
REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$")
# A credential field: its docstring says what the secret is; the published schema adds how to write one.
SecretRef = Annotated[str, Field(pattern=SECRET_PATTERN)]
# Field names that may (and must) hold a reference.
CREDENTIAL_FIELDS = frozenset({"token", "client_secret", "api_token", "password", "api_key"})

_known: set[str] = set()
_lock = threading.Lock()


def resolve(ref: str, field: str, base_dir: str | None = None) -> str:
    """Return the secret that ``ref`` points at; ``field`` names the config field for errors."""
    m = REFERENCE.match(ref)
    if not m:
        raise SecretError(f"{field}: not a secret reference; write ${{env:NAME}} or ${{file:PATH}}")
    kind, name = m.group(1), m.group(2).strip()
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise SecretError(f"{field}: environment variable {name} is not set")
        if value == "":
            raise SecretError(f"{field}: environment variable {name} is empty")
    else:
        path = Path(name).expanduser()
        if not path.is_absolute() and base_dir:
            path = Path(base_dir) / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"{field}: cannot read secret file {path}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"{field}: secret file {path} is empty")
    remember(value)
    return value


def remember(value: str) -> None:
    """Register a value that must never appear in output."""
    if len(value) >= 4:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Replace every known secret in ``text`` with '***'."""
    if not _known:
        return text
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return text
