"""The one digest of live data every system records in a plan's preconditions (``Precondition.digest``):
SHA-256 of its canonical JSON (keys sorted), 32 hex digits. apply compares it with the object re-read."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]
