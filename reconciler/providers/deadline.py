"""One deadline per HTTP request: connect, TLS, the request, the headers and the body together.

httpx's ``timeout`` bounds each socket operation, so a server that sends one byte every two seconds keeps a
request with ``timeout: 5`` alive for ever. Here every socket operation waits at most what is left of the
request's deadline (``request_deadline``, set by ``Http`` around each attempt), and an operation that starts
after the deadline fails at once, so the whole request ends within its deadline plus one read.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
import typing
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx

# monotonic time by which the request in progress (in this thread) must be done; None: no deadline
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)


@contextlib.contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Every socket operation inside must end within ``seconds`` from now, all of them together."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _clamp(timeout: float | None, exc: type[Exception]) -> float | None:
    end = _deadline.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise exc("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: typing.Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, _clamp(timeout, httpcore.ConnectTimeout), local_address,
                                               socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _clamp(timeout, httpcore.ConnectTimeout),
                                                       socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(verify: Any, limits: httpx.Limits) -> httpx.HTTPTransport:
    """An ``HTTPTransport`` (environment not trusted) whose sockets keep to the request's deadline."""
    transport = httpx.HTTPTransport(verify=verify, limits=limits, trust_env=False)
    pool = transport._pool
    backend = getattr(pool, "_network_backend", None)
    if backend is None:  # pragma: no cover - an httpcore without it: per-operation timeouts only
        return transport
    pool._network_backend = _Backend(backend)
    return transport
