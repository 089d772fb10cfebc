"""Writing YAML that reads back as written: what `import`, `usermaps import` and `usermaps resolve --write`
emit is read again by ``yamlpos``, which resolves plain scalars the YAML 1.1 way (``NO``, ``on``, ``yes``
are booleans, ``0x1F`` a number, ``2024-01-01`` a date). ruamel.yaml writes YAML 1.2, where those are
text, and would leave them unquoted; here every string the reader would take for something else is
written double-quoted, so ``department: "NO"`` stays the text NO.
"""

from __future__ import annotations

from typing import Any

import yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import ScalarNode as RuamelScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString

_RESOLVER = yaml.resolver.Resolver()
_RUAMEL = VersionedResolver(version=(1, 2))
_STR = "tag:yaml.org,2002:str"


def reads_as_text(value: str) -> bool:
    """Whether ``value`` written plain would be read back as this same text."""
    tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return bool(tag == _STR)


def _quoted_by_ruamel(value: str) -> bool:
    """ruamel.yaml quotes (single) a string that YAML 1.2 would take for something else, by itself."""
    tag = _RUAMEL.resolve(RuamelScalarNode, value, (True, False))
    return bool(tag != _STR)


def quoted(value: str) -> str:
    if isinstance(value, ScalarString) or reads_as_text(value) or _quoted_by_ruamel(value):
        return value
    written: str = DoubleQuotedScalarString(value)
    return written


def safe_for_reading(data: Any) -> Any:
    """``data`` with every string key and value the reader would not take as text double-quoted, in place
    for ruamel's commented containers (their comments and layout are kept)."""
    if isinstance(data, CommentedMap):
        for k in list(data.keys()):
            v = safe_for_reading(data[k])
            if isinstance(k, str) and not reads_as_text(k):
                data.insert(list(data.keys()).index(k), quoted(k), v)
                del data[k]
            else:
                data[k] = v
        return data
    if isinstance(data, CommentedSeq):
        for i, v in enumerate(data):
            data[i] = safe_for_reading(v)
        return data
    if isinstance(data, dict):
        return {quoted(k) if isinstance(k, str) else k: safe_for_reading(v) for k, v in data.items()}
    if isinstance(data, list):
        return [safe_for_reading(v) for v in data]
    if isinstance(data, str):
        return quoted(data)
    return data
