"""A hypothesis-driven imposter: a real socket on 127.0.0.1 that answers every endpoint reconciler reads with a
malformed version of a real answer, and `plan` / `check` through the CLI must end with exit 1 (or 0) and one
error line: never a traceback, never "internal error".

The real answers come from the real scim2-server (seeded with a member and a team), the Jira sandbox (Data
Center, in-process) and, for Redmine, answers shaped as Redmine's. Hypothesis draws a list of mutations; the
n-th JSON answer gets the n-th (cyclically): one value anywhere in it replaced by random JSON, a key removed,
the whole body replaced, a non-JSON body, an error status with a random Retry-After.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import main
from reconciler.sandbox import jira as sandbox
from tests.conftest import dump_yaml
from tests.servers import SCIM_TOKEN, ScimServer

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8) | st.sampled_from(["lots", "soon", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)

Mutation = tuple[str, int, Any]
MUTATION: st.SearchStrategy[Mutation] = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 10_000), JSON),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.none()),
    st.tuples(st.just("body"), st.just(0), JSON),
    st.tuples(st.just("text"), st.just(0), st.sampled_from(["", "not json", "<html>", "{", "[1,"])),
    st.tuples(st.just("status"), st.sampled_from([200, 204, 302, 400, 401, 404, 429, 500, 503]),
              st.sampled_from(["nan", "inf", "-1", "soon", "1e309", "Wed, 99 Foo", "0.01", ""])),
    st.tuples(st.just("same"), st.just(0), st.none()),
)


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON document, in a fixed order."""
    out: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) \
            if isinstance(node, list) else []
        for k, v in items:
            out.append((node, k))
            stack.append(v)
    return out


def mutate(real: tuple[int, Any], m: Mutation) -> tuple[int, dict[str, str], bytes]:
    code, doc = real
    kind, n, value = m
    if kind == "body":
        return 200, {}, json.dumps(value).encode()
    if kind == "text":
        return 200, {}, str(value).encode()
    if kind == "status":
        return n, {"Retry-After": str(value)} if value else {}, b'{"detail": "imposter"}'
    doc = json.loads(json.dumps(doc))
    slots = _slots(doc)
    if slots and kind in ("replace", "delete"):
        node, key = slots[n % len(slots)]
        if kind == "replace":
            node[key] = value
        else:
            del node[key]
    return code, {}, json.dumps(doc).encode()


# (method, path with query, headers) -> (status, JSON)
Upstream = Callable[[str, str, dict[str, str]], tuple[int, Any]]


@contextmanager
def imposter(upstream: Upstream) -> Iterator[tuple[str, list[Mutation]]]:
    """Answers GETs with the upstream's answer, mutated; every other method gets an empty 200 (plan and check
    only read). The mutations list is set per example."""
    mutations: list[Mutation] = []
    counter = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _answer(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            sent = self.rfile.read(n) if n else b""
            try:
                real = upstream(self.command, self.path, {**dict(self.headers.items()), "_body": sent.decode()})
            except Exception:  # noqa: BLE001 - the upstream's own trouble: an empty object will do
                real = (200, {})
            with lock:
                m = mutations[counter[0] % len(mutations)] if mutations else ("same", 0, None)
                counter[0] += 1
            status, headers, body = mutate(real, m)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", mutations
    finally:
        server.shutdown()
        server.server_close()


def forward(client: httpx.Client, prefix: str = "") -> Upstream:
    def call(method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        keep = {k: v for k, v in headers.items() if k.lower() in ("authorization", "accept", "x-redmine-api-key")}
        r = client.request(method, prefix + path, headers=keep, content=headers.get("_body", "").encode())
        return r.status_code, r.json() if r.content else {}
    return call


def redmine_answers(method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """What a Redmine answers to the reads reconciler makes, shaped as Redmine's."""
    p = urlsplit(path).path
    user = {"id": 1, "login": "alice", "firstname": "Alice", "lastname": "Adams", "mail": "alice@acme.io",
            "status": 1}
    table: dict[str, Any] = {
        "/users/current.json": {"user": {**user, "admin": True, "login": "admin", "id": 9}},
        "/users.json": {"users": [user], "total_count": 1, "offset": 0, "limit": 100},
        "/groups.json": {"groups": [{"id": 5, "name": "appsec"}], "total_count": 1, "offset": 0, "limit": 100},
        "/groups/5.json": {"group": {"id": 5, "name": "appsec", "users": [{"id": 1, "name": "Alice Adams"}]}},
        "/projects.json": {"projects": [{"id": 3, "identifier": "sec", "name": "Sec"}], "total_count": 1},
        "/projects/sec.json": {"project": {"id": 3, "identifier": "sec", "name": "Sec",
                                           "trackers": [{"id": 1, "name": "Bug"}],
                                           "enabled_modules": [{"id": 1, "name": "issue_tracking"}]}},
        "/projects/sec/memberships.json": {"memberships": [{"id": 7, "group": {"id": 5, "name": "appsec"},
                                                            "roles": [{"id": 4, "name": "Developer"}]}],
                                           "total_count": 1},
        "/trackers.json": {"trackers": [{"id": 1, "name": "Bug"}]},
        "/issue_statuses.json": {"issue_statuses": [{"id": 1, "name": "New"}]},
        "/enumerations/issue_priorities.json": {"issue_priorities": [{"id": 2, "name": "Normal"}]},
        "/roles.json": {"roles": [{"id": 4, "name": "Developer"}]},
        "/search.json": {"results": [], "total_count": 0},
        "/issues.json": {"issues": [], "total_count": 0},
    }
    return (200, table[p]) if p in table else (404, {"errors": ["not found"]})


def run(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    out = result.output
    assert not (result.exception and not isinstance(result.exception, SystemExit)), \
        f"{type(result.exception).__name__}: {result.exception}\n{out}"
    assert "Traceback" not in out and "internal error" not in out, out
    assert result.exit_code in (0, 1), (result.exit_code, out)
    if result.exit_code == 1:
        # every line is one error, one step of check (named by its system), or reconciler's own summary
        lines = [line for line in out.splitlines() if line.strip()]
        assert lines, out
        # (a plan error that lists several located problems gives each its own indented line)
        assert all(line.startswith(("error:", "p ", "dc ", "rm ", "jira.", "redmine.", "scim.", "  - "))
                   or "problem(s)" in line for line in lines), out


# 25 examples per system and command in CI (about 10 s in all); IMPOSTER_EXAMPLES=500 for a longer hunt
SETTINGS = settings(max_examples=int(os.environ.get("IMPOSTER_EXAMPLES", "25")), deadline=None,
                    suppress_health_check=list(HealthCheck), derandomize=True)


def _write(d: Path, data: dict[str, Any]) -> Path:
    d.mkdir(exist_ok=True)
    (d / "config.yaml").write_text(dump_yaml(data))
    return d


MEMBERS = {"members": [{"email": "alice@acme.io", "given_name": "Alice"}],
           "teams": [{"name": "appsec", "members": ["alice@acme.io"]}]}


@pytest.fixture
def seeded_scim(scim: ScimServer, tmp_path: Path) -> ScimServer:
    cfg = _write(tmp_path / "seed", {"providers": [{"name": "p", "type": "scim", "base_url": scim.base_url,
                                                    "auth": {"type": "bearer", "token": "${env:SCIM_TOKEN}"}}],
                                     **MEMBERS})
    r = CliRunner().invoke(main, ["apply", str(cfg), "--auto-approve", "--audit-log", str(tmp_path / "a.jsonl")])
    assert r.exit_code == 0, r.output
    return scim


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECONCILER_RETRY_BUDGET", "0")  # no waiting between retries: malformed, not slow
    monkeypatch.chdir(tmp_path)


def test_scim_imposter(seeded_scim: ScimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = urlsplit(seeded_scim.base_url)
    with httpx.Client(base_url=f"{base.scheme}://{base.netloc}", trust_env=False, timeout=10) as up, \
            imposter(forward(up)) as (url, mutations):
        cfg = _write(tmp_path / "c", {"providers": [{"name": "p", "type": "scim", "base_url": url + base.path,
                                                     "timeout": 5, "auth": {"type": "bearer",
                                                                            "token": "${env:SCIM_TOKEN}"}}],
                                      **MEMBERS})
        monkeypatch.setenv("SCIM_TOKEN", SCIM_TOKEN)

        unmutated = CliRunner().invoke(main, ["plan", str(cfg)])
        assert unmutated.exit_code == 0, unmutated.output  # the imposter serves real answers when it does not lie

        @SETTINGS
        @given(st.lists(MUTATION, min_size=1, max_size=6), st.sampled_from(["plan", "check"]))
        def example(ms: list[Mutation], command: str) -> None:
            mutations[:] = ms
            run([command, str(cfg)])

        example()


def test_jira_imposter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = sandbox.new_state("datacenter")
    with httpx.Client(transport=sandbox.transport(state), base_url="http://jira.invalid", trust_env=False) as up, \
            imposter(forward(up)) as (url, mutations):
        cfg = _write(tmp_path / "c", {
            "connections": [{"name": "dc", "type": "jira-datacenter", "base_url": url, "timeout": 5,
                             "token": "${env:JIRA_TOKEN}"}],
            **MEMBERS,
            "user_maps": [{"member": "alice@acme.io", "identities": {"dc": "alice"}}],
            "integrations": [{"name": "web", "program": "acme-web", "connection": "dc", "project": "SEC",
                              "issue_type": "Bug", "priorities": {"high": "High"},
                              "team_roles": {"appsec": "Developers"},
                              "webhook": {"url": "https://platform.acme.io/hooks/jira"}}]})
        monkeypatch.setenv("JIRA_TOKEN", sandbox.DC_TOKEN)

        unmutated = CliRunner().invoke(main, ["plan", str(cfg)])
        assert unmutated.exit_code == 0, unmutated.output  # the imposter serves real answers when it does not lie

        @SETTINGS
        @given(st.lists(MUTATION, min_size=1, max_size=6), st.sampled_from(["plan", "check"]))
        def example(ms: list[Mutation], command: str) -> None:
            mutations[:] = ms
            run([command, str(cfg)])

        example()


def test_redmine_imposter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with imposter(redmine_answers) as (url, mutations):
        cfg = _write(tmp_path / "c", {
            "connections": [{"name": "rm", "type": "redmine", "base_url": url, "timeout": 5,
                             "api_key": "${env:RM_KEY}"}],
            **MEMBERS,
            "user_maps": [{"member": "alice@acme.io", "identities": {"rm": "alice"}}],
            "integrations": [{"name": "sec", "program": "p", "connection": "rm", "project": "sec",
                              "issue_type": "Bug", "team_roles": {"appsec": "Developer"}}]})
        monkeypatch.setenv("RM_KEY", "k" * 40)

        unmutated = CliRunner().invoke(main, ["plan", str(cfg)])
        assert unmutated.exit_code == 0, unmutated.output  # the imposter serves real answers when it does not lie

        @SETTINGS
        @given(st.lists(MUTATION, min_size=1, max_size=6), st.sampled_from(["plan", "check"]))
        def example(ms: list[Mutation], command: str) -> None:
            mutations[:] = ms
            run([command, str(cfg)])

        example()
