"""docs/configuration.md documents every key of the core config models."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from reconciler.config.models import BasicAuth, BearerAuth, Member, OAuth2Auth, ScimProvider, Team, TeamSchema

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.mark.parametrize("model", [ScimProvider, BearerAuth, BasicAuth, OAuth2Auth, TeamSchema, Member, Team],
                         ids=lambda m: m.__name__)
def test_every_key_is_documented(model: type[BaseModel]) -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in model.model_fields if f"`{name}`" not in text]
    assert missing == [], f"docs/configuration.md does not mention {missing}"
