"""`reconciler check`: the "Test connection" button, one provider at a time.

Steps, each named in the output when it fails: the URL is acceptable (https, or
http on loopback), the credentials resolve, the OAuth token endpoint issues a
token (oauth2 only), the server answers (TLS verified), the credentials are
accepted on an authenticated endpoint (``authentication``; any other failure of
that list is ``list users``), what discovery says the provider supports, and
what its ``/Schemas`` say it stores (``schemas``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.config.models import ScimProvider
from reconciler.contract import CheckResult
from reconciler.errors import AuthError, ConnectError, ReconcilerError
from reconciler.providers._http import OAuth2ClientCredentials, check_url
from reconciler.providers.scim.client import client_for
from reconciler.providers.scim.fit import describe_schema

if TYPE_CHECKING:
    from reconciler.session import Session


def check_provider(p: ScimProvider, session: Session) -> CheckResult:
    res = CheckResult(p.name, ok=False)
    if p.name not in session.transports:
        try:
            check_url(p.base_url)
        except ReconcilerError as exc:
            res.steps.append(("url", False, str(exc)))
            return res
    try:
        client = client_for(session, p.name)
    except ReconcilerError as exc:
        res.steps.append(("credentials", False, str(exc)))
        return res
    tls = "TLS verified" if p.base_url.startswith("https://") else "plain http (loopback)"
    auth = client.http.client.auth
    if isinstance(auth, OAuth2ClientCredentials):
        # the token endpoint is a server of its own: its failure is named as such
        try:
            auth.token()
            res.steps.append(("token", True, f"{auth.token_url} issued a token ({auth.method})"))
        except ReconcilerError as exc:
            res.steps.append(("token", False, str(exc)))
            return res
    try:
        caps = client.discover()
        res.steps.append(("reachable", True, f"{p.base_url} answers; {tls}"))
    except ConnectError as exc:
        res.steps.append(("reachable", False, str(exc)))
        return res
    except AuthError:
        caps = None  # discovery needs the token on this provider; the auth step says whether it works
        res.steps.append(("reachable", True, f"{p.base_url} answers; {tls}"))
    except ReconcilerError as exc:
        res.steps.append(("discovery", False, str(exc)))
        return res
    try:
        body = client.get_list("Users", {"startIndex": "1", "count": "1"})
        total = body.get("totalResults") if isinstance(body, dict) else None
        res.steps.append(("authentication", True, f"{p.auth.type} credentials accepted ({total} users)"))
    except AuthError as exc:
        res.steps.append(("authentication", False, str(exc)))
        return res
    except ReconcilerError as exc:  # the credentials may be fine: what failed is listing the users
        res.steps.append(("list users", False, str(exc)))
        return res
    try:
        if caps is None:
            caps = client.discover()
        res.steps.append(("discovery", True, caps.describe()))
    except ReconcilerError as exc:
        res.steps.append(("discovery", False, str(exc)))
        return res
    try:
        res.steps.append(("schemas", True, describe_schema(client.schema(), client.caps.schema_note)))
    except ReconcilerError as exc:
        res.steps.append(("schemas", False, str(exc)))
        return res
    res.ok = True
    return res
