"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a real server.

Each request is matched against a list of rules; the first rule that fires decides what the
client gets: an error status (with headers such as Retry-After), a dropped connection, a
response lost after the server already acted on the request, a stall longer than the client's
timeout, a delay, or the upstream answer rewritten. Everything else is forwarded untouched.

The proxy is bounded: it serves at most ``max_requests`` requests and stops by itself after
``lifetime`` seconds, so a test that goes wrong cannot leave it running.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


@dataclass
class Fault:
    """One rule. ``kind``:

    - ``status``: answer ``status`` with ``headers`` without asking the server;
    - ``drop``: close the connection without an answer, before the server sees the request;
    - ``lose``: forward, let the server act, then close the connection (the answer is lost);
    - ``stall``: wait ``seconds`` (longer than the client's timeout), then close the connection;
    - ``delay``: wait ``seconds``, then forward;
    - ``rewrite``: forward and pass the JSON answer through ``rewrite`` (or through ``rewrite_for``,
      which also gets the request's path and query, to play a server that filters differently);
    - ``then``: forward, then call ``then(method, path)`` before answering (to play a server with
      side effects of its own, such as one that takes a deleted user out of its groups).

    The rule applies to requests whose method is in ``methods`` (all when empty) and whose path
    matches ``path`` (a regular expression); it fires on a ``share`` of them (seeded, so a test
    is repeatable), at most ``times`` times (unlimited when None), skipping the first ``after``.
    """

    kind: str
    path: str = ".*"
    methods: tuple[str, ...] = ()
    share: float = 1.0
    times: int | None = None
    after: int = 0
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    rewrite: Callable[[Any], Any] | None = None
    body: dict[str, Any] | None = None  # the JSON of an injected ``status`` answer
    rewrite_for: Callable[[str, Any], Any] | None = None
    then: Callable[[str, str], None] | None = None
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (not self.methods or method in self.methods) and re.search(self.path, path) is not None


@dataclass
class Event:
    method: str
    path: str
    fault: str | None
    status: int | None


class FaultProxy:
    """Forward to ``upstream`` with faults; ``url`` is what a client should use instead."""

    def __init__(self, upstream: str, faults: list[Fault] | None = None, *, seed: int = 7,
                 max_requests: int = 20_000, lifetime: float = 300.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = list(faults or [])
        self.events: list[Event] = []
        self.in_flight = 0  # requests being served now, and the most there were at once
        self.max_in_flight = 0
        self.max_requests = max_requests
        self.lifetime = lifetime
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False
        prefix = re.sub(r"^https?://[^/]+", "", self.upstream)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{prefix}"

    # --- control -------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        threading.Thread(target=self._server.shutdown, daemon=True).start()
        self._thread.join(10)
        self._server.server_close()
        self._client.close()

    def set_faults(self, faults: list[Fault]) -> None:
        with self._lock:
            self.faults = list(faults)

    def count(self, fault: str | None = "*", method: str | None = None, path: str = "") -> int:
        """Requests seen with this fault kind ("*": any or none; None: forwarded untouched)."""
        with self._lock:
            return sum(1 for e in self.events if (fault == "*" or e.fault == fault)
                       and (method is None or e.method == method) and path in e.path)

    # --- serving -------------------------------------------------------------

    def _pick(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if not f.matches(method, path):
                    continue
                f.seen += 1
                if f.seen <= f.after or (f.times is not None and f.fired >= f.times):
                    continue
                if f.share < 1.0 and self._rng.random() >= f.share:
                    continue
                f.fired += 1
                return f
        return None

    def _log(self, method: str, path: str, fault: Fault | None, status: int | None) -> None:
        with self._lock:
            self.events.append(Event(method, path, fault.kind if fault else None, status))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _any(self) -> None:
                with proxy._lock:
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    self._serve()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (killed, or it timed out)
                except RuntimeError:
                    self.close_connection = True  # the proxy is stopping: its upstream client is closed
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

            def _serve(self) -> None:
                method = self.command
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(proxy.events) >= proxy.max_requests:
                    self._send(503, {"detail": "fault proxy: request budget spent"}, {})
                    return
                fault = proxy._pick(method, self.path)
                kind = fault.kind if fault else None
                if fault is not None and kind == "status":
                    proxy._log(method, self.path, fault, fault.status)
                    self._send(fault.status, fault.body or {"detail": f"injected {fault.status}"}, fault.headers)
                    return
                if fault is not None and kind == "drop":
                    proxy._log(method, self.path, fault, None)
                    self.close_connection = True
                    return
                if fault is not None and kind == "stall":
                    proxy._log(method, self.path, fault, None)
                    time.sleep(fault.seconds)
                    self.close_connection = True
                    return
                if fault is not None and kind == "delay":
                    time.sleep(fault.seconds)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                try:
                    r = proxy._client.request(method, proxy.upstream + self._upstream_path(), content=body,
                                              headers=headers)
                except httpx.HTTPError as exc:
                    proxy._log(method, self.path, fault, 502)
                    self._send(502, {"detail": f"fault proxy: upstream failed: {type(exc).__name__}"}, {})
                    return
                if fault is not None and kind == "lose":
                    proxy._log(method, self.path, fault, None)
                    self.close_connection = True
                    return
                content = r.content
                if fault is not None and kind == "rewrite" and fault.rewrite is not None and content:
                    content = json.dumps(fault.rewrite(r.json())).encode()
                if fault is not None and kind == "rewrite" and fault.rewrite_for is not None and content:
                    content = json.dumps(fault.rewrite_for(self.path, r.json())).encode()
                if fault is not None and kind == "then" and fault.then is not None and r.is_success:
                    fault.then(method, self._upstream_path())
                proxy._log(method, self.path, fault, r.status_code)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in HOP_HEADERS:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _upstream_path(self) -> str:
                prefix = re.sub(r"^https?://[^/]+", "", proxy.upstream)
                return self.path[len(prefix):] if prefix and self.path.startswith(prefix) else self.path

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                   "status": str(status), **body}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/scim+json")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        return Handler


@contextmanager
def fault_proxy(upstream: str, faults: list[Fault] | None = None, **kw: Any) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, faults, **kw).start()
    try:
        yield proxy
    finally:
        proxy.stop()
