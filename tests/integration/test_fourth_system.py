"""A fourth live system, written the way docs/architecture.md says ("Adding a system") and registered with
``registry.register``: plan, apply, saved plans, --target, drift checks and the audit log reach it with no
edit to the session, the executor, saved plans or the CLI.

The system mirrors every member of the config into a directory service: a real HTTP server on a socket
(``Directory`` below: paged ``GET /accounts``, ``PUT`` and ``DELETE /accounts/{email}``). Its client goes
through ``providers/_http.Http`` and its read through ``providers/paging.read_pages``, as a package of
reconciler's would; its planner is pure; its applier makes one step per change in its own pool.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.config.models import Config
from reconciler.contract import Check, CheckResult, SystemPlan
from reconciler.errors import ReconcilerError, StalePlanError
from reconciler.execute import Graph, Outcome
from reconciler.plan.model import Action, AttributeChange, Change, Precondition
from reconciler.providers import registry
from reconciler.providers._http import Http, json_body
from reconciler.providers.digest import digest
from reconciler.providers.paging import Page, read_pages
from reconciler.session import Session
from tests.integration.test_cli_core import run
from tests.servers import ScimServer

PREFIX = "directory."
PAGE = 2  # small pages: a directory of a few members is read over several requests


# --- the live system's server: a directory of accounts on a real socket -----------------------------

class Directory:
    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        directory = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _email(self) -> str:
                return unquote(urlsplit(self.path).path.removeprefix("/accounts/"))

            def do_GET(self) -> None:  # noqa: N802
                directory.requests.append(f"GET {urlsplit(self.path).path}")
                q = parse_qs(urlsplit(self.path).query)
                offset, limit = int(q.get("offset", ["0"])[0]), int(q.get("limit", ["100"])[0])
                with directory.lock:
                    items = [{"email": e, **a} for e, a in sorted(directory.accounts.items())]
                self._send(200, {"total": len(items), "accounts": items[offset:offset + limit]})

            def do_PUT(self) -> None:  # noqa: N802
                directory.requests.append("PUT /accounts/{email}")
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with directory.lock:
                    directory.accounts[self._email()] = {"name": body["name"]}
                self._send(204)

            def do_DELETE(self) -> None:  # noqa: N802
                directory.requests.append("DELETE /accounts/{email}")
                with directory.lock:
                    gone = directory.accounts.pop(self._email(), None)
                self._send(404 if gone is None else 204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Directory:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the fourth system's package: client, pure planner, applier, the contract ------------------------

class DirectoryClient:
    def __init__(self, url: str) -> None:
        self.http = Http(httpx.Client(base_url=url, timeout=10), "directory")

    def close(self) -> None:
        self.http.close()

    def accounts(self) -> dict[str, dict[str, Any]]:
        def fetch(offset: int) -> Page:
            body = json_body(self.http.request("GET", "/accounts", params={"offset": offset, "limit": PAGE},
                                               what="cannot list accounts"))
            return Page(list(body["accounts"]), int(body["total"]))
        items, _ = read_pages(fetch, page_size=PAGE, url="/accounts", key=lambda a: str(a["email"]))
        return {str(a["email"]): {"name": a["name"]} for a in items}

    def put(self, email: str, name: str) -> None:
        self.http.request("PUT", f"/accounts/{quote(email, safe='')}", json={"name": name},
                          what=f"cannot write account {email}")

    def delete(self, email: str) -> None:
        self.http.request("DELETE", f"/accounts/{quote(email, safe='')}", what=f"cannot delete account {email}")


def address(email: str) -> str:
    return f'{PREFIX}main.account["{email}"]'


def desired(config: Config) -> dict[str, dict[str, Any]]:
    return {m.email: {"name": m.display_name or m.email} for m in config.members}


def plan_accounts(want: dict[str, dict[str, Any]], live: dict[str, dict[str, Any]]) -> list[Change]:
    """Pure: desired and live accounts in, changes out."""
    out = []
    for email in sorted(want.keys() | live.keys()):
        w, have = want.get(email), live.get(email)
        pre = Precondition(digest=digest(have)) if have is not None else None
        if have is None:
            out.append(Change(f"{PREFIX}main", "account", email, Action.CREATE, address(email), after=w))
        elif w is None:
            out.append(Change(f"{PREFIX}main", "account", email, Action.DELETE, address(email), before=have,
                              id=email, precondition=pre))
        elif w != have:
            out.append(Change(f"{PREFIX}main", "account", email, Action.UPDATE, address(email), before=have,
                              after=w, id=email, precondition=pre,
                              diff=[AttributeChange(path="name", before=have["name"], after=w["name"])]))
    return out


class DirectorySystem:
    prefix = PREFIX

    def __init__(self, url: str) -> None:
        self.url = url

    def client(self, session: Session) -> DirectoryClient:
        c: DirectoryClient = session.connection(f"{PREFIX}main", lambda: DirectoryClient(self.url))
        return c

    def plan(self, session: Session) -> SystemPlan:
        return SystemPlan(changes=plan_accounts(desired(session.config), self.client(session).accounts()))

    def steps(self, session: Session, changes: list[Change], graph: Graph,
              report: Callable[[Outcome], None]) -> Callable[[], None] | None:
        client = self.client(session)

        def make(c: Change) -> None:
            live = client.accounts().get(c.key)
            if c.precondition is not None and (live is None or digest(live) != c.precondition.digest):
                raise StalePlanError(f"{c.address} changed since the plan was made; plan again")
            if c.action is Action.DELETE:
                client.delete(c.key)
            else:
                assert c.after is not None
                client.put(c.key, str(c.after["name"]))

        graph.each(graph.pool(f"{PREFIX}main", 4), changes, make, report)
        return None

    def check(self, session: Session) -> list[CheckResult]:
        try:
            n = len(self.client(session).accounts())
        except ReconcilerError as exc:
            return [CheckResult(f"{PREFIX}main", False, [("list", False, str(exc))])]
        return [CheckResult(f"{PREFIX}main", True, [("list", True, f"{n} accounts")])]

    def select(self, changes: list[Change], targets: list[str], config: Config) -> list[Change]:
        return [c for c in changes if c.address in targets]

    def stale(self, session: Session, changes: list[Change], facts: dict[str, Any]) -> list[Check]:
        live = self.client(session).accounts()
        check = Check(f"{PREFIX}main", len(changes), "list")
        for c in changes:
            now = live.get(c.key)
            if (c.precondition.digest if c.precondition else None) != (digest(now) if now is not None else None):
                check.stale.append((c.address, "changed since the plan was made"))
        return [check]


# --- the tests --------------------------------------------------------------------------------------

@pytest.fixture
def directory() -> Iterator[Directory]:
    with Directory() as d:
        system = DirectorySystem(d.url)
        registry.register(system)
        try:
            yield d
        finally:
            registry.unregister(system)


MEMBERS = [{"email": "alice@acme.io", "display_name": "Alice"}, {"email": "bob@acme.io"},
           {"email": "carol@acme.io", "display_name": "Carol"}]


def test_a_registered_system_plans_and_applies_beside_scim_and_converges(
        scim: ScimServer, write_config: Callable[..., Path], directory: Directory) -> None:
    cfg = load_config(write_config(scim.base_url, members=MEMBERS))
    with Session(cfg) as s:
        plan = s.plan()
        mine = [c for c in plan.changes if c.address.startswith(PREFIX)]
        assert [(c.action, c.key) for c in mine] == [(Action.CREATE, m["email"]) for m in MEMBERS]
        assert len(plan.changes) == 6  # three SCIM users too
        result = apply_plan(s, plan)
        assert not result.failures and len(result.outcomes) == 6
    assert directory.accounts == {"alice@acme.io": {"name": "Alice"}, "bob@acme.io": {"name": "bob@acme.io"},
                                  "carol@acme.io": {"name": "Carol"}}
    assert directory.requests.count("GET /accounts") >= 2  # paged: 3 accounts at 2 a page
    with Session(cfg) as s:
        assert not s.plan().has_changes


def test_the_cli_saved_plans_targets_and_audit_log_reach_it_unchanged(
        scim: ScimServer, write_config: Callable[..., Path], directory: Directory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(scim.base_url, members=MEMBERS)
    assert run("apply", "config", "--auto-approve", "--no-color").exit_code == 0
    directory.accounts["alice@acme.io"] = {"name": "Alice (renamed by hand)"}
    directory.accounts["mallory@acme.io"] = {"name": "Mallory"}

    res = run("plan", "config", "--no-color", "--detailed-exitcode")
    assert res.exit_code == 2, res.output
    assert 'directory.main.account["alice@acme.io"]' in res.stdout
    assert 'directory.main.account["mallory@acme.io"]' in res.stdout

    # --target: only what is asked for
    res = run("plan", "config", "--format", "json", "--target", 'directory.main.account["alice@acme.io"]')
    assert [c["address"] for c in json.loads(res.stdout)["changes"]] == ['directory.main.account["alice@acme.io"]']

    # a saved plan: refused when its object moved, applied when it did not, the audit log names each change
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    directory.accounts["alice@acme.io"] = {"name": "Alice (again)"}
    res = run("apply", "plan.json", "--auto-approve")
    assert res.exit_code == 1 and 'directory.main.account["alice@acme.io"]' in res.stderr
    assert "mallory@acme.io" in directory.accounts  # refused whole
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    res = run("apply", "plan.json", "--auto-approve", "--audit-log", "audit.jsonl")
    assert res.exit_code == 0, res.output
    assert directory.accounts == {"alice@acme.io": {"name": "Alice"}, "bob@acme.io": {"name": "bob@acme.io"},
                                  "carol@acme.io": {"name": "Carol"}}
    records = [json.loads(line) for line in Path("audit.jsonl").read_text().splitlines()]
    applied = {r.get("address"): r.get("action") for r in records if r.get("address")}
    assert applied == {'directory.main.account["alice@acme.io"]': "update",
                       'directory.main.account["mallory@acme.io"]': "delete"}
    assert run("plan", "config", "--detailed-exitcode").exit_code == 0

    # reconciler check runs its "Test connection" with the others
    res = run("check", "config")
    assert "directory.main" in res.stdout, res.output


def test_a_change_its_steps_do_not_make_fails_named_and_never_silently(
        scim: ScimServer, write_config: Callable[..., Path], directory: Directory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(write_config(scim.base_url, members=MEMBERS[:1]))
    directory.accounts["mallory@acme.io"] = {"name": "Mallory"}
    original = DirectorySystem.steps

    def creates_only(self: DirectorySystem, session: Session, changes: list[Change], graph: Graph,
                     report: Callable[[Outcome], None]) -> None:
        original(self, session, [c for c in changes if c.action is not Action.DELETE], graph, report)

    monkeypatch.setattr(DirectorySystem, "steps", creates_only)
    with Session(cfg) as s:
        plan = s.plan(allow_removals=1)
        result = apply_plan(s, plan)
    assert result.failures == {'directory.main.account["mallory@acme.io"]':
                               "not applied: directory has no way to apply a delete of a account"}
    assert "mallory@acme.io" in directory.accounts and "alice@acme.io" in directory.accounts


def test_register_refuses_a_prefix_another_system_owns() -> None:
    class Clash(DirectorySystem):
        prefix = "scim.x."
    with pytest.raises(ValueError, match="overlaps"):
        registry.register(Clash("http://127.0.0.1:1"))
    assert registry.systems() == registry.SYSTEMS
