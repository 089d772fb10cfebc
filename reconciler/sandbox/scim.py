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
