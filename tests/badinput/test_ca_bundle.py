"""``ca_bundle`` is read relative to the config file that names it (not the working directory), and the OAuth
token request trusts it as the SCIM requests do: an HTTPS server on 127.0.0.1 with a certificate of a private
CA (openssl), serving the token endpoint and SCIM discovery."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler.config.loader import load_config
from reconciler.config.models import ScimProvider
from reconciler.providers.scim import connect

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def make_cert(d: Path) -> tuple[Path, Path]:
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@contextmanager
def https_server(cert: Path, key: Path) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _send(self, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.path)
            if b"client_secret=" in body:
                seen.append("(the secret in the body)")
            self._send({"access_token": "issued-token-XYZ12345", "token_type": "Bearer", "expires_in": 3600})

        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            if self.path == "/.well-known/oauth-authorization-server":  # a post-only server's RFC 8414 metadata
                if "Authorization" in self.headers:
                    seen.append("(credentials sent for metadata)")
                origin = f"https://{self.headers['Host']}"
                self._send({"issuer": origin, "token_endpoint": f"{origin}/oauth/token",
                            "token_endpoint_auth_methods_supported": ["client_secret_post"]})
                return
            self._send({"totalResults": 0, "Resources": []})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_ca_bundle_is_relative_to_the_config_and_trusted_by_the_token_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    cert, key = make_cert(conf)
    monkeypatch.setenv("OAUTH_SECRET", "client-secret-1234567")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where cert.pem is not
    with https_server(cert, key) as (url, seen):
        (conf / "providers.yaml").write_text(f"""providers:
  - name: p
    type: scim
    base_url: {url}/v2
    ca_bundle: cert.pem
    auth:
      type: oauth2
      token_url: {url}/oauth/token
      client_id: reconciler
      client_secret: ${{env:OAUTH_SECRET}}
""")
        config = load_config(conf)
        p = config.providers[0]
        assert isinstance(p, ScimProvider)
        client = connect(p, base_dir=str(conf), attempts=1)
        assert client.http.get_json("Users") == {"totalResults": 0, "Resources": []}
        client.close()
    assert seen == ["/oauth/token", "/v2/Users"]


def test_client_auth_auto_reads_the_metadata_over_the_private_ca(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = make_cert(tmp_path)
    monkeypatch.setenv("OAUTH_SECRET", "client-secret-1234567")
    with https_server(cert, key) as (url, seen):
        p = ScimProvider.model_validate({
            "name": "p", "type": "scim", "base_url": f"{url}/v2", "ca_bundle": str(cert),
            "auth": {"type": "oauth2", "token_url": f"{url}/oauth/token", "client_id": "reconciler",
                     "client_secret": "${env:OAUTH_SECRET}", "client_auth": "auto"}})
        client = connect(p, attempts=1)
        assert client.http.get_json("Users") == {"totalResults": 0, "Resources": []}
        client.close()
    # the metadata was read over TLS trusting ca_bundle, with no credential, and its choice was followed
    assert seen == ["/.well-known/oauth-authorization-server", "/oauth/token", "(the secret in the body)",
                    "/v2/Users"]
