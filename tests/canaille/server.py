"""Canaille on 127.0.0.1 for the tests: a real OAuth 2.0 token endpoint and a SCIM 2.0 server behind it.

Canaille runs from its own venv (``.canaille-venv``, made by ``scripts/canaille-venv.sh`` from
``tests/canaille/requirements.txt``; ``CANAILLE_PYTHON`` names another interpreter). When it cannot
start, the tests that need it fail; they are skipped only when ``RECONCILER_SKIP_CANAILLE=1`` says so.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVE = Path(__file__).with_name("serve.py")
CLIENT_ID = "reconciler"
SECRET = "canaille-client-secret-4b1d"


def canaille_python() -> Path:
    return Path(os.environ.get("CANAILLE_PYTHON") or ROOT / ".canaille-venv" / "bin" / "python")


def unavailable(reason: str) -> None:
    """Fail (CI must run Canaille), or skip where RECONCILER_SKIP_CANAILLE=1 explicitly allows it."""
    if os.environ.get("RECONCILER_SKIP_CANAILLE") == "1":
        pytest.skip(f"Canaille not available ({reason}); skipped because RECONCILER_SKIP_CANAILLE=1")
    pytest.fail(f"Canaille cannot start: {reason}. Run `bash scripts/canaille-venv.sh` (or set "
                "RECONCILER_SKIP_CANAILLE=1 to skip these tests)", pytrace=False)


@dataclass
class Canaille:
    base_url: str  # the SCIM base URL
    token_url: str
    client_id: str
    secret: str
    process: subprocess.Popen[bytes]
    log: Path
    started_in: float  # seconds from spawn to the first answer

    @property
    def root(self) -> str:
        return self.base_url.rsplit("/scim/v2", 1)[0]

    def token(self, client_id: str | None = None) -> str:
        r = httpx.post(self.token_url, data={"grant_type": "client_credentials"},
                       auth=(client_id or self.client_id, self.secret), timeout=10)
        r.raise_for_status()
        return str(r.json()["access_token"])

    def revoke(self, token: str) -> None:
        r = httpx.post(self.root + "/oauth/revoke", data={"token": token}, auth=(self.client_id, self.secret),
                       timeout=10)
        assert r.status_code == 200, r.text

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url + "/", timeout=30,
                            headers={"Authorization": f"Bearer {self.token()}",
                                     "Content-Type": "application/scim+json"})

    def reset(self) -> None:
        """Delete every user and group (Canaille's list ignores count and filter: one page is all)."""
        with self.client() as c:
            for resource in ("Groups", "Users"):
                for r in c.get(resource).json().get("Resources") or []:
                    c.delete(f"{resource}/{r['id']}")


@contextmanager
def canaille_server(tmp: Path, *, patches: tuple[str, ...] = ("memberid",),
                    clients: tuple[str, ...] = (f"{CLIENT_ID}:client_secret_basic",)) -> Iterator[Canaille]:
    py = canaille_python()
    if not py.exists():
        unavailable(f"{py} does not exist")
    port = free_port()
    log = tmp / f"canaille-{port}.log"
    cmd = [str(py), str(SERVE), "--port", str(port)]
    for c in clients:
        cmd += ["--client", c]
    for p in patches:
        cmd += ["--patch", p]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["CANAILLE_SECRET"] = SECRET
    t0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = t0 + 60
        while True:
            try:
                if httpx.get(root + "/scim/v2/ServiceProviderConfig", timeout=1).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                unavailable(f"it did not answer: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield Canaille(root + "/scim/v2", root + "/oauth/token", CLIENT_ID, SECRET, proc, log,
                       time.monotonic() - t0)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
