"""Ids from a live server go into URL paths percent-encoded: an id cannot climb the path or start a query.
A real socket on 127.0.0.1 records the raw request lines reconciler sends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.config.models import ScimProvider
from reconciler.providers.scim import connect


@contextmanager
def recorder() -> Iterator[tuple[str, list[str]]]:
    lines: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _answer(self) -> None:
            lines.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PATCH = do_PUT = do_DELETE = _answer  # noqa: N815 - http.server's names

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2", lines
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("rid", ["../Groups/admins", "x?attributes=password", "a b#c", "%2e%2e"])
def test_a_hostile_id_stays_one_path_segment(rid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T", "token-for-the-recorder")
    with recorder() as (url, lines):
        p = ScimProvider.model_validate({"name": "p", "type": "scim", "base_url": url,
                                         "auth": {"type": "bearer", "token": "${env:T}"}})
        client = connect(p, attempts=1)
        client.patch("Users", rid, [{"op": "replace", "path": "active", "value": False}])
        client.delete("Groups", rid)
        client.close()
    assert len(lines) == 2
    for line, resource in zip(lines, ("Users", "Groups"), strict=True):
        method, path = line.split(" ", 1)
        assert path.startswith(f"/v2/{resource}/") and path.count("/") == 3, line
        assert "?" not in path and "#" not in path, line
        assert not {".", ".."} & set(path.split("/")), line  # no dot-segment: the id is data
