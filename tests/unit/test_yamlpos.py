"""yamlpos against PyYAML's own composer: for any document of mappings, lists and scalars, the data is what
yaml.safe_load reads and every value's and key's line and column is the one its node starts at."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config import yamlpos

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
                     st.sampled_from(["a@acme.io", "yes", "1.5", "~", "Dept 4", "'quoted'", ""]))
_keys = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=6)
_docs = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_keys, inner, max_size=4)), max_leaves=30)


def _positions(node: yaml.Node, path: tuple[Any, ...],
               out: dict[tuple[tuple[Any, ...], bool], tuple[int, int]]) -> None:
    out[(path, False)] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            child = (*path, k.value)
            out[(child, True)] = (k.start_mark.line + 1, k.start_mark.column + 1)
            _positions(v, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _positions(v, (*path, i), out)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(_keys, _docs, min_size=1, max_size=3), flow=st.booleans())
def test_data_and_every_position_are_the_composers(data: dict[str, Any], flow: bool) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow or None, sort_keys=False)
    doc = yamlpos.parse(text.encode(), "t.yaml")
    assert doc.data == yaml.safe_load(text)
    want: dict[tuple[tuple[Any, ...], bool], tuple[int, int]] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    assert root is not None
    _positions(root, (), want)
    got = {(path, key): doc.position(path, key=key) for path, key in want}
    assert got == want, text
