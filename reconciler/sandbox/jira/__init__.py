"""A stateful, in-memory Jira (Cloud or Data Center flavour) serving the REST subset reconciler uses.

It is a WSGI application: in-process through ``httpx.WSGITransport`` (tests, ``reconciler demo``)
or on 127.0.0.1 (``reconciler sandbox jira --port N``, ``python -m reconciler.sandbox.jira``) so
that any Jira client can be pointed at it. Its answers follow Atlassian's OpenAPI descriptions
(the contract tests validate them), including the shape differences between Cloud (REST v3,
account IDs, basic auth with email + API token) and Data Center (REST v2, usernames, bearer
personal access tokens). ``fail`` injects faults (429 with Retry-After, 5xx) for tests.

- ``state``: users, projects and the rest, with helpers for tests (``new_state``, ``fail``, ``rename`` ...);
- ``app``: the WSGI application (``base``, ``projects``, ``issues``: its handlers) and ``transport``;
- ``serve``: serving it on 127.0.0.1 and the command line.
"""

from reconciler.sandbox.jira.app import JiraSandbox, transport
from reconciler.sandbox.jira.base import HttpError
from reconciler.sandbox.jira.serve import describe, main, serve
from reconciler.sandbox.jira.state import (
    CLOUD_TOKEN,
    CLOUD_USER,
    DC_TOKEN,
    DC_USER,
    GLOBAL_PERMISSIONS,
    PROJECT_PERMISSIONS,
    Fault,
    JiraState,
    Project,
    User,
    new_state,
)

__all__ = ["CLOUD_TOKEN", "CLOUD_USER", "DC_TOKEN", "DC_USER", "GLOBAL_PERMISSIONS", "PROJECT_PERMISSIONS", "Fault",
           "HttpError", "JiraSandbox", "JiraState", "Project", "User", "describe", "main", "new_state", "serve",
           "transport"]
