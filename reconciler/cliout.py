"""What the CLI's commands share to report: one JSON document, and the end of an apply (its summary, exit 1
on a failure, 130 when interrupted). Recorders and observers are fanned out by ``progress``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click

from reconciler.errors import ApplyError
from reconciler.secrets import redact

if TYPE_CHECKING:
    from reconciler.apply import ApplyResult
    from reconciler.plan.model import Plan

# the version of the result documents validate, check and apply print with --json
JSON_FORMAT_VERSION = "1.0"


def echo_json(doc: dict[str, Any]) -> None:
    click.echo(redact(json.dumps({"format_version": JSON_FORMAT_VERSION, **doc}, ensure_ascii=False, indent=2)))


def echo_chunks(chunks: Iterable[str], limit: int = 1 << 16) -> None:
    """Text made a piece at a time (``PlanText.chunks``), redacted a piece at a time and written in
    batches of about ``limit`` characters: a plan is never held whole as text. A secret is never split
    across two pieces (each is one change's lines, and no value spans changes)."""
    batch: list[str] = []
    size = 0
    for chunk in chunks:
        batch.append(redact(chunk))
        size += len(chunk)
        if size >= limit:
            click.echo("".join(batch), nl=False)
            batch, size = [], 0
    if batch:
        click.echo("".join(batch), nl=False)


def finish(result: ApplyResult, p: Plan | None = None, as_json: bool = False) -> None:
    # here, not at the top: validate prints JSON too, and starts without the engine (see cli.py)
    from reconciler.apply import interrupted
    from reconciler.execute import NOT_STARTED
    from reconciler.render.json import plan_document

    if as_json and p is not None:
        order = {c.address: i for i, c in enumerate(p.changes)}
        outcomes = sorted(result.outcomes, key=lambda o: order.get(o.change.address, len(order)))
        echo_json({"ok": not result.failures, "plan": plan_document(p), "summary": result.summary(),
                    "outcomes": [{"address": o.change.address, "action": o.change.action.value, "ok": o.ok,
                                  "error": o.error, "duration_ms": round(o.duration_ms, 2)} for o in outcomes]})
    else:
        click.echo(result.summary())
    if interrupted(result):
        say(f"interrupted: {sum(o.error == NOT_STARTED for o in result.outcomes)} change(s) not started; "
             "apply again to finish")
        sys.exit(130)
    if result.failures:
        raise ApplyError(result.failures)


def say(text: str) -> None:
    click.echo(text, err=True)
