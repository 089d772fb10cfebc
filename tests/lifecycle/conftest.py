"""A World on the shared real scim2-server, for the regression tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lifecycle.world import World
from tests.servers import SCIM_TOKEN, ScimServer


@pytest.fixture
def world(scim_server_session: ScimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """An empty provider (reset) and an empty config; SCIM_TOKEN exported for it."""
    monkeypatch.setenv("SCIM_TOKEN", SCIM_TOKEN)
    w = World(scim_server_session, tmp_path / "config")
    yield w
    w.close()
