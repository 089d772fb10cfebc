"""Faults between reconciler and a real scim2-server, injected by a proxy on 127.0.0.1.

Each test checks the server's own final state: exactly the declared objects, no duplicates.
Backoff sleeps are skipped (or recorded) through the Session's ``sleep``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.plan.model import Plan
from reconciler.providers.scim import client_for
from reconciler.session import Session
from tests.faultproxy import Fault, fault_proxy
from tests.servers import ScimServer

ROOT = Path(__file__).resolve().parents[2]


def no_sleep(_: float) -> None:
    return None


def org(n: int = 12, teams: int = 3) -> tuple[list[str], list[dict[str, Any]]]:
    members = [f"p{i:02d}@acme.io" for i in range(n)]
    return members, [{"name": f"team-{t}", "members": members[t::teams]} for t in range(teams)]


def server_state(scim: ScimServer) -> tuple[list[str], dict[str, list[str]]]:
    """userNames (sorted, duplicates kept) and group name -> member userNames, read directly."""
    with scim.client() as c:
        users = c.get("Users", params={"count": "1000"}).json().get("Resources") or []
        groups = c.get("Groups", params={"count": "1000"}).json().get("Resources") or []
    names = {u["id"]: u["userName"] for u in users}
    out: dict[str, list[str]] = {}
    for g in groups:
        assert g["displayName"] not in out, f"duplicate group {g['displayName']}"
        out[g["displayName"]] = sorted(names.get(m["value"], "?") for m in g.get("members") or [])
    return sorted(u["userName"] for u in users), out


def assert_exactly(scim: ScimServer, members: list[str], teams: list[dict[str, Any]]) -> None:
    users, groups = server_state(scim)
    assert users == sorted(members), Counter(users).most_common(3)
    assert groups == {t["name"]: sorted(t["members"]) for t in teams}


def converge_without_faults(config_dir: Path) -> Plan:
    config = load_config(config_dir)
    with Session(config) as s:
        plan = s.plan()
        assert apply_plan(s, plan).failures == {}
    with Session(config) as s:
        again = s.plan()
    assert again.changes == [], [c.address for c in again.changes]
    return plan


def test_5xx_on_a_share_of_calls_names_what_failed_and_a_rerun_converges(
        scim: ScimServer, write_config: Callable[..., Path]) -> None:
    members, teams = org()
    faults = [Fault("status", status=500, share=0.35, methods=("POST", "PATCH")),
              Fault("status", status=503, share=0.2, methods=("GET",), path="/Users")]
    with fault_proxy(scim.base_url, faults, seed=1) as proxy:
        # one at a time: the order of calls, and so which of them fail, is the same on every run
        cfg = write_config(proxy.url, members=members, teams=teams, bulk="never", concurrency=1)
        with Session(load_config(cfg), sleep=no_sleep, attempts=2) as s:
            plan = s.plan()
            result = apply_plan(s, plan)
        assert proxy.count("status") > 5
    assert result.failures, "with a third of the writes failing twice in a row, some change must fail"
    planned = {c.address for c in plan.changes}
    assert set(result.failures) <= planned
    for address, reason in result.failures.items():
        assert "HTTP 500" in reason or "depends on" in reason or "not created" in reason, (address, reason)
    # exactly what was named is left to do: a fresh plan holds no other change (a team that a failed
    # member could not join is named in that member's failure, "so not added to scim...group[...]")
    named = set(result.failures) | {g for reason in result.failures.values()
                                    for g in re.findall(r'scim\.\w+\.group\["[^"]+"\]', reason)}
    direct = write_config(scim.base_url, members=members, teams=teams, folder="direct")
    with Session(load_config(direct)) as s:
        left = {c.address for c in s.plan().changes}
    assert left and left <= named
    converge_without_faults(direct)
    assert_exactly(scim, members, teams)


def test_429_with_retry_after_is_waited_out(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    members, teams = org(6, 2)
    sleeps: list[float] = []
    faults = [Fault("status", status=429, headers={"Retry-After": "3"}, times=4, after=2)]
    with fault_proxy(scim.base_url, faults) as proxy:
        cfg = write_config(proxy.url, members=members, teams=teams)
        with Session(load_config(cfg), sleep=sleeps.append) as s:
            result = apply_plan(s, s.plan())
        assert proxy.count("status") == 4
    assert result.failures == {}
    assert sleeps.count(3.0) == 4, sleeps
    assert_exactly(scim, members, teams)


def test_timeouts_are_retried_then_named(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    members, teams = org(6, 2)
    # every membership PATCH stalls past the client's timeout: those changes fail, by name
    faults = [Fault("stall", seconds=3.0, methods=("PATCH",), path="/Groups/"),
              Fault("stall", seconds=3.0, methods=("GET",), path="/Users", times=1)]
    with fault_proxy(scim.base_url, faults) as proxy:
        cfg = write_config(proxy.url, members=members, teams=teams, timeout=1.0, bulk="never")
        with Session(load_config(cfg), sleep=no_sleep, attempts=2) as s:
            plan = s.plan()  # the stalled list call is retried
            result = apply_plan(s, plan)
        assert proxy.count("stall") == 1 + 2 * len(teams)
    assert sorted(result.failures) == sorted(f'scim.platform.group["{t["name"]}"]' for t in teams)
    assert all("timed out" in r for r in result.failures.values()), result.failures
    converge_without_faults(write_config(scim.base_url, members=members, teams=teams, folder="direct"))
    assert_exactly(scim, members, teams)


def test_a_lost_create_response_makes_no_duplicate(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    members, teams = org(10, 4)
    # the server creates the object, the answer never arrives, the client retries
    faults = [Fault("lose", methods=("POST",), path="/Users$", share=0.5),
              Fault("lose", methods=("POST",), path="/Groups$", share=0.5),
              Fault("lose", methods=("PATCH",), share=0.3)]
    with fault_proxy(scim.base_url, faults, seed=1) as proxy:
        cfg = write_config(proxy.url, members=members, teams=teams, bulk="never")
        with Session(load_config(cfg), sleep=no_sleep) as s:
            result = apply_plan(s, s.plan())
        assert proxy.count("lose", "POST", "/Users") >= 3
        assert proxy.count("lose", "POST", "/Groups") >= 1
    assert result.failures == {}
    # scim2-server does not even keep group names unique: a blind retry would show up here
    assert_exactly(scim, members, teams)


def _audit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for_creates(proc: subprocess.Popen[Any], audit: Path, n: int, timeout: float = 60) -> None:
    """Until the audit log of a running apply shows ``n`` users created (or it ends, or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(1 for e in _audit(audit) if e.get("method") == "POST" and e.get("status") == 201
               and e.get("path", "").endswith("/Users")) >= n:
            return
        time.sleep(0.02)


def test_kill_9_half_way_then_apply_again_converges(scim: ScimServer, write_config: Callable[..., Path],
                                                    tmp_path: Path) -> None:
    members, teams = org(40, 4)
    audit = tmp_path / "audit.jsonl"
    env = {**os.environ, "SCIM_TOKEN": scim.token, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", "from reconciler.cli import main; main()", "apply", "--auto-approve", "--no-color",
           "--audit-log", str(audit)]
    with fault_proxy(scim.base_url, [Fault("delay", seconds=0.05, methods=("POST", "PATCH"))]) as proxy:
        cfg = write_config(proxy.url, members=members, teams=teams, bulk="never", concurrency=2)
        proc = subprocess.Popen([*cmd, str(cfg)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_creates(proc, audit, 12)
            assert proc.poll() is None, "the apply ended before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    first = _audit(audit)
    users_after_kill, _ = server_state(scim)
    logged = [e for e in first if e.get("method") == "POST" and e.get("path", "").endswith("/Users")
              and e.get("status") == 201]
    assert 12 <= len(logged) < len(members)
    # every logged create is on the server; at most the calls in flight (concurrency 2) are not logged
    assert {e["address"] for e in logged} <= {f'scim.platform.user["{u}"]' for u in users_after_kill}
    assert len(logged) <= len(users_after_kill) <= len(logged) + 2
    assert [e["event"] for e in first if e["event"].startswith("apply-")] == ["apply-start"]

    direct = write_config(scim.base_url, members=members, teams=teams, folder="direct", bulk="never")
    again = subprocess.run([*cmd, str(direct)], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert_exactly(scim, members, teams)
    events = [e["event"] for e in _audit(audit) if e["event"].startswith("apply-")]
    assert events == ["apply-start", "apply-start", "apply-end"]
    end = [e for e in _audit(audit) if e["event"] == "apply-end"][0]
    assert end["failed"] == 0
    # the second run creates only who was missing: an account created just before the kill is adopted
    second = [e for e in _audit(audit)[len(first):] if e.get("method") == "POST"
              and e.get("path", "").endswith("/Users") and e.get("status") == 201]
    assert len(second) == len(members) - len(users_after_kill)
    with Session(load_config(direct)) as s:
        assert s.plan().changes == []


def _plans_for_titles(cfg_a: Path, cfg_b: Path) -> tuple[Session, Plan, Session, Plan]:
    sa, sb = Session(load_config(cfg_a)), Session(load_config(cfg_b))
    return sa, sa.plan(), sb, sb.plan()


def test_two_applies_at_once_lose_no_update_where_the_provider_has_etags(
        scim: ScimServer, write_config: Callable[..., Path]) -> None:
    names = [f"c{i}@acme.io" for i in range(10)]
    converge_without_faults(write_config(scim.base_url, members=names, folder="base"))
    cfg_a = write_config(scim.base_url, members=[{"email": e, "title": "A"} for e in names], folder="a")
    cfg_b = write_config(scim.base_url, members=[{"email": e, "title": "B"} for e in names], folder="b")
    sa, plan_a, sb, plan_b = _plans_for_titles(cfg_a, cfg_b)
    assert all(c.precondition and c.precondition.etag for c in plan_a.changes)
    results: dict[str, Any] = {}
    start = threading.Barrier(2)

    def run(name: str, s: Session, plan: Plan) -> None:
        start.wait()
        results[name] = apply_plan(s, plan)

    threads = [threading.Thread(target=run, args=("A", sa, plan_a)),
               threading.Thread(target=run, args=("B", sb, plan_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sa.close()
    sb.close()
    with scim.client() as c:
        titles = {u["userName"]: u.get("title") for u in c.get("Users").json()["Resources"]}
    for e in names:
        address = f'scim.platform.user["{e}"]'
        won = [n for n in ("A", "B") if address not in results[n].failures]
        assert len(won) == 1, (e, won)  # exactly one apply changed it; the other was refused
        assert titles[e] == won[0]
        loser = results["B" if won == ["A"] else "A"].failures[address]
        assert "HTTP 412" in loser


def test_without_etags_a_stale_change_is_refused(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    names = [f"d{i}@acme.io" for i in range(4)]
    converge_without_faults(write_config(scim.base_url, members=names, folder="base"))

    def no_etags(body: Any) -> Any:
        body["etag"] = {"supported": False}
        return body

    with fault_proxy(scim.base_url, [Fault("rewrite", path="/ServiceProviderConfig", rewrite=no_etags)]) as proxy:
        cfg_a = write_config(proxy.url, members=[{"email": e, "title": "A"} for e in names], folder="a")
        cfg_b = write_config(proxy.url, members=[{"email": e, "title": "B"} for e in names], folder="b")
        sa, plan_a, sb, plan_b = _plans_for_titles(cfg_a, cfg_b)
        with sa, sb:
            assert not client_for(sa, "platform").caps.etag
            assert apply_plan(sa, plan_a).failures == {}
            refused = apply_plan(sb, plan_b).failures
    assert sorted(refused) == sorted(f'scim.platform.user["{e}"]' for e in names)
    assert all("changed on the provider since the plan" in r for r in refused.values()), refused
    with scim.client() as c:
        assert {u.get("title") for u in c.get("Users").json()["Resources"]} == {"A"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_apply_stops_starting_changes_and_the_next_apply_converges(
        scim: ScimServer, write_config: Callable[..., Path], tmp_path: Path, sig: signal.Signals) -> None:
    """The first SIGINT/SIGTERM lets the changes in flight finish, starts no more, says what did not run
    (audit log and stderr) and exits 130. Before, an apply of 40 changes ran all 40 after a Ctrl-C."""
    members, teams = org(40, 4)
    audit = tmp_path / "audit.jsonl"
    env = {**os.environ, "SCIM_TOKEN": scim.token, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", "from reconciler.cli import main; main()", "apply", "--auto-approve", "--no-color",
           "--audit-log", str(audit)]
    with fault_proxy(scim.base_url, [Fault("delay", seconds=0.05, methods=("POST", "PATCH"))]) as proxy:
        cfg = write_config(proxy.url, members=members, teams=teams, bulk="never", concurrency=2)
        proc = subprocess.Popen([*cmd, str(cfg)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_creates(proc, audit, 8)
            assert proc.poll() is None, "the apply ended before the signal"
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "interrupted: finishing the changes in flight" in err and "change(s) not started" in err, err
    (stop,) = [e for e in _audit(audit) if e["event"] == "interrupted"]
    assert stop["not_started"] > 0 and stop["ran"] > 0
    created, _ = server_state(scim)
    assert len(created) < len(members)  # it did stop
    direct = write_config(scim.base_url, members=members, teams=teams, folder="direct", bulk="never")
    again = subprocess.run([*cmd, str(direct)], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert_exactly(scim, members, teams)
