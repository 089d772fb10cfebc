"""``client_auth: auto``: how to authenticate to an OAuth 2.0 token endpoint, read from the authorization
server's metadata (RFC 8414 ``/.well-known/oauth-authorization-server``, else OpenID Connect Discovery
``/.well-known/openid-configuration``).

The metadata is public: it is read with no credential of any kind (no Authorization header, no cookie, no
client ID), over the config's TLS trust (``ca_bundle``), within the request's deadline and a small size
limit, without following redirects. Where no document can be read, or none describes the token endpoint,
the answer is ``client_secret_basic`` (RFC 6749 §2.3.1: the method every server must accept; RFC 8414 §2:
the default when the server lists none) - never the form body a server did not ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from reconciler.errors import ProviderError

# What reconciler can send, in the order it prefers them: the header first (the secret stays out of
# bodies that servers and proxies log more often), the body only where the server asks for it.
SUPPORTED = ("client_secret_basic", "client_secret_post")
# A metadata document is a few kilobytes; past this it is not read further.
MAX_METADATA_BYTES = 256 * 1024
WELL_KNOWN = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


@dataclass(frozen=True)
class Choice:
    method: str  # client_secret_basic or client_secret_post
    reason: str  # why, for `check` and for a refusal at the token endpoint


def metadata_urls(token_url: str, metadata_url: str | None) -> list[str]:
    """Where to look: ``metadata_url`` alone when the config names it; else the two well-known documents at
    the token endpoint's origin (an issuer with a path component needs ``metadata_url``)."""
    if metadata_url:
        return [metadata_url]
    parts = urlsplit(token_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return [origin + path for path in WELL_KNOWN]


def choose(token_url: str, metadata_url: str | None, *, where: str, read: Callable[[str], Any]) -> Choice:
    """The client authentication method the authorization server advertises for ``token_url``; ``read``
    fetches one metadata document (bounded, with no credential) or raises ``ProviderError``.

    Raises ``ProviderError`` (one line naming ``where`` and what the server supports) when the server lists
    methods and none of them is one reconciler can send."""
    misses: list[str] = []
    for url in metadata_urls(token_url, metadata_url):
        try:
            doc = read(url)
        except ProviderError as exc:
            misses.append(f"{url}: {_short(exc)}")
            continue
        if not isinstance(doc, dict):
            misses.append(f"{url}: not a JSON object")
            continue
        endpoint = doc.get("token_endpoint")
        if isinstance(endpoint, str) and endpoint.rstrip("/") != token_url.rstrip("/"):
            # the document describes another token endpoint (another tenant or issuer on the same host)
            misses.append(f"{url}: describes the token endpoint {endpoint[:200]!r}, not token_url")
            continue
        methods = doc.get("token_endpoint_auth_methods_supported")
        if methods is None:  # RFC 8414 §2: omitted means client_secret_basic
            return Choice("client_secret_basic", f"the default of {url}, which lists no method")
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            misses.append(f"{url}: token_endpoint_auth_methods_supported is not a list of names")
            continue
        for method in SUPPORTED:
            if method in methods:
                return Choice(method, f"advertised by {url}")
        listed = ", ".join(m[:60] for m in methods[:20]) or "no method at all"
        raise ProviderError(f"{where}: auto, but the authorization server's metadata ({url}) supports only "
                            f"{listed} for client authentication; reconciler can send client_secret_basic or "
                            "client_secret_post (use another client, or register this one for one of those)")
    return Choice("client_secret_basic", "the RFC 6749 default; no metadata read (" + "; ".join(misses) + ")")


def _short(exc: ProviderError) -> str:
    """Why a document could not be read, in a few words (its URL is already named)."""
    if exc.status:
        return f"HTTP {exc.status}"
    return exc.message.split(": ", 1)[-1][:120]
