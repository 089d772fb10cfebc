"""Atlassian's OpenAPI descriptions of Jira as a contract: every request reconciler sends to the Jira
sandbox in the tests (and every successful answer the sandbox gives) is validated with openapi-core.

The files live in ``specs/`` beside this module (gzip-compressed, sha256-checked by ``specs.py``). The admin
webhook endpoint is in neither file; ``fixtures/admin-webhooks.openapi.json`` (labelled as written from
Atlassian's documentation) covers it.

Known differences between the Data Center file and Data Center itself, handled here and nowhere else:
- the file declares only basic auth; personal access tokens are sent as ``Authorization: Bearer``
  (Atlassian, "Using Personal Access Tokens"). The bearer header is checked, and the request is then
  validated as if it carried basic credentials, so its parameters and body are still checked;
- ``IssueUpdateBean.fields`` and ``IssueBean.fields`` type every field value as an object, while the same
  file's own create-issue example sends ``"summary": "No REST for the Wicked."``: field values may be any
  JSON value;
- some answers are declared as one object where Data Center returns an array (project list, project
  statuses) or a JSON value where the file says string (project property value): those answers are not
  validated. Requests to them are.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from reconciler.sandbox.jira import CLOUD_TOKEN, DC_TOKEN, JiraState, new_state, transport
from tests.contract.specs import SpecError, spec_bytes

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HOSTS = {"cloud": "https://your-domain.atlassian.net", "datacenter": "http://localhost:8090"}
WEBHOOK_PATH = re.compile(r"^/rest/webhooks/1\.0/webhook(/\d+)?$")
# (method, path regex) of Data Center answers whose declared schema is wrong (see the module docstring)
DC_UNVALIDATED_ANSWERS = [
    ("GET", re.compile(r"^/rest/api/2/project$")),
    ("GET", re.compile(r"^/rest/api/2/project/[^/]+/statuses$")),
    ("GET", re.compile(r"^/rest/api/2/project/[^/]+/properties/[^/]+$")),
]


@functools.cache
def load_spec(flavour: str) -> OpenAPI:
    # spec_validator_cls=None: both files are formally invalid OpenAPI (see specs/README.md), so
    # whole-document validation is skipped and only requests and answers are validated
    try:
        data = json.loads(spec_bytes(flavour))
    except SpecError as exc:
        pytest.fail(str(exc), pytrace=False)
    if flavour == "datacenter":
        # IssueUpdateBean.fields types every field value as an object; the same file's create-issue example
        # sends "summary": "No REST for the Wicked." (a string). Field values may be any JSON value.
        for bean in ("IssueUpdateBean", "IssueBean"):
            data["components"]["schemas"][bean]["properties"]["fields"]["additionalProperties"] = {}
    return OpenAPI.from_dict(data, config=Config(spec_validator_cls=None))


@functools.cache
def webhook_spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(FIXTURES / "admin-webhooks.openapi.json"),
                                  config=Config(spec_validator_cls=None))


def _errors(exc: Exception) -> str:
    out = [str(exc)]
    for e in [*(getattr(exc, "schema_errors", None) or []), *(getattr(exc.__cause__, "schema_errors", None) or [])]:
        out.append(f"{'/'.join(map(str, e.path)) or '<body>'}: {e.message}")
    return "; ".join(out)


def mock_request(flavour: str, request: httpx.Request) -> MockRequest:
    headers = {k.title(): v for k, v in request.headers.items()}
    if flavour == "datacenter":
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            raise AssertionError("Data Center requests carry a personal access token as a bearer token, "
                                 f"not {auth[:6]!r}")
        headers["Authorization"] = "Basic dmFsaWRhdGlvbjpvbmx5"  # see the module docstring
    args = {k: v for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}
    body = request.content or None
    return MockRequest(HOSTS[flavour], request.method.lower(), request.url.path, args=args, headers=headers,
                       data=body, content_type=request.headers.get("Content-Type", "application/json").split(";")[0]
                       if body else None)  # type: ignore[arg-type]  # openapi-core reads None as no body


def validate_request(flavour: str, request: httpx.Request) -> str | None:
    """None when the request conforms to the description; else what is wrong."""
    spec = webhook_spec() if WEBHOOK_PATH.match(request.url.path) else load_spec(flavour)
    try:
        spec.validate_request(mock_request(flavour, request))
    except AssertionError as exc:
        return str(exc)
    except Exception as exc:  # openapi-core raises its own ValidationError subclasses
        return _errors(exc)
    return None


def validate_response(flavour: str, request: httpx.Request, response: httpx.Response) -> str | None:
    if not response.is_success:
        return None  # error answers (and injected faults) are the sandbox's own; only successes are checked
    path = request.url.path
    if flavour == "datacenter" and any(m == request.method and p.match(path) for m, p in DC_UNVALIDATED_ANSWERS):
        return None
    spec = webhook_spec() if WEBHOOK_PATH.match(path) else load_spec(flavour)
    ctype = response.headers.get("Content-Type", "application/json").split(";")[0]
    try:
        spec.validate_response(mock_request(flavour, request),
                               MockResponse(response.content, status_code=response.status_code, content_type=ctype))
    except Exception as exc:
        return _errors(exc)
    return None


class ContractTransport(httpx.BaseTransport):
    """Validates every request (before the sandbox sees it) and every successful answer; a violation fails
    the test at once (AssertionError) and is kept in ``violations``."""

    def __init__(self, inner: httpx.BaseTransport, flavour: str, *, answers: bool = True) -> None:
        self.inner, self.flavour, self.answers = inner, flavour, answers
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append((request.method, request.url.path))
        problem = validate_request(self.flavour, request)
        if problem:
            self.violations.append(f"request {request.method} {request.url.path}: {problem}")
            raise AssertionError(f"contract violation: {self.violations[-1]}")
        response = self.inner.handle_request(request)
        response.read()
        if self.answers:
            problem = validate_response(self.flavour, request, response)
            if problem:
                self.violations.append(f"answer to {request.method} {request.url.path}: {problem}")
                raise AssertionError(f"contract violation: {self.violations[-1]}")
        return response


# --- a Jira sandbox rig for tests ------------------------------------------------------

IDS = {
    "cloud": {n: f"5b10ac8d82e05b22cc7d4e{i:02d}" for i, n in enumerate(("alice", "bob", "carol", "dave", "erin",
                                                                          "frank"))},
    "datacenter": {n: n for n in ("alice", "bob", "carol", "dave", "erin", "frank")},
}


@dataclass
class JiraRig:
    """One sandbox (Cloud or Data Center), reached through a validating transport, and a config writer."""

    flavour: str
    state: JiraState
    transport: ContractTransport
    folder: Path
    sleeps: list[float] = field(default_factory=list)

    @property
    def conn(self) -> str:
        return "acme-cloud" if self.flavour == "cloud" else "acme-dc"

    def ident(self, person: str) -> str:
        return IDS[self.flavour][person]

    def connection(self) -> dict[str, Any]:
        if self.flavour == "cloud":
            return {"name": self.conn, "type": "jira-cloud", "site_url": "https://acme.atlassian.net",
                    "email": "integration@acme.io", "api_token": "${env:JIRA_API_TOKEN}"}
        return {"name": self.conn, "type": "jira-datacenter", "base_url": "https://jira.acme.io",
                "token": "${env:JIRA_TOKEN}"}

    def write(self, integrations: list[dict[str, Any]], *, members: list[str] | None = None,
              teams: dict[str, list[str]] | None = None, mapped: dict[str, str] | None = None,
              fallback_users: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write connections, members, teams, user maps and integrations (one file per kind)."""
        people = members if members is not None else ["alice", "bob", "carol"]
        team_map = teams if teams is not None else {"appsec": ["alice", "bob"]}
        maps = mapped if mapped is not None else {p: self.ident(p) for p in people}
        self.folder.mkdir(parents=True, exist_ok=True)
        for f in self.folder.glob("*.yaml"):
            f.unlink()
        docs: dict[str, Any] = {
            "connections.yaml": {"connections": [self.connection()]},
            "members.yaml": {"members": [{"email": f"{p}@acme.io"} for p in people]},
            "teams.yaml": {"teams": [{"name": t, "members": [f"{p}@acme.io" for p in ms]}
                                     for t, ms in team_map.items()]},
            "usermaps.yaml": {"user_maps": [{"member": f"{p}@acme.io", "identities": {self.conn: ident}}
                                            for p, ident in maps.items()],
                              **({"fallback_users": fallback_users} if fallback_users else {})},
            "integrations.yaml": {"integrations": [{"connection": self.conn, **i} for i in integrations]},
        }
        for name, doc in {**docs, **(extra or {})}.items():
            (self.folder / name).write_text(json.dumps(doc, indent=2))
        return self.folder

    def transports(self) -> dict[str, httpx.BaseTransport]:
        return {self.conn: self.transport}


def make_rig(flavour: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> JiraRig:
    load_spec(flavour)
    state = new_state(flavour)
    monkeypatch.setenv("JIRA_API_TOKEN", CLOUD_TOKEN)
    monkeypatch.setenv("JIRA_TOKEN", DC_TOKEN)
    t = ContractTransport(transport(state), flavour)
    return JiraRig(flavour, state, t, folder)


def rig_fixture(flavour: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraRig]:
    """The body of a ``jira`` fixture: a rig, and after the test, no contract violation."""
    rig = make_rig(flavour, tmp_path / "config", monkeypatch)
    yield rig
    assert not rig.transport.violations, rig.transport.violations
