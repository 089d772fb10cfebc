"""scim2-server on 127.0.0.1 for the benchmarks: threaded, quiet, in memory.

The stock ``scim2-server`` command logs every request to stderr, which costs about a tenth of
its throughput; this is the same library application without the log.

    python bench/server.py --port 18452 --token T
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def build_app(token: str) -> Any:
    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(list(load_default_schemas().values()),
                                           list(load_default_resource_types().values()), config=config)
    service = ScimService(provider, secret=os.urandom(32).hex())
    return BearerTokenApplication(InMemoryStorage(), provider, service=service, bearer_tokens=[token])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    a = ap.parse_args()
    server = make_server("127.0.0.1", a.port, build_app(a.token), server_class=_ThreadingWSGIServer,
                         handler_class=_QuietHandler)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ready http://127.0.0.1:{a.port}/v2", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
