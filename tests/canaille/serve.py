# mypy: ignore-errors
# (runs in .canaille-venv, where Canaille, Flask and scim2-models 0.9 live; not in reconciler's venv)
"""Serve Canaille (memory backend) on 127.0.0.1: an OAuth 2.0 client-credentials token endpoint and a
SCIM 2.0 server that accepts only the tokens it issued. Run it with the Python of its own venv
(``scripts/canaille-venv.sh`` makes ``.canaille-venv`` from ``tests/canaille/requirements.txt``):
Canaille 0.3.6 needs scim2-models 0.9.0 (0.10 and later make every SCIM answer a 500), which
clashes with reconciler's own pin, so the tests start it as a subprocess (``tests/canaille/server.py``).

    .canaille-venv/bin/python tests/canaille/serve.py --port 18521 --client reconciler:client_secret_basic \
        [--patch memberid] [--patch count]

Prints ``TOKEN_URL=``, ``SCIM_BASE_URL=`` and ``READY`` lines, then serves until SIGTERM. The client
secret is read from the environment variable CANAILLE_SECRET (never from the command line).

Stock Canaille 0.3.6 has two bugs; each fix is opt-in, named, and used by the tests that say so:

- ``memberid``: a Group's ``members[].value`` holds the member's userName instead of their id
  (canaille.scim.casting), so no client can match members to users: patched to the id.
- ``count``: ``GET /Users?count=N`` answers 500 (the query string is compared with an int in
  canaille.scim.endpoints.parse_search_request): patched to cast it. reconciler reads a server
  with this bug without the patch (it falls back to reading without ``count``); the tests run
  both ways.

Nothing else is changed: Canaille's refusals (``emails[].type``, ``roles``, enterprise ``costCenter``
and ``manager``; ``name.formatted``, ``name.familyName`` and ``active`` required; ``externalId``
never stored) are what reconciler has to cope with.
"""

import argparse
import datetime
import os
import signal
import sys
import threading
import time
import uuid
import wsgiref.simple_server

T0 = time.perf_counter()
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # token endpoint over plain http (loopback only)

from canaille import create_app  # noqa: E402
from canaille.app import models  # noqa: E402
from canaille.backends import Backend  # noqa: E402
from joserfc.jwk import JWKRegistry  # noqa: E402

PATCHES = ("memberid", "count")


def apply_patches(names):
    if "count" in names:
        import canaille.scim.endpoints as ep
        from scim2_models import SearchRequest
        orig = ep.parse_search_request

        def parse_search_request(request):
            count = request.args.get("count")
            if count is None:
                return orig(request)
            try:
                count = min(int(count), 1000)
            except ValueError:
                count = None
            return SearchRequest(attributes=request.args.get("attributes"),
                                 excluded_attributes=request.args.get("excludedAttributes"),
                                 start_index=request.args.get("startIndex"), count=count)

        ep.parse_search_request = parse_search_request
    if "memberid" in names:
        import canaille.scim.casting as casting
        import canaille.scim.endpoints as ep
        from canaille.scim.models import Group as ScimGroup
        from flask import url_for

        def group_from_canaille_to_scim_server(group):
            scim_group = casting.group_from_canaille_to_scim(group, ScimGroup)
            scim_group.id = group.id
            scim_group.members = [
                ScimGroup.Members(value=user.id, display=user.display_name,
                                  ref=url_for("scim.query_user", user=user, _external=True))
                for user in group.members or []] or None
            return scim_group

        casting.group_from_canaille_to_scim_server = group_from_canaille_to_scim_server
        ep.group_from_canaille_to_scim_server = group_from_canaille_to_scim_server


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass


def make_config(host, port):
    jwk = JWKRegistry.generate_key("RSA", 2048)
    jwk.ensure_kid()
    return {
        "TESTING": True,
        "ENV_FILE": None,
        "SECRET_KEY": str(uuid.uuid4()),
        "WTF_CSRF_ENABLED": False,
        "PREFERRED_URL_SCHEME": "http",
        "SERVER_NAME": f"{host}:{port}",
        "CANAILLE": {
            "DATABASE": "memory",
            "JAVASCRIPT": False,
            "ACL": {"DEFAULT": {"PERMISSIONS": ["use_oidc", "manage_oidc"]}},
            "LOGGING": {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"canaille": {"class": "logging.NullHandler"}},
                "loggers": {"canaille": {"level": "DEBUG", "handlers": ["canaille"]}},
            },
        },
        "CANAILLE_OIDC": {"ACTIVE_JWKS": [jwk.as_dict(private=True)]},
        # TESTING=True leaves CANAILLE_SCIM unset (SCIM off): turn the server on explicitly
        "CANAILLE_SCIM": {"ENABLE_SERVER": True, "ENABLE_CLIENT": False},
    }


def create_client(client_id, secret, auth_method):
    now = datetime.datetime.now(datetime.UTC)
    client = models.Client(
        client_id=client_id, client_secret=secret, client_name=client_id, client_id_issued_at=now,
        grant_types=["client_credentials"], response_types=[], redirect_uris=[],
        token_endpoint_auth_method=auth_method, scope=[],
    )
    Backend.instance.save(client)
    client.audience = [client]
    Backend.instance.save(client)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--client", action="append", default=[],
                    help="CLIENT_ID:AUTH_METHOD (client_secret_basic or client_secret_post); repeatable")
    ap.add_argument("--patch", action="append", default=[], choices=PATCHES)
    args = ap.parse_args()
    secret = os.environ.get("CANAILLE_SECRET")
    if not secret:
        ap.error("set CANAILLE_SECRET")
    apply_patches(set(args.patch))
    app = create_app(config=make_config(args.host, args.port), env_file=None)
    with app.app_context():
        for spec in args.client or ["reconciler:client_secret_basic"]:
            client_id, _, method = spec.partition(":")
            create_client(client_id, secret, method or "client_secret_basic")
    httpd = wsgiref.simple_server.make_server(args.host, args.port, app, handler_class=QuietHandler)
    base = f"http://{args.host}:{args.port}"
    print(f"TOKEN_URL={base}/oauth/token", flush=True)
    print(f"SCIM_BASE_URL={base}/scim/v2", flush=True)
    print(f"READY in {time.perf_counter() - T0:.2f}s patches={sorted(args.patch) or 'none'}", flush=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
