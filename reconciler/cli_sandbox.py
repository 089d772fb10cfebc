"""`reconciler sandbox jira|scim`: in-memory test servers on 127.0.0.1, to try reconciler without the real thing.

The commands import their server only when run, so that every other command starts without loading them.
"""

from __future__ import annotations

import click


@click.group()
def sandbox() -> None:
    """Serve an in-memory test server on 127.0.0.1, to try reconciler (or any client) without the real thing."""


@sandbox.command("jira")
@click.option("--flavour", type=click.Choice(["cloud", "datacenter"]), default="cloud", show_default=True,
              help="Jira Cloud (REST v3, email + API token) or Data Center (REST v2, personal access token).")
@click.option("--port", type=click.IntRange(0, 65535), default=8089, show_default=True, help="0 picks a free port.")
def sandbox_jira(flavour: str, port: int) -> None:
    """An in-memory Jira on 127.0.0.1:PORT until Ctrl-C; prints the URL and the sandbox's own credentials."""
    from reconciler.sandbox.jira import describe, serve

    try:
        serve(flavour, "127.0.0.1", port, ready=lambda url, state: click.echo(describe(url, state)))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        pass


@sandbox.command("scim")
@click.option("--port", type=click.IntRange(0, 65535), default=18451, show_default=True,
              help="0 picks a free port. examples/ point at 18451.")
@click.option("--empty", is_flag=True, help="Start with no users, not with the demo's starting accounts.")
def sandbox_scim(port: int, empty: bool) -> None:
    """The demo's SCIM server (scim2-server, in memory) on 127.0.0.1:PORT until Ctrl-C.

    It starts with the accounts `reconciler demo` starts with (unless --empty) and prints the
    export line, so that the demo's commands can be run by hand: reconciler plan examples/quickstart.
    """
    from reconciler.sandbox.scim import DEMO_TOKEN, describe, serve

    try:
        serve("127.0.0.1", port, DEMO_TOKEN, empty=empty,
              ready=lambda url: click.echo(describe(url, DEMO_TOKEN, empty=empty)))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        pass
