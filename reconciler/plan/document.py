"""The plan as a document: what ``plan --format json`` prints and ``plan --out FILE`` saves.

``schemas/plan.schema.json`` is generated from these models (``python -m reconciler.schemas``), and a
saved plan is read back through them (``SavedPlanDocument.model_validate_json``): the same checks as a
plan made here, whatever Python's optimisation flags.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.plan.model import Change

# MAJOR.MINOR. Additive changes bump the minor version; anything a consumer could trip on bumps the major.
# 2.0: a change's typed ``payload`` and ``depends_on`` replace the untyped ``refs`` of 1.x.
FORMAT_VERSION = "2.0"
MAJOR = FORMAT_VERSION.split(".", 1)[0]
# The kind marker that tells a saved plan from a YAML config given to `apply`.
KIND = "reconciler-plan"

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Summary(BaseModel):
    """How many changes of each action the plan holds."""

    model_config = _STRICT
    create: int = Field(ge=0)
    update: int = Field(ge=0)
    replace: int = Field(ge=0)
    deactivate: int = Field(ge=0)
    delete: int = Field(ge=0)


class LiveSize(BaseModel):
    model_config = _STRICT
    users: int = Field(ge=0)
    groups: int = Field(ge=0)
    page_size: int = Field(ge=1)


class Request(BaseModel):
    model_config = _STRICT
    targets: list[str] = Field(default_factory=list)
    allow_removals: int | None = Field(default=None, ge=0)


class PlanDocument(BaseModel):
    model_config = _STRICT
    format_version: str = Field(pattern=rf"^{MAJOR}\.[0-9]+$",
                                description=f"The plan format, MAJOR.MINOR. This schema describes {MAJOR}.x.")
    config_digest: str = Field(pattern=r"^([0-9a-f]{64})?$", description=(
        "SHA-256 of the config files (their paths and bytes). apply of a saved plan refuses a config whose "
        "digest differs."))
    commit: str | None = Field(description=("The git commit of the repository holding the config (GITHUB_SHA in "
                                            "GitHub Actions), or null outside a repository."))
    summary: Summary
    has_changes: bool
    changes: list[Change] = Field(description=(
        "Every change, in the order the plan lists them (by provider, teams before members, then key)."))
    notes: list[str] = Field(description=("What the plan wants a reader to know that is not a change (unmanaged "
                                          "attributes, skipped objects)."))
    protected: list[str] = Field(description="Addresses of objects the plan would have removed but that are "
                                             "protected.")


class SavedPlanDocument(PlanDocument):
    """A saved plan: the plan document and what apply needs to check it."""

    kind: Literal["reconciler-plan"] | None = Field(
        default=None, description="Saved plans only: marks the file as a plan for `reconciler apply FILE`.")
    config_path: str | None = Field(default=None, description=(
        "Saved plans only: the config the plan was made from, relative to the directory plan ran in (absolute "
        "when outside it). apply reads it relative to its own working directory unless --config is given."))
    created_at: str | None = Field(default=None, description="Saved plans only: when the plan was made (UTC, "
                                                             "ISO 8601).")
    reconciler_version: str | None = Field(default=None, description=("Saved plans only: the reconciler version "
                                                                      "that made the plan."))
    live: dict[str, LiveSize] = Field(default_factory=dict, description=(
        "Saved plans only: per provider, how many users and groups it held and its page size, so apply can "
        "re-read the touched objects the cheaper way."))
    request: Request | None = Field(default=None, description=(
        "Saved plans only: how the plan was asked for, so apply plans again the same way and applies only "
        "changes that plan makes."))


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of a plan document and a saved plan, generated from the models."""
    schema = SavedPlanDocument.model_json_schema(mode="validation")
    schema.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://reconciler.dev/schemas/plan.schema.json",
        **schema,
        "title": "reconciler plan",
        "description": (
            "The output of `reconciler plan --format json` and the saved plan written by `reconciler plan --out "
            "FILE`. format_version is MAJOR.MINOR: additive changes bump the minor version (a consumer of "
            f"{MAJOR}.x keeps working), anything else bumps the major version. A saved plan adds kind, "
            "config_path, created_at, reconciler_version, live and request. A plan never holds a secret."),
    }
