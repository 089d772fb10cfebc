"""Real servers on 127.0.0.1 for the tests: started, waited for and stopped by the fixtures."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

SCIM_TOKEN = "scim-test-token-7f3a9c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ScimServer:
    base_url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url + "/", timeout=30,
                            headers={"Authorization": f"Bearer {self.token}",
                                     "Content-Type": "application/scim+json"})

    def reset(self) -> None:
        """Delete every user and group, so each test starts from an empty provider."""
        with self.client() as c:
            for resource in ("Groups", "Users"):
                while True:
                    body = c.get(resource, params={"count": "1000"}).json()
                    items = body.get("Resources") or []
                    if not items:
                        break
                    for r in items:
                        c.delete(f"{resource}/{r['id']}")


def scim2_server_command() -> list[str]:
    exe = shutil.which("scim2-server", path=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    if exe is None:
        raise RuntimeError("scim2-server is not installed: pip install -e '.[test]' installs it")
    return [exe]


@contextmanager
def scim_server(tmp: Path, *, token: str = SCIM_TOKEN, extra_args: list[str] | None = None) -> Iterator[ScimServer]:
    port = free_port()
    log = tmp / f"scim2-server-{port}.log"
    cmd = scim2_server_command() + ["--hostname", "127.0.0.1", "--port", str(port), "--bearer-token", token,
                                    *(extra_args or [])]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v2"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/ServiceProviderConfig", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"scim2-server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield ScimServer(base, token, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
