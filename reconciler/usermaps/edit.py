"""Add identities to user maps in the YAML files themselves, keeping comments, order and formatting.

Uses ruamel.yaml's round trip: only the maps that change are touched. The
config is loaded again after writing; if it no longer loads, every file is put
back as it was.
"""

from __future__ import annotations

import bisect
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from reconciler.config.loader import load_config
from reconciler.config.models import Config
from reconciler.config.yamlout import quoted
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.usermaps.resolve import user_maps

NEW_FILE = "user_maps.yaml"


def _yaml(text: str) -> tuple[YAML, Any]:
    data, indent, block_seq_indent = load_yaml_guess_indent(text)
    y = YAML(typ="rt", pure=True)
    y.preserve_quotes = True
    y.width = 4096
    seq_offset = block_seq_indent or 0
    mapping = indent - seq_offset if indent and indent > seq_offset else (indent or 2)
    y.indent(mapping=mapping, sequence=indent or 2, offset=seq_offset)
    y.explicit_start = text.lstrip().startswith("---")
    return y, y.load(text)


def add_identities(config: Config, system: str, found: dict[str, str]) -> list[Path]:
    """Add ``system: identity`` to each member's user map (``found``: member email -> identity), creating
    maps where members have none. Returns the files written."""
    if not found:
        return []
    by_member = {um.key: um for um in user_maps(config)}
    root = Path(config.root)
    edits: dict[Path, list[tuple[str, str]]] = {}
    new_maps: list[tuple[str, str]] = []
    target: Path | None = None
    for email, ident in found.items():
        um = by_member.get(email.lower())
        if um is not None:
            edits.setdefault(Path(um.where()[0]), []).append((email, ident))
        else:
            new_maps.append((email, ident))
    if new_maps:
        # new maps go next to the existing ones; else into a new file of the config directory
        first = user_maps(config)
        if first:
            target = Path(first[0].where()[0])
        else:
            target = root / NEW_FILE if root.is_dir() else root
        edits.setdefault(target, [])
    originals: dict[Path, bytes | None] = {}
    try:
        for path, items in edits.items():
            originals[path] = path.read_bytes() if path.exists() else None
            raw = originals[path]
            text = raw.decode("utf-8") if raw is not None else ""
            extra = new_maps if path == target else []
            _write(path, _edit(text, system, items, extra))
        load_config(config.root)
    except ConfigError as exc:
        _restore(originals)
        raise ReconcilerError("the edited config no longer loads, so every file was put back:\n" + str(exc)) from None
    except BaseException:
        _restore(originals)
        raise
    return sorted(edits)


def _edit(text: str, system: str, items: list[tuple[str, str]], new_maps: list[tuple[str, str]]) -> str:
    if text.strip():
        y, data = _yaml(text)
    else:
        y, data = _yaml("user_maps:\n  - member: x\n    identities: {}\n")  # the house indentation
        data["user_maps"] = CommentedSeq()
    if data is None:
        data = CommentedMap()
    seq = data.get("user_maps")
    if seq is None:
        seq = data["user_maps"] = CommentedSeq()
    for email, ident in items:
        for entry in seq:
            if str(entry.get("member", "")).lower() == email.lower():
                idents = entry["identities"]
                idents[system] = quoted(ident)
                break
    for email, ident in new_maps:
        entry = CommentedMap()
        entry["member"] = quoted(email)
        idents = CommentedMap()
        idents[system] = quoted(ident)
        entry["identities"] = idents
        seq.insert(_position(seq, email), entry)
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _position(seq: CommentedSeq, email: str) -> int:
    """Where a new map goes: in member order when the list is sorted by member, else at the end."""
    keys = [str(e.get("member", "")).lower() for e in seq if isinstance(e, dict)]
    if len(keys) != len(seq) or keys != sorted(keys):
        return len(seq)
    return bisect.bisect(keys, email.lower())


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _restore(originals: dict[Path, bytes | None]) -> None:
    for path, raw in originals.items():
        if raw is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(raw)
