"""``client_auth: auto``: the method read from the authorization server's metadata (RFC 8414, OpenID
Connect Discovery), for the servers Canaille cannot be (tests/integration/test_canaille.py has the real one)."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import ValidationError

from reconciler.config.models import ScimProvider
from reconciler.errors import AuthError, ProviderError
from reconciler.providers import oauth_meta
from reconciler.providers._http import OAuth2ClientCredentials
from reconciler.providers.scim import connect

BASE = "https://scim.example.test/v2"
ORIGIN = "https://login.example.test"
TOKEN_URL = ORIGIN + "/oauth2/token"
RFC8414 = ORIGIN + "/.well-known/oauth-authorization-server"
OIDC = ORIGIN + "/.well-known/openid-configuration"
SECRET = "client-secret-meta-9137"


def provider(**auth: Any) -> ScimProvider:
    return ScimProvider.model_validate({
        "name": "platform", "type": "scim", "base_url": BASE, "timeout": 5,
        "auth": {"type": "oauth2", "token_url": TOKEN_URL, "client_id": "reconciler",
                 "client_secret": "${env:CLIENT_SECRET}", "client_auth": "auto", **auth}})


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_SECRET", SECRET)


def meta(methods: list[str] | None, endpoint: str = TOKEN_URL) -> httpx.Response:
    doc: dict[str, Any] = {"issuer": ORIGIN, "token_endpoint": endpoint}
    if methods is not None:
        doc["token_endpoint_auth_methods_supported"] = methods
    return httpx.Response(200, json=doc)


def token_request(router: respx.MockRouter, p: ScimProvider) -> httpx.Request:
    """One SCIM read through the provider's auth; the token request it made."""
    route = router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "tok-meta-1"}))
    router.get(f"{BASE}/Users/1").mock(return_value=httpx.Response(200, json={"id": "1"}))
    c = connect(p)
    try:
        assert c.get("Users", "1") == {"id": "1"}
    finally:
        c.close()
    assert route.call_count == 1
    request: httpx.Request = route.calls[0].request
    return request


def sent_by_basic(request: httpx.Request) -> bool:
    form = parse_qs(request.content.decode())
    if "Authorization" in request.headers:
        assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"reconciler:{SECRET}".encode()).decode()
        assert "client_secret" not in form
        return True
    assert form["client_secret"] == [SECRET] and form["client_id"] == ["reconciler"]
    return False


def no_credentials(request: httpx.Request) -> None:
    """A metadata read carries no credential: no Authorization, no cookie, no client ID or secret anywhere."""
    assert "Authorization" not in request.headers and "Cookie" not in request.headers
    assert request.method == "GET" and request.content == b""
    everything = str(request.url) + str(dict(request.headers))
    assert SECRET not in everything and "reconciler:" not in everything


def test_auto_prefers_basic_where_both_are_advertised() -> None:
    with respx.mock(assert_all_called=True) as router:
        m = router.get(RFC8414).mock(return_value=meta(["private_key_jwt", "client_secret_post",
                                                        "client_secret_basic"]))
        assert sent_by_basic(token_request(router, provider()))
    no_credentials(m.calls[0].request)


def test_auto_sends_the_body_to_a_post_only_server() -> None:
    with respx.mock(assert_all_called=True) as router:
        m = router.get(RFC8414).mock(return_value=meta(["client_secret_post"]))
        assert not sent_by_basic(token_request(router, provider()))
    no_credentials(m.calls[0].request)


def test_auto_reads_openid_configuration_when_rfc8414_is_missing() -> None:
    with respx.mock(assert_all_called=True) as router:
        router.get(RFC8414).mock(return_value=httpx.Response(404))
        m = router.get(OIDC).mock(return_value=meta(["client_secret_post"]))
        assert not sent_by_basic(token_request(router, provider()))
    no_credentials(m.calls[0].request)


def test_auto_falls_back_to_basic_when_no_metadata_is_published() -> None:
    with respx.mock(assert_all_called=True) as router:
        a = router.get(RFC8414).mock(return_value=httpx.Response(404))
        b = router.get(OIDC).mock(return_value=httpx.Response(404, text="<html>not found</html>"))
        assert sent_by_basic(token_request(router, provider()))
    no_credentials(a.calls[0].request)
    no_credentials(b.calls[0].request)


@pytest.mark.parametrize("answer", [
    httpx.Response(200, text="<html>a login page</html>"),       # not JSON
    httpx.Response(200, json=["client_secret_post"]),              # not an object
    httpx.Response(302, headers={"Location": "https://elsewhere.test/meta"}),  # never followed
    meta(["client_secret_post"], endpoint=ORIGIN + "/tenant-b/token"),  # another endpoint's document
    httpx.Response(200, json={"token_endpoint_auth_methods_supported": "client_secret_post"}),  # not a list
    httpx.Response(200, content=b'{"token_endpoint_auth_methods_supported": ["client_secret_post"], "x": "'
                   + b"a" * (oauth_meta.MAX_METADATA_BYTES + 10) + b'"}'),  # past the size limit
])
def test_auto_never_sends_the_body_on_metadata_it_cannot_trust(answer: httpx.Response) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(RFC8414).mock(return_value=answer)
        router.get(OIDC).mock(return_value=httpx.Response(404))
        router.get("https://elsewhere.test/meta").mock(return_value=meta(["client_secret_post"]))
        assert sent_by_basic(token_request(router, provider()))
        assert not router.routes[2].called


def test_auto_takes_the_rfc8414_default_when_no_method_is_listed() -> None:
    with respx.mock(assert_all_called=True) as router:
        router.get(RFC8414).mock(return_value=meta(None))
        assert sent_by_basic(token_request(router, provider()))


def test_auto_with_only_unsupported_methods_is_one_line_naming_them() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(RFC8414).mock(return_value=meta(["private_key_jwt", "tls_client_auth"]))
        token = router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "x"}))
        c = connect(provider())
        with pytest.raises(ProviderError) as info:
            c.get("Users", "1")
        c.close()
    text = str(info.value)
    assert "\n" not in text and not token.called
    assert "providers.platform.auth.client_auth: auto" in text
    assert "supports only private_key_jwt, tls_client_auth" in text and RFC8414 in text
    assert "client_secret_basic or client_secret_post" in text and SECRET not in text


def test_explicit_metadata_url_is_the_only_document_read() -> None:
    url = ORIGIN + "/realms/acme/.well-known/openid-configuration"
    with respx.mock(assert_all_called=True) as router:
        m = router.get(url).mock(return_value=meta(["client_secret_post"]))
        assert not sent_by_basic(token_request(router, provider(metadata_url=url)))
    no_credentials(m.calls[0].request)


def test_a_refusal_after_auto_says_what_was_chosen_and_why() -> None:
    with respx.mock() as router:
        router.get(RFC8414).mock(return_value=httpx.Response(404))
        router.get(OIDC).mock(return_value=httpx.Response(404))
        router.post(TOKEN_URL).mock(return_value=httpx.Response(401, json={"error": "invalid_client"}))
        c = connect(provider())
        with pytest.raises(AuthError) as info:
            c.get("Users", "1")
        c.close()
    text = str(info.value)
    assert "sent by client_secret_basic, by auto: the RFC 6749 default; no metadata read" in text
    assert f"{RFC8414}: HTTP 404" in text and SECRET not in text


def test_metadata_url_needs_auto_and_a_safe_url() -> None:
    with pytest.raises(ValidationError, match="metadata_url is read only with client_auth: auto"):
        provider(client_auth="client_secret_basic", metadata_url=OIDC)
    with pytest.raises(ValidationError, match="plain http"):
        provider(metadata_url="http://login.example.test/.well-known/openid-configuration")


def test_the_metadata_read_trusts_the_configs_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.providers import _http
    from reconciler.providers.deadline import deadline_transport as real

    seen: list[Any] = []

    def spy(verify: Any, limits: httpx.Limits) -> httpx.BaseTransport:
        seen.append(verify)
        return real(verify, limits)

    monkeypatch.setattr(_http, "deadline_transport", spy)
    ca = object()
    auth = OAuth2ClientCredentials(TOKEN_URL, "reconciler", SECRET, verify=ca, client_auth="auto")
    with respx.mock() as router:
        router.get(RFC8414).mock(return_value=meta(["client_secret_post"]))
        assert auth.method.startswith("client_secret_post, by auto: advertised by " + RFC8414)
    assert seen == [ca]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(2)
    for s in held:
        s.close()
    srv.close()


def test_a_silent_metadata_server_is_bounded_by_the_deadline(silent_server: str) -> None:
    auth = OAuth2ClientCredentials(silent_server + "/token", "reconciler", SECRET, timeout=0.3, client_auth="auto")
    t0 = time.monotonic()
    method = auth.method
    assert time.monotonic() - t0 < 5
    assert method.startswith("client_secret_basic, by auto: the RFC 6749 default; no metadata read")
    assert "timeout" in method and SECRET not in method
