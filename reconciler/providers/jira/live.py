"""What one Jira connection's plan reads: made before it plans (``read.read_live``), answered from memory while
it plans (``LiveState``). The planner (``plan.ConnectionPlanner``) is given a ``LiveState``, never a client: it
makes no request.

Jira's reads depend on each other's answers (the create screen of the issue type a project has, the test
issue a marker property records, the actors of the roles that records grant), so they are read in waves.
The planner runs over what has been read; a read it finds missing stops the step that needs it (``Unread``)
while the steps that do not (the other integrations, the removal scan) go on, and the reads a run missed are
then made at once, with those it foresaw a later step needing (``PlannerBase.hint``). The planner is a pure
function of the answers, so the run that misses nothing is the plan, and each wave reads only what the plan
asks for. The waves are as many as those dependencies are deep (three for ``examples/full``: what needs
nothing, then the create screens with the roles' actors, then the test issues); ``read.MAX_WAVES`` bounds
them whatever a server answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ProviderError

Read = tuple[str, tuple[Any, ...]]  # (what, its arguments): ("project", ("SEC",))

class Unread(Exception):  # noqa: N818 - not an error: the planner asks for reads
    """The planner needs answers not read yet (``reads``)."""

    def __init__(self, reads: set[Read]) -> None:
        super().__init__(f"{len(reads)} Jira read(s) not made yet")
        self.reads = reads


@dataclass
class LiveState:
    """Every answer one connection's plan read: its value, or the error Jira gave (raised where the planner
    uses the answer, as a client's call would)."""

    cloud: bool
    answers: dict[Read, tuple[Any, ProviderError | None]] = field(default_factory=dict)

    def need(self, reads: Iterable[Read]) -> None:
        """Raise ``Unread`` with those of ``reads`` not made yet (a step asks for its independent reads at
        once, so that they are made in one wave)."""
        missing = {r for r in reads if r not in self.answers}
        if missing:
            raise Unread(missing)

    def _answer(self, what: str, *args: Any) -> Any:
        key = (what, args)
        found = self.answers.get(key)
        if found is None:
            raise Unread({key})
        value, error = found
        if error is not None:
            raise error
        return value

    def identity_of(self, user: dict[str, Any]) -> str:
        return str(user.get("accountId") if self.cloud else user.get("name"))

    def myself(self) -> dict[str, Any]:
        return dict(self._answer("myself"))

    def users(self, idents: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        return dict(self._answer("users", idents)) if idents else {}

    def resolutions(self) -> list[dict[str, Any]]:
        return list(self._answer("resolutions"))

    def server_info(self) -> dict[str, Any]:
        return dict(self._answer("server_info"))

    def webhooks(self) -> list[dict[str, Any]] | None:
        """The admin webhooks; None when Jira would not list them (``webhook_error`` says why): that fails
        no plan by itself."""
        try:
            return list(self._answer("webhooks"))
        except ProviderError:
            return None

    def webhook_error(self) -> ProviderError | None:
        return self.answers.get(("webhooks", ()), (None, None))[1]

    def project(self, key: str) -> dict[str, Any] | None:
        found = self._answer("project", key)
        return dict(found) if found is not None else None

    def project_keys(self) -> list[str]:
        return list(self._answer("project_keys"))

    def property(self, project: str, prop: str) -> Any:
        return self._answer("property", project, prop)

    def property_keys(self, project: str) -> list[str] | None:
        found = self._answer("property_keys", project)
        return list(found) if found is not None else None

    def permissions(self, project: str, keys: tuple[str, ...]) -> dict[str, bool]:
        return dict(self._answer("permissions", project, keys))

    def statuses(self, project: str) -> list[dict[str, Any]]:
        return list(self._answer("statuses", project))

    def role_ids(self, project: str) -> dict[str, int]:
        return dict(self._answer("role_ids", project))

    def role_users(self, project: str, rid: int) -> list[str]:
        return list(self._answer("role_users", project, rid))

    def create_fields(self, project: str, type_id: str) -> list[dict[str, Any]]:
        return list(self._answer("create_fields", project, type_id))

    def issue(self, key: str) -> dict[str, Any] | None:
        found = self._answer("issue", key)
        return dict(found) if found is not None else None

    def labelled_issues(self, project: str, label: str) -> list[dict[str, Any]]:
        return list(self._answer("labelled_issues", project, label))
