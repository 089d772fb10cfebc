"""scim2-server (python-scim) embedded in the process, reached through httpx's WSGI transport.

It is a real SCIM 2.0 service provider (the same code the integration tests run
as a server on 127.0.0.1); embedding it lets ``reconciler demo`` run with no
server to start and no network.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import httpx
from scim2_models import Resource, ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

SANDBOX_URL = "http://sandbox.invalid/v2"


def build_app(token: str | None = None, state: str | None = None) -> tuple[Any, InMemoryStorage]:
    """A WSGI SCIM application and its storage. ``token=None`` accepts every request."""
    config = load_default_service_provider_config()
    if token:
        config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(list(load_default_schemas().values()),
                                           list(load_default_resource_types().values()), config=config)
    storage = InMemoryStorage()
    if state and os.path.exists(state):
        raw = json.loads(Path(state).read_text())
        for d in raw:
            model = provider.model_for(d["meta"]["resourceType"])
            if model is None:
                raise ValueError(f"{state}: unknown resource type {d['meta']['resourceType']!r}")
            resource = model.model_validate(d)
            assert isinstance(resource, Resource)
            storage.resources.append(resource)
        top = max((int(str(r.meta.version).strip('W/"')) for r in storage.resources
                   if r.meta and r.meta.version and str(r.meta.version).strip('W/"').isdigit()), default=0)
        storage.versions = itertools.count(top + 1)
    service = ScimService(provider, secret=os.urandom(32).hex())
    app = BearerTokenApplication(storage, provider, service=service, bearer_tokens=[token] if token else [])
    return app, storage


def transport(token: str | None = None) -> tuple[httpx.WSGITransport, InMemoryStorage]:
    app, storage = build_app(token)
    return httpx.WSGITransport(app=app), storage


# --- the demo's starting state, embedded (`reconciler demo`) or served (`reconciler sandbox scim`) -------------

DEMO_TOKEN = "demo-token"  # a sandbox credential, not a secret
DEMO_PORT = 18451  # examples/quickstart and examples/full declare base_url http://127.0.0.1:18451/v2

_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
# Who is on the server before reconciler's first run, and why: a real provider has history, and each
# of these accounts shows one kind of change the first plan makes.
DEMO_HISTORY: list[tuple[dict[str, Any], str]] = [
    ({"userName": "bob@acme.io", "name": {"givenName": "Robert", "familyName": "Baker"}, "active": True,
      "emails": [{"value": "bob@acme.io", "type": "work", "primary": True}]},
     "created by hand before reconciler; in the config, so adopted and updated"),
    ({"userName": "erin@acme.io", "externalId": "reconciler:erin@acme.io", "active": True,
      "name": {"givenName": "Erin", "familyName": "Evans"},
      "emails": [{"value": "erin@acme.io", "type": "work", "primary": True}]},
     "managed by reconciler earlier (externalId reconciler:erin@acme.io), since removed from the config: "
     "deactivated, never deleted"),
    ({"userName": "ops-robot@acme.io", "active": True},
     "never managed by reconciler (no reconciler: mark) and protected in providers.yaml: left alone"),
]


def seed_demo(http: httpx.Client) -> None:
    """Create the demo's starting accounts through the SCIM API of the server ``http`` points at."""
    for body, _why in DEMO_HISTORY:
        http.post("Users", json={"schemas": [_USER], **body}).raise_for_status()


def history_lines() -> list[str]:
    """One line per starting account: 'userName  why'."""
    width = max(len(str(body["userName"])) for body, _ in DEMO_HISTORY)
    return [f"{body['userName']:<{width}}  {why}" for body, why in DEMO_HISTORY]


def serve(host: str = "127.0.0.1", port: int = DEMO_PORT, token: str = DEMO_TOKEN, *, empty: bool = False,
          ready: Any = None) -> None:
    """Serve scim2-server in memory on host:port until interrupted, seeded with the demo's history unless
    ``empty``. ``ready(url)`` is called once it listens. One request at a time (the storage is not locked)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (wsgiref's name)
            pass

    app, _storage = build_app(token)
    if not empty:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=SANDBOX_URL + "/",
                          headers={"Authorization": f"Bearer {token}"}) as http:
            seed_demo(http)
    with make_server(host, port, app, handler_class=Quiet) as server:
        if ready is not None:
            ready(f"http://{host}:{server.server_port}/v2")
        server.serve_forever()


def describe(url: str, token: str = DEMO_TOKEN, *, empty: bool = False) -> str:
    """What a served sandbox holds and how to point reconciler at it (the lines `sandbox scim` prints)."""
    lines = [f"SCIM sandbox (scim2-server, in memory) on {url} until Ctrl-C"]
    if empty:
        lines.append("It starts with no users and no groups.")
    else:
        lines.append("It starts with the accounts `reconciler demo` starts with:")
        lines += [f"  {line}" for line in history_lines()]
    lines.append("In another shell:")
    lines.append(f"export SCIM_TOKEN={token}")
    default = f"http://127.0.0.1:{DEMO_PORT}/v2"
    if url != default:
        lines.append(f"# examples/ declare base_url {default}: set base_url in providers.yaml to {url}")
    lines.append("reconciler plan examples/quickstart")
    lines.append("(a sandbox credential, not a secret)")
    return "\n".join(lines)
