"""Credential references (${env:NAME}, ${file:PATH}) and the redaction of their values.

Secrets never live in YAML. A credential field holds a reference that is
resolved only when a provider connects; every resolved value is remembered so
that anything reconciler prints or writes can be scrubbed of it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from pathlib import Path
from typing import Annotated

from pydantic import Field

from reconciler.errors import SecretError
from reconciler.files import SECRET_FILE_BYTES, FileRefused, read_limited

# What a credential field must hold; the JSON Schema publishes the same pattern.
SECRET_PATTERN = r"^\$\{(env|file):[^}]+\}$"
REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$")
# A credential field: its docstring says what the secret is; the published schema adds how to write one.
SecretRef = Annotated[str, Field(pattern=SECRET_PATTERN)]
# Field names that may (and must) hold a reference.
CREDENTIAL_FIELDS = frozenset({"token", "client_secret", "api_token", "password", "api_key"})
# Characters no credential holds (they cannot travel in an HTTP header).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A shorter secret is refused: it cannot be told apart from ordinary text, so it could not be redacted.
MIN_SECRET_LENGTH = 8

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
            value = read_limited(path, SECRET_FILE_BYTES).decode("utf-8").strip()
        except FileRefused as exc:
            raise SecretError(f"{field}: secret file {path} {exc}") from None
        except OSError as exc:
            raise SecretError(f"{field}: cannot read secret file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SecretError(f"{field}: secret file {path} is not UTF-8 text") from None
        if not value:
            raise SecretError(f"{field}: secret file {path} is empty")
    source = f"environment variable {name}" if kind == "env" else f"secret file {path}"
    if len(value) < MIN_SECRET_LENGTH:
        # never printed, never sent: redacting a few characters everywhere would mangle every message
        raise SecretError(f"{field}: {source} holds a secret of {len(value)} characters; a credential is at "
                          f"least {MIN_SECRET_LENGTH} characters (reconciler refuses shorter ones, which it could "
                          "not tell apart from ordinary text to redact them)")
    if _CONTROL.search(value):
        # it would go into an HTTP header, where a line break is refused (and the refusal would quote it)
        remember(value)
        raise SecretError(f"{field}: {source} holds a line break or another control character; a credential "
                          "is one line of text")
    remember(value)
    return value


def remember(value: str, *, encoded_only: bool = False) -> None:
    """Register a value that must never appear in output, in every form it may travel or be echoed in:
    as is, base64 (a server decoding or re-encoding it), URL-encoded (a form body, a query), JSON- and
    Python-escaped. ``encoded_only``: the value as is is left readable (a header value such as
    ``Bearer <token>``, whose secret part is registered itself and shows as ``Bearer ***``)."""
    if not value:
        return
    forms = _forms(value, encoded_only)
    with _lock:
        _known.update(forms)


def remember_basic(user: str, secret: str) -> str:
    """Register an HTTP basic credential (the secret, ``user:secret`` and the header value in every form);
    return the ``Authorization`` header value."""
    remember(secret)
    pair = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    remember(f"{user}:{secret}")
    header = f"Basic {pair}"
    remember(header, encoded_only=True)  # shows as 'Basic ***'
    return header


def remember_header(header: str) -> str:
    """Register a whole credential header value (``Bearer ...``) in every encoded form; return it."""
    remember(header, encoded_only=True)  # as is, it shows as 'Bearer ***'
    return header


def _encodings(s: str) -> set[str]:
    from urllib.parse import quote, quote_plus
    return {s, s.encode("unicode_escape").decode("ascii"), s.replace("\\", "\\\\"),
            json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1],
            quote(s, safe=""), quote(s), quote_plus(s), quote_plus(s, safe="")}


def _forms(value: str, encoded_only: bool = False) -> set[str]:
    raw = value.encode("utf-8")
    encoded = {base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
    encoded |= {e.rstrip("=") for e in encoded}
    out: set[str] = set()
    for s in encoded if encoded_only else {value, *encoded}:
        out |= _encodings(s)
    return {f for f in out if f}


def redact(text: str) -> str:
    """Replace every known secret (in every remembered form) in ``text`` with '***'."""
    if not _known:
        return text
    with _lock:
        forms = sorted(_known, key=len, reverse=True)
    for form in forms:
        if form in text:
            text = text.replace(form, "***")
    return text
