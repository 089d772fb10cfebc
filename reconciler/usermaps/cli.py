"""``reconciler usermaps ...``: explain, resolve, export and import user maps (command-line layer only)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from reconciler.clierrors import handle_errors
from reconciler.config.checks import did_you_mean
from reconciler.config.loader import load_config
from reconciler.config.models import Config
from reconciler.errors import ReconcilerError
from reconciler.files import USERMAP_FILE_BYTES, FileRefused, read_limited
from reconciler.usermaps import formats
from reconciler.usermaps.resolve import (
    connections,
    fallback_users,
    identities_for,
    resolve_identity,
    system_type,
    user_maps,
)

_CONFIG = click.Path(exists=True, path_type=Path)
_SOURCE_HELP = ("Map a Connect data source to a system, as 'DATA_SOURCE=SYSTEM' (repeatable). A data source "
                "not mapped is read as the system of the same name when that is a valid system name (lower case "
                "letters, digits, - and _, e.g. 'jira-dc'); any other, such as 'Jira DataSource', is refused "
                "until mapped.")
_SOURCE_HELP_OUT = ("Write a system's identities under this Connect data source, as 'DATA_SOURCE=SYSTEM' "
                    "(repeatable); a system not mapped is written as a data source of its own name.")
_MEMBER_SOURCE_HELP = ("The Connect data source whose user name is the member's email; without it the "
                       "UserMap <name> is the member's email.")


@click.group()
def usermaps() -> None:
    """User maps: members' identities in other systems, and fallback users."""


def _systems(config: Config) -> list[str]:
    names = [str(c.name) for c in connections(config)]
    for um in user_maps(config):
        names += list(um.identities)
    names += [fb.system for fb in fallback_users(config)]
    return list(dict.fromkeys(names))


@usermaps.command()
@click.argument("config", type=_CONFIG)
@click.argument("member")
@click.option("--system", help="A connection name or free-form system (default: every system the config knows).")
@click.option("--project", help="Project key the identity is needed for (fallback scope).")
@click.option("--type", "issue_type", help="Issue type the identity is needed for (fallback scope).")
@click.option("--field", help="User field the identity is needed for: assignee, reporter ... (fallback scope).")
@handle_errors
def explain(config: Path, member: str, system: str | None, project: str | None, issue_type: str | None,
            field: str | None) -> None:
    """Print the identity MEMBER would get in each system, and which rule decided it."""
    cfg = load_config(config)
    members = {m.key: m for m in cfg.members}
    m = members.get(member.lower())
    if m is None:
        raise ReconcilerError(f"unknown member '{member}'" + did_you_mean(member.lower(), members))
    systems = _systems(cfg)
    if system is not None and system not in systems:
        raise ReconcilerError(f"no user map, fallback user or connection names system '{system}'"
                              + did_you_mean(system, systems))
    scope = ", ".join(f"{k} {v}" for k, v in (("project", project), ("issue type", issue_type),
                                                ("field", field)) if v)
    click.echo(f"{m.email}" + ("" if m.active else "  [deactivated: active: false; the map is kept for history]")
               + (f"  ({scope})" if scope else ""))
    if not systems:
        click.echo("  no user maps, fallback users or connections in this config")
    for s in [system] if system else systems:
        r = resolve_identity(cfg, m.email, s, project=project, issue_type=issue_type, field=field)
        kind = system_type(cfg, s)
        label = f"{s} ({kind})" if kind else s
        others = identities_for(cfg, m.email, s)[1:]
        also = f"  (also mapped: {', '.join(others)})" if others and r.source == "mapped" else ""
        click.echo(f"  {label}: {r.identity or '-'}{also}")
        click.echo(f"    {r.source or 'unresolved'}: {r.rule}")


_MARK = {"found": "+", "ambiguous": "!", "hidden": "?", "inactive": "!", "not-found": "-", "claimed": "!",
         "deactivated-member": " "}


@usermaps.command()
@click.argument("config", type=_CONFIG)
@click.option("--connection", required=True, help="The Jira connection (from connections:) to search.")
@click.option("--write", is_flag=True, help="Add the accounts found to the YAML, keeping comments and order.")
@handle_errors
def resolve(config: Path, connection: str, write: bool) -> None:
    """Look up Jira accounts by email for members without an identity in CONNECTION.

    Only one active account whose visible email matches exactly is taken; two accounts,
    a hidden email or an inactive account are reported and left for a person to decide."""
    from reconciler.usermaps.edit import add_identities
    from reconciler.usermaps.lookup import jira_connection, resolve_missing

    cfg = load_config(config)
    conn = jira_connection(cfg, connection)
    results = resolve_missing(cfg, conn.name)
    if not results:
        click.echo(f"every member already has an identity in {conn.name}; nothing to look up")
        return
    width = max(len(r.member) for r in results)
    for r in results:
        click.echo(f"{_MARK[r.status]} {r.member:<{width}}  {r.status:<18} {r.detail}")
    counts = Counter(r.status for r in results)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    found = {r.member: r.identity for r in results if r.status == "found" and r.identity}
    click.echo(f"{len(results)} member(s) looked up in {conn.name}: {summary}.")
    if write and found:
        files = add_identities(cfg, conn.name, found)
        click.echo(f"wrote {len(found)} identit{'y' if len(found) == 1 else 'ies'} to "
                   f"{', '.join(str(f) for f in files)}")
    elif found:
        click.echo("run again with --write to add the accounts found to the YAML.")


@usermaps.command()
@click.argument("config", type=_CONFIG)
@click.option("--format", "fmt", type=click.Choice(formats.FORMATS_OUT), required=True)
@click.option("--source", "sources", multiple=True, metavar="DATA_SOURCE=SYSTEM", help=_SOURCE_HELP_OUT)
@click.option("--member-source", help="Also write each member's email as a user of this Connect data source.")
@click.option("--out", type=click.Path(path_type=Path), help="Write to this file instead of standard output.")
@handle_errors
def export(config: Path, fmt: str, sources: tuple[str, ...], member_source: str | None, out: Path | None) -> None:
    """Write the config's user maps as Connect XML, CSV or JSON."""
    cfg = load_config(config)
    maps = formats.from_config(cfg)
    if fmt == "connect-xml":
        text = formats.write_connect_xml(maps, formats.parse_sources(sources), member_source)
    elif fmt == "csv":
        text = formats.write_csv(maps)
    else:
        text = formats.write_json(maps)
    _emit(text, out)


@usermaps.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(formats.FORMATS_IN), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The YAML file to write (new).")
@click.option("--source", "sources", multiple=True, metavar="DATA_SOURCE=SYSTEM", help=_SOURCE_HELP)
@click.option("--member-source", help=_MEMBER_SOURCE_HELP)
@click.option("--config", "config", type=_CONFIG, help="Check members and identity shapes against this config.")
@handle_errors
def import_(file: Path, fmt: str, out: Path, sources: tuple[str, ...], member_source: str | None,
            config: Path | None) -> None:
    """Read user maps from Connect XML, CSV or JSON and write them as a user_maps: YAML file."""
    if out.exists():
        raise ReconcilerError(f"{out} exists; choose a new file (import never overwrites)")
    cfg = load_config(config) if config is not None else None
    try:
        raw = read_limited(file, USERMAP_FILE_BYTES)  # a FIFO or /dev/zero is refused before a byte is read
    except FileRefused as exc:
        raise ReconcilerError(f"{file}: {exc}") from None
    except OSError as exc:
        raise ReconcilerError(f"{file}: cannot read: {exc.strerror}") from None
    if fmt == "connect-xml":
        maps = formats.read_connect_xml(raw, str(file), formats.parse_sources(sources), member_source, cfg)
    elif fmt == "csv":
        maps = formats.read_csv(raw, str(file), cfg)
    else:
        maps = formats.read_json(raw, str(file), cfg)
    out.write_text(formats.write_yaml(maps), encoding="utf-8")
    n = sum(len(v) for pm in maps for v in pm.identities.values())
    click.echo(f"wrote {len(maps)} user map(s) with {n} identit{'y' if n == 1 else 'ies'} to {out}", err=True)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
