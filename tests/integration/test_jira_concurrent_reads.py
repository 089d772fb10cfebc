"""A Jira plan makes the reads of its integrations that do not depend on each other at once (create screens,
test-issue records, test issues), bounded by the client's workers, and plans exactly what one read after
another gives: the same plan, the same requests, every call contract-checked."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.plan.model import Plan
from reconciler.providers.jira import client as jira_client
from reconciler.render import PlanJson
from reconciler.session import Session
from tests.contract.jira_spec import JiraRig, rig_fixture

# the reads made per integration after the first wave: the test-issue search, its record, the issue itself
SLOW = re.compile(r"/search|/issue/createmeta/|/properties/reconciler\.test|/issue/[A-Z]+-\d+$")


class Overlap(httpx.BaseTransport):
    """Holds each slow read a moment and counts how many were in flight at once (per path kind)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.requests: Counter[tuple[str, str]] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self.lock:
            self.requests[(request.method, path)] += 1
        m = SLOW.search(path)
        if m is None:
            return self.inner.handle_request(request)
        kind = re.sub(r"[A-Z]+-\d+$", "{key}", m.group(0))
        with self.lock:
            self.now[kind] += 1
            self.most[kind] = max(self.most[kind], self.now[kind])
        try:
            time.sleep(0.05)  # reads asked for at once overlap here; reads one after another never do
            return self.inner.handle_request(request)
        finally:
            with self.lock:
                self.now[kind] -= 1


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraRig]:
    yield from rig_fixture(request.param, tmp_path, monkeypatch)


def integrations(n: int, **kw: Any) -> list[dict[str, Any]]:
    return [{"name": f"web{k}", "program": f"acme-{k}", "project": "SEC" if k % 2 else "OPS", "issue_type": "Bug",
             "priorities": {"high": "High"} if k % 2 else {}, "team_roles": {"appsec": "Developers"}, **kw}
            for k in range(n)]


def plan(rig: JiraRig, workers: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Plan, Overlap]:
    monkeypatch.setattr(jira_client, "LOOKUP_WORKERS", workers)
    t = Overlap(rig.transport)
    with Session(load_config(rig.folder), transports={rig.conn: t}) as s:
        return s.plan(), t


def same_plan(a: Plan, b: Plan) -> None:
    strip = re.compile(r'"(generated_at|created|timestamp)": "[^"]*"')
    assert strip.sub("", PlanJson().render(a)) == strip.sub("", PlanJson().render(b))


def test_a_first_plan_reads_screens_and_test_issues_at_once_and_plans_as_one_after_another(
        jira: JiraRig, monkeypatch: pytest.MonkeyPatch) -> None:
    jira.write(integrations(6))
    one_by_one, seq = plan(jira, 1, monkeypatch)
    at_once, par = plan(jira, 8, monkeypatch)
    same_plan(one_by_one, at_once)
    assert par.requests == seq.requests
    end = "/search/jql" if jira.flavour == "cloud" else "/search"
    assert sum(n for (m, p), n in par.requests.items() if m == "POST" and p.endswith(end)) == 6
    assert seq.most["/search"] == 1
    assert 1 < par.most["/search"] <= 8
    assert 1 < par.most["/issue/createmeta/"] <= 2  # one screen per project: SEC and OPS


def test_a_later_plan_reads_test_issue_records_and_issues_at_once(
        jira: JiraRig, monkeypatch: pytest.MonkeyPatch) -> None:
    jira.write(integrations(5, delete_test_issue=True))
    with Session(load_config(jira.folder), transports=jira.transports()) as s:
        assert not apply_plan(s, s.plan()).failures
    one_by_one, seq = plan(jira, 1, monkeypatch)
    at_once, par = plan(jira, 8, monkeypatch)
    assert not at_once.has_changes
    same_plan(one_by_one, at_once)
    assert par.requests == seq.requests
    assert seq.most["/properties/reconciler.test"] == 1
    assert 1 < par.most["/properties/reconciler.test"] <= 8
    assert 1 < par.most["/issue/{key}"] <= 8
