"""The ``jira`` fixture: a Jira sandbox of each flavour behind the contract-validating transport."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.jira_spec import JiraRig, rig_fixture


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraRig]:
    yield from rig_fixture(request.param, tmp_path, monkeypatch)
