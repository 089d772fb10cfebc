"""What the command line shows while it works: progress of reads and applies, and the lines of -v and apply.

A read (``plan``, and the plan ``apply`` makes) or an apply that takes over a second shows its progress on
stderr: on a terminal a live display (rich) of what is being read (provider or connection, pages so far)
or a bar of changes done of the total, removed when it ends; when stderr is not a terminal, a plain line
every few seconds and one at the end; nothing with ``--json`` or ``--format json``. ``RECONCILER_PROGRESS``
(``auto``, ``tty``, ``plain`` or ``off``) overrides the choice ``auto`` makes from stderr.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from reconciler.execute import Outcome
from reconciler.providers._http import CallRecord
from reconciler.secrets import redact

MODES = ("auto", "tty", "plain", "off")
DELAY = 1.0  # seconds a read or an apply runs before its progress is shown
PLAIN_EVERY = 5.0  # seconds between two plain progress lines


def progress_mode(quiet: bool = False) -> str:
    """``tty``, ``plain`` or ``off``: quiet (JSON output) is off; else RECONCILER_PROGRESS, else stderr's kind."""
    if quiet:
        return "off"
    mode = os.environ.get("RECONCILER_PROGRESS", "auto").strip().lower()
    if mode not in MODES or mode == "auto":
        tty = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        return "tty" if tty else "plain"
    return mode


class Progress:
    """Progress of one command: ``record`` is a Session recorder, ``outcome`` an apply observer; the
    ``reading()`` and ``applying(total)`` phases say what they count. Thread-safe (apply runs changes
    on several threads)."""

    def __init__(self, mode: str, stream: IO[str] | None = None) -> None:
        self.mode = mode
        self.stream = stream
        self._lock = threading.Lock()
        self._phase: str | None = None
        self._pages: dict[str, int] = {}  # provider or connection -> GETs so far
        self._last: dict[str, str] = {}  # provider or connection -> the path of its last GET
        self._done = self._failed = self._total = 0
        self._t0 = 0.0
        self._shown = False
        self._timer: threading.Timer | None = None
        self._live: Any = None  # rich.progress.Progress while the live display is on
        self._tasks: dict[str, Any] = {}

    # --- phases -----------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._phase_of("read"):
            yield

    @contextmanager
    def applying(self, total: int) -> Iterator[None]:
        self._done = self._failed = 0
        self._total = total
        with self._phase_of("apply"):
            yield

    @contextmanager
    def _phase_of(self, phase: str) -> Iterator[None]:
        if self.mode == "off":
            yield
            return
        with self._lock:
            self._phase, self._t0, self._shown = phase, time.monotonic(), False
            self._pages, self._last, self._tasks = {}, {}, {}
            self._timer = threading.Timer(DELAY, self._show)
            self._timer.daemon = True
            self._timer.start()
        try:
            yield
        finally:
            self._end()

    # --- events -----------------------------------------------------------------

    def record(self, rec: CallRecord) -> None:
        if rec.method != "GET" or self.mode == "off":
            return
        with self._lock:
            if self._phase != "read":
                return
            self._pages[rec.provider] = self._pages.get(rec.provider, 0) + 1
            self._last[rec.provider] = rec.path
            if self._live is not None:
                self._update_live(rec.provider)

    def outcome(self, o: Outcome) -> None:
        if self.mode == "off":
            return
        with self._lock:
            if self._phase != "apply":
                return
            self._done += 1
            self._failed += not o.ok
            if self._live is not None:
                self._live.update(self._tasks["apply"], completed=self._done, failing=self._failing())

    # --- display ----------------------------------------------------------------

    def _show(self) -> None:
        """The timer: the phase has run DELAY seconds; show its progress from now on."""
        with self._lock:
            if self._phase is None or threading.current_thread() is not self._timer:
                return  # the phase ended, or this is the timer of an earlier one
            self._shown = True
            if self.mode == "tty":
                self._start_live()
                return
            self._plain(self._state(ongoing=True))
            self._timer = threading.Timer(PLAIN_EVERY, self._show)
            self._timer.daemon = True
            self._timer.start()

    def _end(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._live is not None:
                self._live.stop()  # transient: the display goes, the output stays as it would be without it
                self._live = None
            elif self._shown and self.mode == "plain":
                self._plain(self._state(ongoing=False))
            self._phase = None

    def _state(self, *, ongoing: bool) -> str:
        took = f"{time.monotonic() - self._t0:.1f} s"
        if self._phase == "apply":
            failed = f", {self._failed} failed" if self._failed else ""
            return (f"{'applying' if ongoing else 'applied'}: {self._done} of {self._total} change(s) done"
                    f"{failed} ({took})")
        read = ", ".join(f"{p} ({n} page(s))" for p, n in sorted(self._pages.items())) or "nothing yet"
        return f"{'reading' if ongoing else 'read'}: {read} ({took})"

    def _plain(self, line: str) -> None:
        click.echo(redact(f"progress: {line}"), err=True, file=self.stream)

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Live

        stream = self.stream or sys.stderr
        console = Console(file=stream, force_terminal=True, highlight=False)
        if self._phase == "apply":
            columns: tuple[Any, ...] = (TextColumn("applying"), BarColumn(), MofNCompleteColumn(),
                                        TextColumn("changes{task.fields[failing]}"), TimeElapsedColumn())
        else:
            columns = (SpinnerColumn(), TextColumn("reading [bold]{task.description}[/]"),
                       TextColumn("{task.completed} page(s)"), TextColumn("[dim]{task.fields[path]}"))
        # what is printed while the display is on goes above it; stdout only when it is the same terminal
        self._live = Live(*columns, console=console, transient=True, refresh_per_second=8,
                          redirect_stdout=sys.stdout.isatty(), redirect_stderr=stream is sys.stderr)
        if self._phase == "apply":
            self._tasks["apply"] = self._live.add_task("apply", total=self._total, completed=self._done,
                                                       failing=self._failing())
        else:
            for provider in sorted(self._pages):
                self._update_live(provider)
        self._live.start()

    def _failing(self) -> str:
        return f", {self._failed} failed" if self._failed else ""

    def _update_live(self, provider: str) -> None:
        path = redact(self._last.get(provider, ""))
        if provider not in self._tasks:
            self._tasks[provider] = self._live.add_task(provider, total=None, path=path)
        self._live.update(self._tasks[provider], completed=self._pages.get(provider, 0), path=path)


# --- the lines -v and apply print ------------------------------------------------

def debug_line(rec: CallRecord) -> str:
    outcome = str(rec.status) if rec.status is not None else (rec.error or "no answer")
    retry = f", attempt {rec.attempt}" if rec.attempt > 1 else ""
    where = f" {rec.address}" if rec.address else ""
    return redact(f"debug: {rec.method} {rec.url or rec.path} -> {outcome} ({rec.duration_ms:.0f} ms{retry}) "
                  f"[{rec.provider}{where}]")


def fanout(sink: list[Callable[[CallRecord], None]]) -> Callable[[CallRecord], None]:
    """A recorder that passes each call to whatever is in ``sink`` at that moment."""
    def record(rec: CallRecord) -> None:
        for f in sink:
            f(rec)
    return record


def observers(*fns: Callable[[Outcome], None]) -> Callable[[Outcome], None]:
    def all_of(o: Outcome) -> None:
        for f in fns:
            f(o)
    return all_of


def outcome_lines(colour: bool, quiet: bool = False) -> Callable[[Outcome], None]:
    """An apply observer printing one line per change as it ends (nothing when quiet)."""
    def show(o: Outcome) -> None:
        if quiet:
            return
        status = "done" if o.ok else f"FAILED: {o.error}"
        if colour:
            status = click.style(status, fg="green" if o.ok else "red")
        click.echo(redact(f"{o.change.address}: {o.change.action.value} {status} ({o.duration_ms:.0f} ms)"))
    return show
