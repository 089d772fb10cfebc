"""Plan renderers: each reads a Plan and never recomputes it."""

from reconciler.render.json import PlanJson
from reconciler.render.markdown import PlanMarkdown
from reconciler.render.text import PlanText

RENDERERS = {"text": PlanText, "markdown": PlanMarkdown, "json": PlanJson}

__all__ = ["RENDERERS", "PlanJson", "PlanMarkdown", "PlanText"]
