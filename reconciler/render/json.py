"""The machine rendering: the plan as data, described by schemas/plan.schema.json (reconciler.plan.document)."""

from __future__ import annotations

import json
from typing import Any

from reconciler.plan.document import FORMAT_VERSION
from reconciler.plan.model import SUMMARY_ORDER, Plan


def plan_document(plan: Plan) -> dict[str, Any]:
    counts = plan.counts()
    return {
        "format_version": FORMAT_VERSION,
        "config_digest": plan.config_digest,
        "commit": plan.commit,
        "summary": {a.value: counts[a] for a in SUMMARY_ORDER},
        "has_changes": plan.has_changes,
        "changes": [c.to_dict() for c in plan.changes],
        "notes": list(plan.notes),
        "protected": list(plan.protected),
    }


class PlanJson:
    def __init__(self, colour: bool = False) -> None:
        pass

    def render(self, plan: Plan) -> str:
        return json.dumps(plan_document(plan), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


__all__ = ["FORMAT_VERSION", "PlanJson", "plan_document"]
