"""HTTP for every provider: client factory, auth, TLS rules, retries, error mapping, call recording.

Providers never build an ``httpx.Client`` themselves; they get an ``Http``
from here (or a test injects one over a fake transport).
"""

from __future__ import annotations

import contextvars
import json
import math
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, overload
from urllib.parse import quote, urlsplit

import httpx

from reconciler import __version__
from reconciler.config.base import is_loopback as config_loopback
from reconciler.errors import (
    AuthError,
    ConflictError,
    ConnectError,
    NotFoundError,
    ProviderError,
    ServerError,
)
from reconciler.providers.deadline import deadline_transport, request_deadline
from reconciler.providers.oauth_meta import MAX_METADATA_BYTES, SUPPORTED, Choice, choose
from reconciler.providers.recovery import Found as Found
from reconciler.providers.recovery import found as found
from reconciler.providers.retry import (
    RETRY_BUDGET_ENV,
    RetryBudget,
    retry_after,
    retry_delay,
    run_budget,
    seconds,
)
from reconciler.secrets import redact, remember, remember_basic, remember_header

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = f"reconciler/{__version__}"

# The most a response body may hold (decoded); past it the answer is refused, never buffered whole.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Where a plan records the URL of the last JSON answer it read, for an answer found malformed after it was
# parsed: one box per system's plan, shared by the threads its reads run on (reconciler.threads.Pool).
last_read: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("last_read", default=None)

# The address of the change being applied, for the audit log.
current_address: contextvars.ContextVar[str] = contextvars.ContextVar("current_address", default="")
# The changes one call carries, where it carries several (a SCIM Bulk request): the audit log lists the
# call under each of them.
current_addresses: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("current_addresses",
                                                                                    default=())


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call, as the audit log and the benchmarks see it. Never holds a body or a header."""

    provider: str
    address: str
    method: str
    path: str
    status: int | None
    duration_ms: float
    error: str | None = None
    attempt: int = 1
    url: str = ""  # the full URL, query included (for `-v`; the audit log keeps the path only)
    carries: tuple[str, ...] = ()  # the changes a Bulk call carries


Recorder = Callable[[CallRecord], None]


def is_loopback(host: str) -> bool:
    """The config's loopback rule, and the embedded sandboxes' own host names (served in-process)."""
    return host in ("sandbox", "sandbox.invalid") or config_loopback(host)


def check_url(url: str, field: str = "base_url") -> None:
    """https everywhere; plain http only to loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(f"{field} {url!r} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        # never quoted: the part before @ is a credential
        raise ProviderError(f"{field} holds a user name or password before the host (user:password@host); "
                            "credentials go in the auth settings as ${env:NAME}, never in a URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ProviderError(f"{field} {url!r} uses plain http; only https is allowed except to loopback "
                            "(127.0.0.1, localhost, ::1)")


class BearerToken(httpx.Auth):
    def __init__(self, token: str) -> None:
        remember(token)
        self._header = remember_header(f"Bearer {token}")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class BasicAuth(httpx.Auth):
    """HTTP basic auth whose every derived form (``user:secret``, its base64, the header) is redacted."""

    def __init__(self, user: str, secret: str) -> None:
        self._header = remember_basic(user, secret)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class OAuth2ClientCredentials(httpx.Auth):
    """RFC 6749 client-credentials grant; the token is cached and refreshed before it expires
    (or once after a 401).

    The client authenticates by HTTP Basic (``client_secret_basic``, RFC 6749 §2.3.1: the method every
    authorization server must support; the ID and secret form-encoded, then base64) unless
    ``client_auth`` is ``client_secret_post`` (the ID and secret in the form body), or ``auto``: the method
    the authorization server's metadata advertises (``oauth_meta``), read once before the first token."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, audience: str | None = None,
                 scope: str | None = None, transport: httpx.BaseTransport | None = None,
                 verify: Any = True, timeout: float = 30.0, client_auth: str = "client_secret_basic",
                 metadata_url: str | None = None, where: str = "client_auth") -> None:
        check_url(token_url, "token_url")
        if client_auth not in ("auto", *SUPPORTED):
            raise ProviderError(f"client_auth {client_auth!r}: write client_secret_basic, client_secret_post "
                                "or auto")
        if metadata_url:
            check_url(metadata_url, "metadata_url")
        remember(client_secret)
        self.token_url, self.client_id, self.client_secret = token_url, client_id, client_secret
        self.audience, self.scope, self.client_auth = audience, scope, client_auth
        self.metadata_url, self._where = metadata_url, where
        # the method sent, and why; for auto, decided by the metadata before the first token request
        self._choice: Choice | None = None if client_auth == "auto" else Choice(client_auth, "set in the config")
        # RFC 6749 §2.3.1: each part application/x-www-form-urlencoded before the base64; every derived
        # form (the pair, its base64, the header) is registered for redaction
        self._basic = remember_basic(quote(client_id, safe=""), quote(client_secret, safe=""))
        self._transport, self._verify, self._timeout = transport, verify, timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    @property
    def method(self) -> str:
        """The client authentication method in use (for ``auto``, the one the metadata chose)."""
        choice = self._chosen()
        return choice.method if self.client_auth != "auto" else f"{choice.method}, by auto: {choice.reason}"

    def _chosen(self) -> Choice:
        if self._choice is None:
            self._choice = choose(self.token_url, self.metadata_url, where=self._where, read=self._read_metadata)
        return self._choice

    def _read_metadata(self, url: str) -> Any:
        """One public metadata document: no credential, no redirect, the config's CAs, the request's deadline,
        at most MAX_METADATA_BYTES."""
        check_url(url, "metadata_url")
        transport = self._transport or deadline_transport(self._verify, httpx.Limits(max_connections=1))
        client = httpx.Client(transport=transport, verify=self._verify, timeout=self._timeout, trust_env=False,
                              follow_redirects=False, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        http = Http(client, "the OAuth authorization server's metadata", attempts=2, backoff=0.2, max_delay=1.0,
                    max_body=MAX_METADATA_BYTES)
        try:
            return http.get_json(url)
        finally:
            http.close()

    def _fetch(self) -> str:
        data = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        if self._chosen().method == "client_secret_post":
            data |= {"client_id": self.client_id, "client_secret": self.client_secret}
        else:
            headers["Authorization"] = self._basic
        if self.audience:
            data["audience"] = self.audience
        if self.scope:
            data["scope"] = self.scope
        try:
            transport = self._transport or deadline_transport(self._verify, httpx.Limits(max_connections=1))
            with httpx.Client(transport=transport, verify=self._verify, timeout=self._timeout,
                              trust_env=False, follow_redirects=False) as c, request_deadline(self._timeout):
                r = c.post(self.token_url, data=data, headers=headers)
        except httpx.HTTPError as exc:
            raise ConnectError("cannot reach the OAuth token endpoint", "POST", self.token_url,
                               detail=type(exc).__name__) from None
        if r.status_code != 200:
            raise AuthError(f"the OAuth token endpoint refused the client credentials (sent by {self.method})",
                            "POST", self.token_url, r.status_code, detail=_detail(r))
        try:
            body = r.json()
            token = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise AuthError("the OAuth token endpoint answered without an access_token", "POST",
                            self.token_url, r.status_code) from None
        remember(token)  # whatever its length: the authorization server chose it
        remember_header(f"Bearer {token}")
        self._token = token
        self._expires = time.monotonic() + max(_expires_in(body.get("expires_in", 3600), self.token_url) - 60, 5)
        return token

    def token(self, force: bool = False) -> str:
        with self._lock:
            if force or self._token is None or time.monotonic() >= self._expires:
                return self._fetch()
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.token(force=True)}"
            yield request


def _expires_in(value: Any, url: str) -> float:
    """RFC 6749 ``expires_in``: a number of seconds; anything else is one line naming the field."""
    try:
        seconds = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise AuthError(f"the OAuth token endpoint answered with expires_in {str(value)[:40]!r}, not a number of "
                        "seconds", "POST", url, 200)
    return seconds


def _detail(r: httpx.Response) -> str:
    """A short, redacted reason from an error body (SCIM 'detail', Jira 'errorMessages' ...)."""
    text = ""
    try:
        body = r.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts: list[str] = []
        for k in ("detail", "message", "error_description", "error", "errorMessages", "errors"):
            v = body.get(k)
            if isinstance(v, list):
                parts += [str(x) for x in v]
            elif isinstance(v, dict):
                parts += [f"{a}: {b}" for a, b in v.items()]
            elif v:
                parts.append(str(v))
        if body.get("scimType"):
            parts.append(f"scimType={body['scimType']}")
        text = "; ".join(parts)
    elif r.text and "<html" not in r.text[:200].lower():
        text = r.text.strip().splitlines()[0] if r.text.strip() else ""
    # redacted before it is cut or its spaces folded: a secret cut in half would no longer be recognised
    return redact(" ".join(redact(text).split())[:300])  # one line, whatever the server sent


def raise_for_status(r: httpx.Response, what: str = "request failed") -> None:
    """Map an unsuccessful response to the error tree; the single place statuses become classes."""
    if r.is_success:
        return
    method, url = r.request.method, _safe_url(r.request.url)
    s = r.status_code
    cls: type[ProviderError]
    if s in (401, 403):
        cls = AuthError
        what = "authentication failed: the credentials were refused" if s == 401 else "permission denied"
    elif s == 404:
        cls = NotFoundError
    elif s in (409, 412):
        cls = ConflictError
    else:
        cls = ServerError
    raise cls(what, method, url, s, detail=_detail(r))


def _safe_url(url: httpx.URL) -> str:
    return redact(str(url.copy_with(query=None)))


class Http:
    """An ``httpx.Client`` plus retries, error mapping and call recording.

    ``request`` retries 429, 5xx and dropped connections with backoff, honouring
    Retry-After. For requests that are not idempotent (POST), pass ``recover``:
    it is called before each retry and may return ``Found`` (what the lost attempt
    created), which ``request`` returns, so that a retried create never creates a
    duplicate. This is the one lost-create recovery of every system.
    """

    def __init__(self, client: httpx.Client, provider: str, *, attempts: int = 5, backoff: float = 0.5,
                 max_delay: float = 30.0, recorder: Recorder | None = None,
                 sleep: Callable[[float], None] = time.sleep, budget: RetryBudget | None = None,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self.client, self.provider = client, provider
        self.attempts, self.backoff, self.max_delay = attempts, backoff, max_delay
        self.budget = budget if budget is not None else run_budget()
        self.max_body = max_body
        # one deadline per request, connect to the body's last byte: the client's timeout
        self.deadline = client.timeout.read or client.timeout.connect or 30.0
        self.recorder = recorder
        self.sleep = sleep
        self.calls = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def _record(self, method: str, url: str, status: int | None, t0: float, error: str | None,
                attempt: int) -> None:
        with self._lock:
            self.calls += 1
        if self.recorder is not None:
            path = urlsplit(url).path
            self.recorder(CallRecord(self.provider, current_address.get(), method, path, status,
                                     round((time.perf_counter() - t0) * 1000, 2), error, attempt, url,
                                     current_addresses.get()))

    @overload
    def request(self, method: str, url: str, *, what: str = ..., ok: tuple[int, ...] = ...,
                recover: None = None, **kw: Any) -> httpx.Response: ...

    @overload
    def request(self, method: str, url: str, *, what: str = ..., ok: tuple[int, ...] = ...,
                recover: Callable[[], Found | None], **kw: Any) -> httpx.Response | Found: ...

    def request(self, method: str, url: str, *, what: str = "request failed", ok: tuple[int, ...] = (),
                recover: Callable[[], Found | None] | None = None, **kw: Any) -> httpx.Response | Found:
        last_exc: Exception | None = None
        r: httpx.Response | None = None
        tries = 0
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                delay = retry_delay(r, attempt - 1, self.backoff, self.max_delay)
                if not self.budget.take(delay):
                    self._over_budget(method, url, r, delay, last_exc)
                    break
                self.sleep(delay)
                if recover is not None:
                    lost = recover()
                    if lost is not None:
                        return lost
            t0 = time.perf_counter()
            full = self._full(url)
            tries += 1
            try:
                with request_deadline(self.deadline):
                    r = self._send(method, url, **kw)
            except httpx.TimeoutException as exc:
                self._record(method, full, None, t0, "timeout", attempt)
                last_exc, r = exc, None
                continue
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                self._record(method, full, None, t0, type(exc).__name__, attempt)
                last_exc, r = exc, None
                if isinstance(exc, httpx.ConnectError) and attempt >= 2 and "SSL" in str(exc):
                    break
                continue
            self._record(method, str(r.request.url), r.status_code, t0, None, attempt)  # with its query
            if r.status_code in RETRY_STATUSES and r.status_code not in ok and attempt < self.attempts:
                continue
            if r.is_success or r.status_code in ok:
                return r
            raise_for_status(r, what)
        if r is not None:
            raise_for_status(r, what)
        assert last_exc is not None
        reason = (f"timed out: no whole answer within the {seconds(self.deadline)} deadline (timeout)"
                  if isinstance(last_exc, httpx.TimeoutException) else _connect_reason(last_exc))
        raise ConnectError(f"cannot reach {self.provider}: {reason}", method, redact(self._full(url)),
                           detail=f"after {tries} attempt{'s' if tries > 1 else ''}") from None

    def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """One attempt, its body streamed and refused past ``max_body`` (never buffered whole)."""
        r = self.client.send(self.client.build_request(method, url, **kw), stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > self.max_body:
                    declared = r.headers.get("Content-Length", "")
                    ok_len = declared.isdigit() and len(declared) < 20
                    said = f" (it declared {int(declared):,} bytes)" if ok_len else ""
                    raise ServerError(f"the answer is more than {self.max_body:,} bytes, the limit{said}; not read "
                                      "further", method, _safe_url(r.request.url), r.status_code)
                chunks.append(chunk)
            r._content = b"".join(chunks)  # what Response.read() would have kept
        finally:
            r.close()
            # a streamed response and its stream refer to each other: the cycle kept every answer (a page
            # of 1,000 users is 1 MB) until a full pass of the garbage collector. Read, it needs no stream
            r.stream = httpx.ByteStream(b"")
        return r

    def _over_budget(self, method: str, url: str, r: httpx.Response | None, delay: float,
                     last_exc: Exception | None) -> None:
        """Waiting ``delay`` more would overrun the run's retry budget: the last answer stands, or (asked to
        wait by Retry-After) one line saying how long the server asked for."""
        left = self.budget.left
        asked = retry_after(r)
        if r is not None and asked is not None:
            raise ServerError(f"the server asked to wait {seconds(asked)} before retrying (Retry-After), more than "
                              f"the {seconds(left)} left of this run's retry budget of "
                              f"{seconds(self.budget.total)} (set {RETRY_BUDGET_ENV} to wait longer)", method,
                              _safe_url(r.request.url), r.status_code)
        if r is not None:
            raise_for_status(r, "request failed (the run's retry budget is spent)")

    def _full(self, url: str) -> str:
        if url.startswith(("http://", "https://")):
            return url
        return str(self.client.base_url).rstrip("/") + "/" + url.lstrip("/")

    def get_json(self, url: str, **kw: Any) -> Any:
        r = self.request("GET", url, **kw)
        box = last_read.get()
        if box is not None:
            box[0] = _safe_url(r.request.url)
        try:
            return r.json()
        except ValueError:
            raise ServerError("the server answered with something that is not JSON", "GET",
                              _safe_url(r.request.url), r.status_code) from None


def _connect_reason(exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "TLS certificate verification failed (set ca_bundle for a private CA)"
    if "SSL" in text or "TLS" in text:
        return "TLS handshake failed"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "host name not found"
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0] if text else type(exc).__name__


def build_client(base_url: str, *, auth: httpx.Auth | None, timeout: float, ca_bundle: str | None = None,
                 transport: httpx.BaseTransport | None = None, headers: dict[str, str] | None = None,
                 max_connections: int = 16) -> httpx.Client:
    """An httpx.Client with TLS verified (optionally against a custom CA) and http only on loopback.

    The environment is not trusted (``trust_env=False``): HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY,
    .netrc and SSL_CERT_FILE are ignored, so no proxy the config does not name sees a request (and its
    credentials), and no credential reconciler was not given is sent."""
    if transport is None:
        check_url(base_url)
    verify = ca_context(ca_bundle)
    h = {"User-Agent": USER_AGENT}
    h.update(headers or {})
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.Client(
        base_url=base_url.rstrip("/") + "/", auth=auth, timeout=timeout, verify=verify,
        transport=transport if transport is not None else deadline_transport(verify, limits),
        headers=h, follow_redirects=False, trust_env=False, limits=limits,
    )


def ca_path(item: Any, base_dir: str | None = None) -> str | None:
    """An item's ``ca_bundle``, a relative path taken from the directory of the file that declares it (else
    ``base_dir``), never from the working directory."""
    ca: str | None = getattr(item, "ca_bundle", None)
    if not ca:
        return None
    from pathlib import Path
    path = Path(ca).expanduser()
    if path.is_absolute():
        return str(path)
    declared = item.where("ca_bundle")[0] if hasattr(item, "where") else "<config>"
    if declared != "<config>":
        return str(Path(declared).resolve().parent / path)
    return str(Path(base_dir) / path) if base_dir else str(path)


def ca_context(ca_bundle: str | None) -> Any:
    """What ``verify`` takes: the system's CAs, or the ones in ``ca_bundle``."""
    if not ca_bundle:
        return True
    import ssl
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ProviderError(f"cannot load ca_bundle {ca_bundle}: {exc}") from None


def json_body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except (ValueError, json.JSONDecodeError):
        return None
