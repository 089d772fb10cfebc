"""Shared fixtures: a real scim2-server on 127.0.0.1, and configs written for it."""

from __future__ import annotations

import os
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.servers import SCIM_TOKEN, ScimServer, scim_server

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis keeps its example database and constants cache in ./.hypothesis, i.e. in the checkout
# (it writes the cache while collecting, so this must be set before the test modules are imported).
# HYPOTHESIS_STORAGE_DIRECTORY, when set, still wins.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      str(Path(tempfile.gettempdir()) / f"reconciler-hypothesis-{os.getuid()}"))

# What may appear at the top of the checkout while the tests run: the venv and the tools' caches.
# Anything else (.reconciler/audit.jsonl from an apply without --audit-log, a plan.json written
# to the current directory) is a test writing outside its tmp_path.
CHECKOUT_ALLOWED = {".venv", ".canaille-venv", ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__"}


def checkout_entries() -> set[str]:
    return {p.name for p in ROOT.iterdir()} - CHECKOUT_ALLOWED


@pytest.fixture(autouse=True)
def no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan text wraps to $COLUMNS when it is set; the tests expect one-line values unless they set it."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(autouse=True)
def no_progress_display(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read or an apply over a second prints progress lines to stderr (reconciler/progress.py); a test
    slowed by a busy machine would see them in its output. tests/integration/test_progress.py sets its own."""
    monkeypatch.setenv("RECONCILER_PROGRESS", "off")


@pytest.fixture(autouse=True)
def leaves_nothing_in_the_checkout() -> Iterator[None]:
    before = checkout_entries()
    yield
    new = sorted(checkout_entries() - before)
    assert not new, (f"this test left {new} in the checkout ({ROOT}): write to tmp_path "
                     "(apply: --audit-log tmp_path / 'audit.jsonl', or monkeypatch.chdir(tmp_path))")


@pytest.fixture(scope="session")
def scim_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    with scim_server(tmp_path_factory.mktemp("scim")) as server:
        yield server


@pytest.fixture
def scim(scim_server_session: ScimServer, monkeypatch: pytest.MonkeyPatch) -> ScimServer:
    """The shared real scim2-server, emptied before the test; SCIM_TOKEN is exported for configs."""
    scim_server_session.reset()
    monkeypatch.setenv("SCIM_TOKEN", SCIM_TOKEN)
    return scim_server_session


@pytest.fixture
def backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between retries, recorded instead of slept: every HTTP client made during the test
    (also inside a CLI command, which passes no sleep of its own) gets this clock's sleep by default.
    The retries and their computed delays are unchanged; only the real waiting is gone."""
    from reconciler.providers import _http  # here: importing it first, at collection, is an import cycle

    sleeps: list[float] = []
    defaults = _http.Http.__init__.__kwdefaults__
    assert defaults is not None and defaults.get("sleep") is time.sleep, "Http(sleep=...) is the injection point"
    monkeypatch.setitem(defaults, "sleep", sleeps.append)
    return sleeps


def dump_yaml(data: Any) -> str:
    import io
    y = YAML()
    y.default_flow_style = False
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(base_url, members=[...], teams=[...], **provider_options) -> config dir.

    Members may be emails or dicts; teams dicts. Each kind goes to its own file, as users split them.
    """

    def write(base_url: str, members: list[Any] | None = None, teams: list[dict[str, Any]] | None = None,
              name: str = "platform", folder: str = "config", **provider: Any) -> Path:
        d = tmp_path / folder
        d.mkdir(exist_ok=True)
        p = {"name": name, "type": "scim", "base_url": base_url,
             "auth": {"type": "bearer", "token": "${env:SCIM_TOKEN}"}, **provider}
        (d / "providers.yaml").write_text(dump_yaml({"providers": [p]}))
        ms = [m if isinstance(m, dict) else {"email": m} for m in (members or [])]
        (d / "members.yaml").write_text(dump_yaml({"members": ms}) if ms else "# no members\n")
        (d / "teams.yaml").write_text(dump_yaml({"teams": teams}) if teams else "# no teams\n")
        return d

    return write


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path
