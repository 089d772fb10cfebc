"""The command line. The only module that prints or exits.

Exit codes: 0 success; 1 error; with --detailed-exitcode, 2 when the plan has changes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler import __version__
from reconciler.cli_sandbox import sandbox
from reconciler.clierrors import handle_errors
from reconciler.cliout import echo_chunks, echo_json, finish, say
from reconciler.config.loader import load_config
from reconciler.errors import ApplyError, ConfigError, PlanError, ReconcilerError, StalePlanError
from reconciler.secrets import redact

if TYPE_CHECKING:
    from reconciler.plan.model import Plan
    from reconciler.providers._http import CallRecord

# The engine, the systems (httpx, scim2-models), rich and the renderers are imported by the commands that
# use them, not here: `reconciler validate` in CI starts in a fraction of the time (bench/startup.py).
FORMATS = ("json", "markdown", "text")  # reconciler.render.RENDERERS (tests/unit/test_cli_help.py checks)
DEFAULT_AUDIT_LOG = ".reconciler/audit.jsonl"  # reconciler.audit.DEFAULT_PATH (the same test checks)
LAZY = {"usermaps": "reconciler.usermaps.cli"}  # commands whose module loads when the command is asked for

def _colour(no_color: bool) -> bool:
    return not no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()


class _Group(click.Group):
    """Usage errors exit 1 like every other error: 2 means "the plan has changes" to --detailed-exitcode."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            exc.exit_code = 1  # type: ignore[misc]  # click declares it on the class; the instance wins
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY and name not in self.commands:
            import importlib
            self.add_command(getattr(importlib.import_module(LAZY[name]), name))
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = 1  # type: ignore[misc]
            raise


LOG_LEVELS = ("warning", "debug")
_log = {"level": "warning"}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reconciler")
@click.option("-v", "--verbose", is_flag=True, help="Same as --log-level debug.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="warning", show_default=True,
              help="debug: also print every HTTP call (method, URL, status, time) to stderr, secrets scrubbed.")
def main(verbose: bool, log_level: str) -> None:
    """Members, teams, tracker integrations and user maps as code: validate, plan, apply."""
    from reconciler.memory import tune_malloc

    tune_malloc()
    _log["level"] = "debug" if verbose else log_level


def _set_level(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if param.name == "verbose" and value:
        _log["level"] = "debug"
    elif param.name == "log_level" and value is not None:
        _log["level"] = value


def log_opts(f: Callable[..., Any]) -> Callable[..., Any]:
    """-v / --log-level on a command too, so they may follow it (reconciler plan CONFIG -v)."""
    f = click.option("--log-level", type=click.Choice(LOG_LEVELS), default=None, expose_value=False,
                     callback=_set_level, help="debug: also print every HTTP call to stderr (secrets scrubbed).")(f)
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_level,
                        help="Same as --log-level debug.")(f)


def _recorder(sink: list[Callable[[CallRecord], None]] | None = None) -> Callable[[CallRecord], None] | None:
    """The Session's recorder: the callables in ``sink`` (progress, audit log), and with --log-level debug a
    line per call."""
    from reconciler.progress import debug_line, fanout

    if _log["level"] == "debug":
        sink = [] if sink is None else sink
        sink.insert(0, lambda rec: click.echo(debug_line(rec), err=True))
    return None if sink is None else fanout(sink)  # a sink may be filled later (the audit log, once opened)


config_arg = click.argument("config", type=click.Path(path_type=Path))
target_opt = click.option("--target", "targets", multiple=True, metavar="ADDRESS",
                          help='Only this resource and what it needs, e.g. scim.platform.user["alice@acme.io"].')
allow_opt = click.option("--allow-removals", type=click.IntRange(min=0), default=None, metavar="N",
                         help="Proceed even past the removal thresholds when at most N objects are removed.")
no_color_opt = click.option("--no-color", is_flag=True, help="Never colour the output.")


json_opt = click.option("--json", "as_json", is_flag=True,
                        help="Print the result as one JSON document on stdout (and nothing else there).")


@main.command()
@config_arg
@json_opt
@handle_errors
def validate(config: Path, as_json: bool) -> None:
    """Check a config without contacting any live system."""
    if as_json:
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            echo_json({"valid": False, "problems": [
                {"file": d.file, "line": d.line, "column": d.column, "message": d.message, "text": str(d)}
                for d in exc.diagnostics]})
            sys.exit(1)
        echo_json({"valid": True, "files": len(cfg.files), "providers": len(cfg.providers),
                    "members": len(cfg.members), "teams": len(cfg.teams)})
        return
    cfg = load_config(config)
    click.echo(f"Configuration is valid: {len(cfg.files)} file(s), {len(cfg.providers)} provider(s), "
               f"{len(cfg.members)} member(s), {len(cfg.teams)} team(s).")


@main.command()
@config_arg
@target_opt
@allow_opt
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 2 with changes, 1 on error.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="Also save the plan to FILE (JSON, no secrets) for `reconciler apply FILE`.")
@click.option("--drift-base", metavar="REF", default=None,
              help="Git revision the live systems were last converged to (e.g. origin/main). When the config is "
                   "the same there, the plan's changes are drift, and the output says so.")
@click.option("--details-url", metavar="URL", default=None,
              help="Where the full plan can be found; the Markdown names it when a comment must be cut.")
@no_color_opt
@log_opts
@handle_errors
def plan(config: Path, targets: tuple[str, ...], allow_removals: int | None, fmt: str, detailed_exitcode: bool,
         out: Path | None, drift_base: str | None, details_url: str | None, no_color: bool) -> None:
    """Read the live systems and show what apply would change. Changes nothing (but --out FILE)."""
    from reconciler.progress import Progress, progress_mode
    from reconciler.saved import is_drift, write_saved_plan
    from reconciler.session import Session

    cfg = load_config(config)
    progress = Progress(progress_mode(quiet=fmt == "json"))
    with Session(cfg, recorder=_recorder([progress.record])) as session:
        with progress.reading():
            p = session.plan(targets=list(targets), allow_removals=allow_removals)
        if out is not None:
            write_saved_plan(out, p, cfg.root, session)
    drift = drift_base is not None and is_drift(drift_base, cfg)
    echo_chunks(_render(p, fmt, _colour(no_color), drift=drift, details_url=details_url))
    if out is not None and fmt == "text":
        click.echo(f"Saved the plan to {out}; apply exactly it with: reconciler apply {out}")
    if detailed_exitcode and p.has_changes:
        sys.exit(2)


def _render(p: Plan, fmt: str, colour: bool, *, drift: bool = False,
            details_url: str | None = None) -> Iterator[str]:
    """The plan in ``fmt``, in pieces (text: a change at a time; see ``echo_chunks``)."""
    from reconciler.render import RENDERERS
    from reconciler.render.markdown import DEFAULT_HINT, PlanMarkdown
    from reconciler.render.text import PlanText, terminal_width

    if fmt == "markdown":
        hint = f"the full plan is at {details_url}" if details_url else DEFAULT_HINT
        yield PlanMarkdown(drift=drift, full_plan_hint=hint).render(p)
    elif fmt == "text":
        if drift and p.has_changes:
            yield ("Drift: the configuration is the same as at --drift-base, so these changes were made on the "
                   "live systems.\n\n")
        yield from PlanText(colour=colour, width=terminal_width()).chunks(p)
    else:
        yield str(RENDERERS[fmt](colour=colour).render(p))


@main.command()
@config_arg
@target_opt
@allow_opt
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--audit-log", type=click.Path(path_type=Path), default=None,
              help=f"Append-only JSON-lines log of every call [default: $RECONCILER_AUDIT_LOG or {DEFAULT_AUDIT_LOG}]")
@click.option("--config", "config_dir", type=click.Path(path_type=Path), default=None,
              help="With a saved plan: the config it was made from [default: the path the plan records, "
                   "relative to the current directory].")
@no_color_opt
@click.option("--json", "as_json", is_flag=True,
              help="Print the plan and each change's outcome as one JSON document on stdout, instead of text. "
                   "Needs --auto-approve (or a saved plan): there is no prompt.")
@log_opts
@handle_errors
def apply(config: Path, targets: tuple[str, ...], allow_removals: int | None, auto_approve: bool,
          audit_log: Path | None, config_dir: Path | None, no_color: bool, as_json: bool) -> None:
    """Plan, ask for confirmation, then converge the live systems.

    CONFIG may be a saved plan (from `plan --out FILE`): then exactly that plan is applied, with no
    confirmation, after checking that neither the config nor any object it touches changed since.
    """
    from reconciler.apply import ApplyResult, apply_interruptibly
    from reconciler.audit import AuditLog, default_path, plan_digest
    from reconciler.progress import Progress, observers, outcome_lines, progress_mode
    from reconciler.render.text import PlanText, terminal_width
    from reconciler.saved import is_saved_plan
    from reconciler.session import Session

    colour = _colour(no_color)
    if is_saved_plan(config):
        if targets or allow_removals is not None:
            raise click.UsageError("--target and --allow-removals are for plan; a saved plan is applied whole")
        _apply_saved(config, config_dir, audit_log, colour, as_json)
        return
    if as_json and not auto_approve:
        raise click.UsageError("--json needs --auto-approve: a JSON apply asks nothing")
    if config_dir is not None:
        raise click.UsageError(f"--config is for applying a saved plan, but {config} is not one")
    cfg = load_config(config)
    progress = Progress(progress_mode(quiet=as_json))
    sink: list[Callable[[CallRecord], None]] = [progress.record]
    with Session(cfg, recorder=_recorder(sink)) as session:
        with progress.reading():
            p = session.plan(targets=list(targets), allow_removals=allow_removals)
        if not as_json:
            echo_chunks(PlanText(colour=colour, width=terminal_width()).chunks(p))
        if not p.has_changes:
            if as_json:
                finish(ApplyResult(), p, as_json)
            return
        if not auto_approve:
            if not sys.stdin.isatty():
                raise ReconcilerError("refusing to apply without confirmation: stdin is not a terminal; "
                                      "pass --auto-approve")
            click.confirm("Apply these changes?", abort=True)
        with AuditLog(audit_log or default_path(), commit=p.commit, plan_digest=plan_digest(p),
                      actions={c.address: c.action.value for c in p.changes}) as audit:
            sink.append(audit.record)
            audit.write({"event": "apply-start", "changes": len(p.changes), "summary": p.summary()})
            with progress.applying(len(p.changes)):
                result = apply_interruptibly(session, p, observers(outcome_lines(colour, as_json), audit.outcome,
                                                                   progress.outcome), audit, say)
            audit.write({"event": "apply-end", "summary": result.summary(), "failed": len(result.failures)})
    finish(result, p, as_json)


def _apply_saved(path: Path, config_dir: Path | None, audit_log: Path | None, colour: bool,
                 as_json: bool = False) -> None:
    from reconciler.apply import ApplyResult, apply_interruptibly
    from reconciler.audit import AuditLog, default_path, plan_digest
    from reconciler.progress import Progress, observers, outcome_lines, progress_mode
    from reconciler.render.text import PlanText, terminal_width
    from reconciler.saved import check_config, check_preconditions, load_config_for, load_saved_plan, verify
    from reconciler.session import Session

    saved = load_saved_plan(path)
    cfg = load_config_for(saved, config_dir)
    p = saved.plan
    if not as_json:
        echo_chunks(PlanText(colour=colour, width=terminal_width()).chunks(p))
    if not p.has_changes:
        check_config(saved, cfg)
        if as_json:
            finish(ApplyResult(), p, as_json)
        return
    progress = Progress(progress_mode(quiet=as_json))
    sink: list[Callable[[CallRecord], None]] = [progress.record]
    with Session(cfg, recorder=_recorder(sink)) as session, \
            AuditLog(audit_log or default_path(), commit=p.commit, plan_digest=plan_digest(p),
                     actions={c.address: c.action.value for c in p.changes}) as audit:
        sink.append(audit.record)
        try:
            check_config(saved, cfg)
            with progress.reading():
                checks = check_preconditions(session, saved)
                planned = verify(session, saved)
        except (StalePlanError, PlanError) as exc:
            audit.write({"event": "apply-refused", "plan": str(path), "reason": str(exc)})
            raise
        lines = [f"{ch.provider}: the {ch.touched} object(s) this plan touches are unchanged since it was made "
                 f"(checked by {'paged list' if ch.strategy == 'list' else 'GET per object'})." for ch in checks]
        lines.append(f"Planned again from the configuration: the {len(p.changes)} change(s) of {path} are the "
                     "ones it makes now.")
        for line in lines if not as_json else []:
            click.echo(line)
        audit.write({"event": "apply-start", "plan": str(path), "changes": len(p.changes), "summary": p.summary()})
        with progress.applying(len(planned.changes)):
            result = apply_interruptibly(session, planned, observers(outcome_lines(colour, as_json), audit.outcome,
                                                                     progress.outcome), audit, say)
        audit.write({"event": "apply-end", "summary": result.summary(), "failed": len(result.failures)})
    finish(result, p, as_json)


@main.command()
@config_arg
@json_opt
@log_opts
@handle_errors
def check(config: Path, as_json: bool) -> None:
    """Test every connection the config declares: SCIM providers and trackers.

    SCIM providers: reachability, TLS, authentication, discovery. Jira: the credentials, who they
    authenticate as, and the project permissions each integration needs. Redmine: the URL, the API key,
    and that it is an administrator's. One line per step; exit 1 when a step fails. Changes nothing.
    """
    from reconciler.session import Session

    cfg = load_config(config)
    failed = False
    with Session(cfg, recorder=_recorder()) as session:
        results = session.check()
    if as_json:
        echo_json({"ok": all(r.ok for r in results), "systems": [
            {"name": r.provider, "ok": r.ok, "steps": [{"step": step, "ok": ok, "detail": text}
                                                       for step, ok, text in r.steps]} for r in results]})
        if not all(r.ok for r in results):
            sys.exit(1)
        return
    width = max([16, *(len(r.provider) for r in results)])
    step_width = max([15, *(len(step) for r in results for step, _, _ in r.steps)])
    for res in results:
        for step, ok, text in res.steps:
            mark = "ok  " if ok else "FAIL"
            click.echo(redact(f"{res.provider:<{width}} {step:<{step_width}} {mark} {text}"))
        failed |= not res.ok
    if failed:
        sys.exit(1)


main.add_command(sandbox)


@main.command()
@no_color_opt
@handle_errors
def demo(no_color: bool) -> None:
    """Plan and apply the bundled example against an embedded SCIM server: no network needed."""
    from reconciler.demo import run_demo
    from reconciler.sandbox.scim import DEMO_TOKEN

    # The sandbox's own token is shown, so that the `export SCIM_TOKEN=...` line can be pasted as printed;
    # every other secret (a real SCIM_TOKEN in the environment, say) is still scrubbed.
    hole = "\x00sandbox-token\x00"

    def echo(s: str) -> None:
        click.echo(redact(s.replace(DEMO_TOKEN, hole)).replace(hole, DEMO_TOKEN), nl=False)

    run_demo(echo=echo, colour=_colour(no_color))


@main.command()
@click.argument("plan_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--details-url", metavar="URL", default=None,
              help="Where the full plan can be found; the Markdown names it when a comment must be cut.")
@no_color_opt
@handle_errors
def show(plan_file: Path, fmt: str, details_url: str | None, no_color: bool) -> None:
    """Render a saved plan (from `plan --out FILE`) as text, Markdown or JSON. Contacts nothing."""
    from reconciler.saved import load_saved_plan

    saved = load_saved_plan(plan_file)
    echo_chunks(_render(saved.plan, fmt, _colour(no_color), details_url=details_url))


@main.command("audit")
@click.option("--log", "log_path", type=click.Path(path_type=Path), default=None,
              help=f"The audit log [default: $RECONCILER_AUDIT_LOG or {DEFAULT_AUDIT_LOG}]")
@click.option("--address", default=None, metavar="ADDRESS",
              help='Only this resource, e.g. scim.platform.group["appsec"].')
@click.option("--member", default=None, metavar="EMAIL",
              help="Only changes to this member: the member's own, and teams they joined or left.")
@click.option("--since", default=None, metavar="WHEN", help="Only since then: 30m, 24h, 7d, 2w or an ISO date.")
@click.option("--calls", is_flag=True, help="Also list each HTTP call, not only each change.")
@click.option("--json", "as_json", is_flag=True, help="Print the matching log lines as they are (JSON lines).")
@handle_errors
def audit_cmd(log_path: Path | None, address: str | None, member: str | None, since: str | None, calls: bool,
              as_json: bool) -> None:
    """What changed, when, by whom and from which commit, from the log every apply appends to."""
    from reconciler.audit import default_path, format_event, parse_since, query

    events = query(log_path or default_path(), address=address, member=member,
                   since=parse_since(since) if since else None, calls=calls)
    for e in events:
        click.echo(redact(json.dumps(e, ensure_ascii=False) if as_json else format_event(e)))
    if not events and not as_json:
        click.echo("No matching changes in the audit log.", err=True)


@main.command("import")
@config_arg
@click.option("--provider", "provider_name", required=True, metavar="NAME",
              help="The SCIM provider (declared in CONFIG) to read members and teams from.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None, metavar="DIR",
              help="Where members.yaml and teams.yaml go [default: CONFIG itself].")
@click.option("--force", is_flag=True, help="Overwrite members.yaml / teams.yaml that already exist in DIR.")
@click.option("--adopt", is_flag=True,
              help="Also mark the imported objects as managed (write the ownership mark to externalId), so the "
                   "next plan is empty. Asks nothing; audit-logged.")
@click.option("--schema-url", default=None, metavar="URL",
              help="The JSON Schema named in the yaml-language-server comment of the files written.")
@click.option("--audit-log", type=click.Path(path_type=Path), default=None,
              help=f"Audit log for --adopt [default: $RECONCILER_AUDIT_LOG or {DEFAULT_AUDIT_LOG}]")
@log_opts
@handle_errors
def import_cmd(config: Path, provider_name: str, out: Path | None, force: bool, adopt: bool,
               schema_url: str | None, audit_log: Path | None) -> None:
    """Write members.yaml and teams.yaml from a live SCIM provider, to start a config from what exists.

    CONFIG declares the provider (a directory holding providers.yaml is enough).
    """
    from reconciler.apply import apply_plan
    from reconciler.audit import AuditLog, default_path, plan_digest
    from reconciler.importer import SCHEMA_URL, check_overwrite, import_provider, split_adoption, write_files
    from reconciler.plan.model import Plan
    from reconciler.progress import Progress, progress_mode
    from reconciler.providers.scim.system import plan_one as scim_plan_one
    from reconciler.session import Session, git_commit

    cfg = load_config(config)
    target = out or (config if config.is_dir() else config.parent)
    into_config = target.resolve() == (config if config.is_dir() else config.parent).resolve()
    # everything that can refuse the import is checked before a file is written (write_files also checks
    # that the config it would write loads)
    if adopt and not into_config:
        raise click.UsageError("--adopt needs the imported files in the config itself (leave out --out, or "
                               "copy the provider declaration into DIR and import again)")
    check_overwrite(target, force)
    progress = Progress(progress_mode())
    with Session(cfg, recorder=_recorder([progress.record])) as session, progress.reading():
        imported = import_provider(session, provider_name)
    for path in write_files(imported, target, force=force, schema_url=schema_url or SCHEMA_URL):
        click.echo(f"wrote {path}")
    click.echo(f"Imported {len(imported.members)} member(s) and {len(imported.teams)} team(s) from "
               f"{provider_name}.")
    for n in imported.notes:
        click.echo(redact(f"note: {n}"))
    if not into_config:
        click.echo(f"Copy the provider declaration into {target} (or the files into your config), then run "
                   "reconciler plan.")
        return
    new_cfg = load_config(target)
    sink: list[Callable[[CallRecord], None]] = []
    with Session(new_cfg, recorder=_recorder(sink)) as session:
        pp = scim_plan_one(session, new_cfg.provider(provider_name))
        marks, rest = split_adoption(pp.changes)
        if marks and adopt:
            p = Plan(changes=marks, config_digest=new_cfg.digest, commit=git_commit(new_cfg.root))
            with AuditLog(audit_log or default_path(), commit=p.commit, plan_digest=plan_digest(p),
                          actions={c.address: c.action.value for c in p.changes}) as log:
                sink.append(log.record)
                log.write({"event": "apply-start", "import": provider_name, "changes": len(marks),
                           "summary": f"adopt {len(marks)} object(s)"})
                result = apply_plan(session, p, observer=log.outcome)
                log.write({"event": "apply-end", "summary": result.summary(), "failed": len(result.failures)})
            if result.failures:
                raise ApplyError(result.failures)
            click.echo(f"Adopted {len(marks)} object(s): externalId now carries the ownership mark.")
        elif marks:
            click.echo(f"{len(marks)} object(s) are not yet marked as managed: the first apply writes the "
                       "ownership mark to their externalId (or run import again with --adopt --force).")
    if rest:
        click.echo(f"{len(rest)} change(s) remain that the config cannot express; the first plan shows them:")
        for c in rest:
            click.echo(redact(f"  {c.action.symbol} {c.address}: " + ", ".join(d.path for d in c.diff)))


if __name__ == "__main__":  # pragma: no cover
    main()
