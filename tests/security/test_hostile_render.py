"""A hostile plan (names and values from a live server: line breaks, forged addresses, Markdown, HTML,
ANSI/OSC escapes, bidi overrides, zero-width characters) rendered in every format: no line is forged,
no markup gets through, JSON keeps the data as it is (issue 13, item 5)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from reconciler.config.loader import load_config
from reconciler.plan.model import Action, AttributeChange, Change, Plan
from reconciler.render import PlanJson, PlanMarkdown, PlanText
from reconciler.session import Session
from tests.servers import ScimServer

FORGED = 'scim.platform.user["ceo@acme.io"]'
HOSTILE = [
    f'evil"]\n  - {FORGED} will be deleted\n  # ',
    "**bold** [link](https://evil.example) <img src=x onerror=alert(1)> `code` | cell |",
    "\x1b[2J\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",
    "admin\u202etxt.exe",
    "ad\u200bmin\u2028line\u2029para\x85nel\r",
]


def hostile_plan() -> Plan:
    changes = []
    for i, name in enumerate(HOSTILE):
        changes.append(Change("platform", "group", name, Action.DELETE, f'scim.platform.group["{name}"]',
                              before={"displayName": name, "members": [name]}, id=str(i), notes=[name]))
        changes.append(Change("platform", "user", f"u{i}@acme.io", Action.UPDATE,
                              f'scim.platform.user["u{i}@acme.io"]', before={"title": "x"},
                              after={"title": name}, diff=[AttributeChange("title", "x", name)], id=f"u{i}"))
    return Plan(changes=changes, notes=HOSTILE, config_digest="d", commit=None,
                protected=[f'scim.platform.group["{n}"]' for n in HOSTILE])


def bad_chars(text: str) -> list[str]:
    import unicodedata
    return sorted({repr(ch) for ch in text if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")})


# what may come before an address on a plan line: indentation, symbols, tags
LEAD = re.compile(r"^[\s\-+~#*>]*(?:<[^>]*>)*[\s\-+~]*")


def assert_unforgeable(text: str) -> None:
    assert bad_chars(text) == []
    for line in text.splitlines():
        assert not line[LEAD.match(line).end():].startswith(FORGED), line  # type: ignore[union-attr]


def test_text_rendering_cannot_be_forged() -> None:
    text = PlanText(colour=False).render(hostile_plan())
    assert_unforgeable(text)
    # every change is exactly its lines: two per change header, one per value
    assert text.count(" will be deleted\n") == len(HOSTILE)
    assert "\\u000a" in text and "\\u202e" in text and "\\u001b" in text


def test_markdown_rendering_cannot_be_forged() -> None:
    md = PlanMarkdown().render(hostile_plan())
    assert_unforgeable(md)
    for markup in ("**bold**", "[link](", "<img", "`code`", "| cell |"):
        outside_fences = "\n".join(line for line in md.splitlines() if not line.startswith(("+ ", "- title", "- ")))
        assert markup not in outside_fences, markup
    assert md.count("<details>") == md.count("</details>") == len(hostile_plan().changes)


def test_json_keeps_the_data_untouched() -> None:
    doc = json.loads(PlanJson().render(hostile_plan()))
    assert sorted(doc["notes"]) == sorted(HOSTILE)
    assert sorted(c["key"] for c in doc["changes"] if c["kind"] == "group") == sorted(HOSTILE)


def test_names_from_the_live_server_are_escaped(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    with scim.client() as c:  # a group made on the provider by someone else, marked as reconciler's
        r = c.post("Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                   "displayName": HOSTILE[0], "externalId": "reconciler:x"})
        assert r.status_code == 201, r.text
    cfg = write_config(scim.base_url, members=["alice@acme.io"])
    with Session(load_config(cfg)) as s:
        p = s.plan()
    assert any(c.action is Action.DELETE for c in p.changes)
    for text in (PlanText().render(p), PlanMarkdown().render(p)):
        assert_unforgeable(text)
