"""How the command line reports errors: one clear, redacted line per problem, exit 1, no traceback.

Kept apart from ``reconciler.cli`` so that sub-command modules (``reconciler.usermaps.cli``)
can use it without importing the command group that imports them.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from reconciler.errors import ConfigError, ReconcilerError
from reconciler.secrets import redact

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
        except OSError as exc:  # a path given on the command line that cannot be read or written: not a bug
            where = f"{exc.filename}: " if exc.filename else ""
            _err(f"error: {where}{exc.strerror or exc}")
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
