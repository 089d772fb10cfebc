"""HTTP that a hostile server cannot stretch: one deadline per request (connect, headers and body together),
one retry budget per run, and a limit on every response body. Raw sockets on 127.0.0.1, so a server can
trickle one byte at a time or send more than it should."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.config.models import ScimProvider
from reconciler.errors import ConnectError, ProviderError, ServerError
from reconciler.providers import _http, retry
from reconciler.providers.retry import RetryBudget
from reconciler.providers.scim import connect

ROOT = Path(__file__).resolve().parents[2]
Serve = Callable[[socket.socket], None]


@contextmanager
def raw_server(serve: Serve) -> Iterator[str]:
    """Accepts connections on 127.0.0.1; ``serve`` gets each socket after the request's headers were read."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                serve(conn)
            except OSError:
                return

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v2"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def trickle(data: bytes, every: float, stop_after: float = 30.0) -> Serve:
    def serve(conn: socket.socket) -> None:
        t0 = time.monotonic()
        for b in data:
            if time.monotonic() - t0 > stop_after:
                return
            conn.sendall(bytes([b]))
            time.sleep(every)
    return serve


def provider(url: str, timeout: float = 5) -> ScimProvider:
    return ScimProvider.model_validate({"name": "p", "type": "scim", "base_url": url, "timeout": timeout,
                                        "auth": {"type": "bearer", "token": "${env:IMPOSTER_TOKEN}"}})


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPOSTER_TOKEN", "imposter-token-123456")


HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: 200\r\n\r\n"


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_server_trickling_one_byte_every_2_s_is_cut_at_the_deadline(where: str) -> None:
    """Each read gets a byte within the 5 s timeout, so per-operation timeouts never fire."""
    if where == "headers":
        serve = trickle(HEADERS + b"{}", 2.0)
    else:
        def serve(conn: socket.socket) -> None:
            conn.sendall(HEADERS)
            trickle(b'{"totalResults": 0, "Resources": []' + b" " * 200, 2.0)(conn)
    with raw_server(serve) as url:
        client = connect(provider(url, timeout=5), attempts=1)
        t0 = time.monotonic()
        with pytest.raises(ConnectError) as err:
            client.http.get_json("Users")
        took = time.monotonic() - t0
        client.close()
    assert took < 5 + 2.5, took  # the deadline, plus at most the read in progress
    assert str(err.value).count("\n") == 0
    assert "no whole answer within the 5.0 s deadline (timeout)" in str(err.value), str(err.value)


def _status(status: int, retry_after: str | None) -> Serve:
    head = f"HTTP/1.1 {status} Busy\r\nContent-Length: 2\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if retry_after is not None:
        head += f"Retry-After: {retry_after}\r\n"
    raw = (head + "\r\n{}").encode()

    def serve(conn: socket.socket) -> None:
        conn.sendall(raw)
    return serve


def test_retry_after_past_the_budget_is_one_line_saying_how_long() -> None:
    slept: list[float] = []
    with raw_server(_status(429, "3600")) as url:
        client = connect(provider(url), attempts=5, sleep=slept.append)
        client.http.budget = RetryBudget(120)
        with pytest.raises(ServerError) as err:
            client.http.get_json("Users")
        client.close()
    assert slept == []  # never waited: an hour is more than the budget
    msg = str(err.value)
    assert "\n" not in msg
    assert "the server asked to wait 3,600 s before retrying (Retry-After), more than the 120 s left of this " \
           "run's retry budget of 120 s (set RECONCILER_RETRY_BUDGET to wait longer)" in msg, msg
    assert f"{url}/Users" in msg


def test_retry_after_is_honoured_up_to_the_budget_shared_by_the_run() -> None:
    slept: list[float] = []
    with raw_server(_status(503, "40")) as url:
        budget = RetryBudget(100)
        a = connect(provider(url), attempts=5, sleep=slept.append)
        b = connect(provider(url), attempts=5, sleep=slept.append)
        a.http.budget = b.http.budget = budget
        with pytest.raises(ServerError, match="asked to wait 40 s .* more than the 20 s left"):
            a.http.get_json("Users")
        with pytest.raises(ServerError, match="asked to wait 40 s .* more than the 20 s left"):
            b.http.get_json("Users")  # the run's budget, not the client's
        a.close()
        b.close()
    assert slept == [40.0, 40.0]  # 40 s each, not capped at 30: the budget bounds the waits


@pytest.mark.parametrize("value", ["nan", "NaN", "soon", "-5", "1e999999", "inf"])
def test_a_retry_after_that_is_not_a_wait_is_one_line_never_a_crash(value: str) -> None:
    slept: list[float] = []
    with raw_server(_status(503, value)) as url:
        client = connect(provider(url), attempts=3, sleep=slept.append)
        client.http.budget = RetryBudget(60)
        with pytest.raises(ServerError) as err:
            client.http.get_json("Users")
        client.close()
    assert "\n" not in str(err.value)
    assert all(0 <= s <= 60 for s in slept), slept


def test_the_budget_is_set_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_RETRY_BUDGET", "7")
    assert retry.start_run().total == 7
    monkeypatch.setenv("RECONCILER_RETRY_BUDGET", "nan")
    with pytest.raises(ProviderError, match="RECONCILER_RETRY_BUDGET must be a number of seconds"):
        retry.start_run()


BIG = 200 * 1024 * 1024


def _huge_body(conn: socket.socket) -> None:
    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {BIG}\r\n\r\n".encode())
    chunk = b" " * (1024 * 1024)
    for _ in range(BIG // len(chunk)):
        conn.sendall(chunk)


def test_a_200_mb_body_is_refused_past_the_limit_without_being_buffered(tmp_path: Path) -> None:
    """In a process of its own, so its peak memory is its own: 838 MB when the body was buffered whole."""
    with raw_server(_huge_body) as url:
        script = tmp_path / "read.py"
        script.write_text(f"""
import sys
from reconciler.config.models import ScimProvider
from reconciler.errors import ServerError
from reconciler.providers.scim import connect
p = ScimProvider.model_validate({{"name": "p", "type": "scim", "base_url": "{url}", "timeout": 30,
                                 "auth": {{"type": "bearer", "token": "${{env:IMPOSTER_TOKEN}}"}}}})
c = connect(p, attempts=1)
c.http.max_body = 8 * 1024 * 1024  # well under the body: what it keeps is the limit, never the body
try:
    c.http.get_json("Users")
except ServerError as exc:
    print(exc)
# VmHWM: this program's own peak (ru_maxrss would count the pages of the process that forked it)
print(next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")) // 1024)
""")
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout.splitlines()
    assert out[0].startswith("the answer is more than 8,388,608 bytes, the limit (it declared 209,715,200 bytes)")
    assert f"{url}/Users" in out[0]
    assert int(out[1]) < 160, f"peak RSS {out[1]} MB"  # the body whole would be 200 MB and more
    assert _http.MAX_BODY_BYTES == 64 * 1024 * 1024  # the default limit (docs/security.md)
