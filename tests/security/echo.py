"""A small HTTP server on 127.0.0.1 that echoes each request's credentials back, as careless servers do.

Requests that match ``echo`` (a method and path predicate) get ``status`` with a body that holds the
request's headers (raw, and the Authorization value base64-encoded again), its body (an OAuth form,
URL-encoded) and JSON-escaped copies; the rest are forwarded to ``upstream`` (a real server), with the
Authorization header replaced by ``upstream_auth`` when given. ``token`` answers an OAuth token request.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


@dataclass
class Echo:
    url: str
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    echoed: int = 0


@contextmanager
def echo_server(*, upstream: str | None = None, upstream_auth: str | None = None, status: int = 401,
                echo: Callable[[str, str], bool] = lambda m, p: True,
                token: str | None = None) -> Iterator[Echo]:
    state = Echo("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _handle(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            state.seen.append((self.command, self.path))
            if token is not None and self.path.endswith("/oauth/token"):
                return self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
            if upstream is None or echo(self.command, self.path):
                state.echoed += 1
                return self._echo(body)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            if upstream_auth is not None:
                headers["Authorization"] = upstream_auth
            path = self.path[len("/proxy"):] if self.path.startswith("/proxy") else self.path
            r = httpx.request(self.command, upstream.rstrip("/") + path, headers=headers, content=body,
                              timeout=30, trust_env=False)
            self.send_response(r.status_code)
            for k, v in r.headers.items():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

        def _echo(self, body: bytes) -> None:
            auth = self.headers.get("Authorization") or ""
            key = self.headers.get("X-Redmine-API-Key") or ""
            text = body.decode("utf-8", "replace")
            whole = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
            self._send(status, {
                "detail": f"rejected {auth} {key}",
                "message": f"b64 of header {base64.b64encode(auth.encode()).decode()} "
                           f"b64 of key {base64.b64encode(key.encode()).decode()}",
                "errorMessages": [f"you sent {text}", json.dumps(whole), whole],
                "errors": {"body": json.dumps(text)},
                "error": "echo", "scimType": auth,
            })

        def _send(self, code: int, doc: object) -> None:
            data = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
