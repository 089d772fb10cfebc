"""The command line. The only module that prints or exits.

Exit codes: 0 success; 1 error; with --detailed-exitcode, 2 when the plan has changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import __version__
from reconciler.apply import ApplyResult, Outcome, apply_plan
from reconciler.audit import DEFAULT_PATH, AuditLog
from reconciler.config import load_config
from reconciler.config.secrets import redact
from reconciler.errors import ApplyError, ConfigError, ReconcilerError
from reconciler.plan.model import Plan
from reconciler.providers._http import CallRecord
from reconciler.render import RENDERERS
from reconciler.render.json import plan_document
from reconciler.session import Session

F = TypeVar("F", bound=Callable[..., Any])


def _err(text: str) -> None:
    click.echo(redact(text), err=True)


def handle_errors(fn: F) -> F:
    """User errors become one clear message (no traceback) and exit 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for d in exc.diagnostics:
                _err(f"error: {d}")
            _err(f"{len(exc.diagnostics)} problem(s) found in the configuration.")
            sys.exit(1)
        except ReconcilerError as exc:
            _err(f"error: {exc}")
            sys.exit(1)
        except KeyboardInterrupt:
            _err("interrupted")
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: say so plainly, never leak a secret
            if os.environ.get("RECONCILER_DEBUG"):
                _err(traceback.format_exc())
            _err(f"internal error: {type(exc).__name__}: {exc} (set RECONCILER_DEBUG=1 for the traceback; "
                 "please report it)")
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _colour(no_color: bool) -> bool:
    return not no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def plan_digest(plan: Plan) -> str:
    doc = plan_document(plan)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reconciler")
def main() -> None:
    """Members, teams, tracker integrations and user maps as code: validate, plan, apply."""


config_arg = click.argument("config", type=click.Path(path_type=Path))
target_opt = click.option("--target", "targets", multiple=True, metavar="ADDRESS",
                          help='Only this resource and what it needs, e.g. scim.platform.user["alice@acme.io"].')
allow_opt = click.option("--allow-removals", type=click.IntRange(min=0), default=None, metavar="N",
                         help="Proceed even past the removal thresholds when at most N objects are removed.")
no_color_opt = click.option("--no-color", is_flag=True, help="Never colour the output.")


@main.command()
@config_arg
@handle_errors
def validate(config: Path) -> None:
    """Check a config without contacting any live system."""
    cfg = load_config(config)
    click.echo(f"Configuration is valid: {len(cfg.files)} file(s), {len(cfg.providers)} provider(s), "
               f"{len(cfg.members)} member(s), {len(cfg.teams)} team(s).")


@main.command()
@config_arg
@target_opt
@allow_opt
@click.option("--format", "fmt", type=click.Choice(sorted(RENDERERS)), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 2 with changes, 1 on error.")
@no_color_opt
@handle_errors
def plan(config: Path, targets: tuple[str, ...], allow_removals: int | None, fmt: str, detailed_exitcode: bool,
         no_color: bool) -> None:
    """Read the live systems and show what apply would change. Changes nothing."""
    cfg = load_config(config)
    with Session(cfg) as session:
        p = session.plan(targets=list(targets), allow_removals=allow_removals)
    click.echo(redact(RENDERERS[fmt](colour=_colour(no_color)).render(p)), nl=False)
    if detailed_exitcode and p.has_changes:
        sys.exit(2)


@main.command()
@config_arg
@target_opt
@allow_opt
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--audit-log", type=click.Path(path_type=Path), default=None,
              help=f"Append-only JSON-lines log of every call [default: $RECONCILER_AUDIT_LOG or {DEFAULT_PATH}]")
@no_color_opt
@handle_errors
def apply(config: Path, targets: tuple[str, ...], allow_removals: int | None, auto_approve: bool,
          audit_log: Path | None, no_color: bool) -> None:
    """Plan, ask for confirmation, then converge the live systems."""
    cfg = load_config(config)
    colour = _colour(no_color)
    sink: list[Callable[[CallRecord], None]] = []
    with Session(cfg, recorder=lambda rec: [f(rec) for f in sink]) as session:
        p = session.plan(targets=list(targets), allow_removals=allow_removals)
        click.echo(redact(RENDERERS["text"](colour=colour).render(p)), nl=False)
        if not p.has_changes:
            return
        if not auto_approve:
            if not sys.stdin.isatty():
                raise click.UsageError("refusing to apply without confirmation: stdin is not a terminal; "
                                       "pass --auto-approve")
            click.confirm("Apply these changes?", abort=True)
        path = audit_log or Path(os.environ.get("RECONCILER_AUDIT_LOG") or DEFAULT_PATH)
        with AuditLog(path, commit=p.commit, plan_digest=plan_digest(p),
                      actions={c.address: c.action.value for c in p.changes}) as audit:
            sink.append(audit.record)
            audit.write({"event": "apply-start", "changes": len(p.changes), "summary": p.summary()})
            result = apply_plan(session, p, observer=_progress(colour))
            audit.write({"event": "apply-end", "summary": result.summary(), "failed": len(result.failures)})
    _finish(result)


def _progress(colour: bool) -> Callable[[Outcome], None]:
    def show(o: Outcome) -> None:
        status = "done" if o.ok else f"FAILED: {o.error}"
        if colour:
            status = click.style(status, fg="green" if o.ok else "red")
        click.echo(redact(f"{o.change.address}: {o.change.action.value} {status} ({o.duration_ms:.0f} ms)"))
    return show


def _finish(result: ApplyResult) -> None:
    click.echo(result.summary())
    if result.failures:
        raise ApplyError(result.failures)


@main.command()
@config_arg
@handle_errors
def check(config: Path) -> None:
    """Test the connection to every provider: reachability, TLS, authentication, discovery."""
    cfg = load_config(config)
    failed = False
    with Session(cfg) as session:
        for res in session.check():
            for step, ok, text in res.steps:
                mark = "ok  " if ok else "FAIL"
                click.echo(redact(f"{res.provider:<16} {step:<15} {mark} {text}"))
            failed |= not res.ok
    if failed:
        sys.exit(1)


@main.command()
@no_color_opt
@handle_errors
def demo(no_color: bool) -> None:
    """Plan and apply the bundled example against an embedded SCIM server: no network needed."""
    from reconciler.demo import run_demo

    run_demo(echo=lambda s: click.echo(redact(s), nl=False), colour=_colour(no_color))


from reconciler.usermaps.cli import usermaps  # noqa: E402  (needs handle_errors above)

main.add_command(usermaps)


if __name__ == "__main__":  # pragma: no cover
    main()
