"""Serving the sandbox on 127.0.0.1: ``serve``, ``describe``, the command line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from reconciler.sandbox.jira.app import JiraSandbox
from reconciler.sandbox.jira.state import (
    JiraState,
    new_state,
)


def serve(flavour: str = "cloud", host: str = "127.0.0.1", port: int = 8089,
          ready: Callable[[str, JiraState], None] | None = None, *, page_size: int = 50,
          faults: Sequence[tuple[str, str, int, int]] = (), version: str | None = None) -> None:
    """Serve a fresh sandbox on host:port until interrupted: pages of at most ``page_size`` items, each
    ``faults`` entry (method, path regex, status, times) answered as ``JiraState.fail`` does (429 and 503
    with Retry-After: 1), and ``version`` as Data Center's version."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (wsgiref's name)
            pass

    class Threading(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    state = new_state(flavour, page_size=page_size)
    for method, path, status, times in faults:
        state.fail(method, path, status, times)
    if version is not None:
        state.version = version
    app = JiraSandbox(state)
    with make_server(host, port, app, server_class=Threading, handler_class=Quiet) as server:
        url = f"http://{host}:{server.server_port}"
        if ready is not None:
            ready(url, state)
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m reconciler.sandbox.jira",
                                 description="Serve an in-memory Jira sandbox on 127.0.0.1.")
    ap.add_argument("--flavour", choices=("cloud", "datacenter"), default="cloud")
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--page-size", type=int, default=50, help="the most items a page holds (default 50)")
    ap.add_argument("--fail", nargs=4, action="append", default=[], metavar=("METHOD", "PATH_REGEX", "STATUS", "TIMES"),
                    help="answer the next TIMES matching requests with STATUS (429 and 503 carry Retry-After: 1)")
    ap.add_argument("--dc-version", default=None, help="the version Data Center reports (default 10.3.4)")
    args = ap.parse_args(argv)
    faults = [(m, path, int(status), int(times)) for m, path, status, times in args.fail]

    def ready(url: str, state: JiraState) -> None:
        print(describe(url, state), flush=True)

    try:
        serve(args.flavour, args.host, args.port, ready, page_size=args.page_size, faults=faults,
              version=args.dc_version)
    except KeyboardInterrupt:
        pass
    return 0


def describe(url: str, state: JiraState) -> str:
    """How to point a client (or a reconciler connection) at a served sandbox."""
    if state.cloud:
        return (f"Jira Cloud sandbox on {url} (REST v3)\n"
                f"JIRA_SITE_URL={url}\nJIRA_EMAIL={state.users[state.me].email}\nJIRA_API_TOKEN={state.secret}\n"
                "(a sandbox credential, not a secret)")
    return (f"Jira Data Center sandbox on {url} (REST v2)\n"
            f"JIRA_BASE_URL={url}\nJIRA_TOKEN={state.secret}\n(a sandbox credential, not a secret)")

