"""Every change of a plan ends in exactly one outcome, and a malformed change is refused even under -O."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.plan.model import Action, AttributeChange, Change, Plan
from reconciler.sandbox import scim as scim_sandbox
from reconciler.session import Session

ROOT = Path(__file__).resolve().parents[2]


def test_a_change_no_system_can_apply_fails_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c.yaml").write_text(
        "providers:\n  - name: platform\n    type: scim\n    base_url: http://127.0.0.1:18451/v2\n"
        "    auth: {type: bearer, token: '${env:SCIM_TOKEN}'}\n")
    monkeypatch.setenv("SCIM_TOKEN", "demo-token")
    t, _ = scim_sandbox.transport("demo-token")
    replace = Change("platform", "user", "a@acme.io", Action.REPLACE, 'scim.platform.user["a@acme.io"]',
                     before={"x": 1}, after={"x": 2}, diff=[AttributeChange("x", 1, 2)], id="1")
    alien = Change("ldap", "user", "b", Action.CREATE, 'ldap.dir.user["b"]', after={"x": 1})
    seen: list[str] = []
    with Session(load_config(tmp_path), transports={"platform": t}) as s:
        result = apply_plan(s, Plan(changes=[replace, alien]), observer=lambda o: seen.append(o.change.address))
    assert result.failures == {
        'scim.platform.user["a@acme.io"]': "not applied: scim has no way to apply a replace of a user",
        'ldap.dir.user["b"]': "not applied: no live system owns this address"}
    assert sorted(seen) == sorted([replace.address, alien.address])
    assert "2 failed" in result.summary()


def test_a_malformed_change_is_refused_under_python_O() -> None:
    code = ("from reconciler.plan.model import Change, Action\n"
            "try:\n"
            "    Change('p', 'user', 'k', Action.CREATE, 'a', before={'x': 1}, after={'x': 2})\n"
            "except ValueError as e:\n"
            "    print('refused:', e)\n")
    r = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 0 and r.stdout.startswith("refused: a: a create has"), r.stdout + r.stderr
