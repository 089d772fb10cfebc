"""The allow-list of hosts reconciler may send credentials to, kept outside the config.

A pull request can edit the config, ``base_url`` included; a plan of it resolves the secrets the CI
job holds and sends them to that URL before anyone has reviewed it. ``RECONCILER_ALLOWED_HOSTS``
(comma-separated ``host[:port]`` patterns, ``*.example.com`` for subdomains) is set by the workflow,
not by the config: when it is set, every host the config would contact (SCIM base URLs, OAuth token
endpoints, tracker URLs) must match it, and a host that does not is refused before any secret is
resolved.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from reconciler.config.base import Item
from reconciler.config.models import Config
from reconciler.errors import ConfigError, Diagnostic

ENV = "RECONCILER_ALLOWED_HOSTS"


def contacted(config: Config) -> list[tuple[Item, str, str, str]]:
    """(item, field, what, url) for every URL the config would send credentials to."""
    out: list[tuple[Item, str, str, str]] = []
    for p in config.providers:
        out.append((p, "base_url", f"providers.{p.name}.base_url", p.base_url))
        if p.auth.type == "oauth2":
            out.append((p, "auth.token_url", f"providers.{p.name}.auth.token_url", p.auth.token_url))
    for c in config.connections:
        field = "site_url" if hasattr(c, "site_url") else "base_url"
        out.append((c, field, f"connections.{c.name}.{field}", str(getattr(c, field))))
    return out


def parse(value: str) -> list[str]:
    return [p.strip().lower() for p in value.split(",") if p.strip()]


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    except ValueError:
        port = None
    return host, port


def allowed(url: str, patterns: Iterable[str]) -> bool:
    host, port = _host_port(url)
    for pat in patterns:
        if pat.startswith("["):  # [::1] or [::1]:8080
            phost, _, rest = pat[1:].partition("]")
            pport = rest[1:] if rest.startswith(":") else ""
        elif pat.count(":") == 1:
            phost, pport = pat.split(":")
        else:
            phost, pport = pat, ""
        if pport and (not pport.isdigit() or int(pport) != port):
            continue
        if fnmatch.fnmatchcase(host, phost):
            return True
    return False


def check_allowed_hosts(config: Config, environ: Mapping[str, str] | None = None,
                        skip: Iterable[str] = ()) -> None:
    """Raise ConfigError naming every URL whose host is not allowed, when the allow-list is set.
    ``skip`` names providers and connections reached through an injected transport (no network)."""
    env = os.environ if environ is None else environ
    if ENV not in env:
        return
    patterns = parse(env[ENV])
    skipped = set(skip)
    problems = []
    for item, field, what, url in contacted(config):
        if getattr(item, "name", None) in skipped or allowed(url, patterns):
            continue
        host, port = _host_port(url)
        shown = ", ".join(patterns) if patterns else "empty"
        file, line, col = item.where(field)
        problems.append(Diagnostic(file, line, col, f"{what}: host {host}:{port} is not in {ENV} ({shown}); "
                                   "reconciler sends no credential to a host the allow-list does not name "
                                   f"(set {ENV} outside the config, e.g. in the workflow, to add it)"))
    if problems:
        raise ConfigError(problems)
