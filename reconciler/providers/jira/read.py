"""Making the reads of one Jira connection's plan, in waves, before it plans (see ``live``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from reconciler.errors import ProviderError
from reconciler.providers.jira.client import JiraClient, concurrently
from reconciler.providers.jira.live import LiveState, Read, Unread

_R = TypeVar("_R")

MAX_WAVES = 12

# what a read is called -> the client call that makes it
_CALLS: dict[str, Callable[..., Any]] = {
    "myself": JiraClient.myself, "users": JiraClient.users, "resolutions": JiraClient.resolutions,
    "server_info": JiraClient.server_info, "webhooks": JiraClient.webhooks, "project": JiraClient.project,
    "project_keys": JiraClient.project_keys, "property": JiraClient.get_property,
    "property_keys": JiraClient.property_keys, "permissions": JiraClient.permissions,
    "statuses": JiraClient.statuses, "role_ids": JiraClient.role_ids, "role_users": JiraClient.role_users,
    "create_fields": JiraClient.create_fields, "issue": JiraClient.issue,
    "labelled_issues": JiraClient.labelled_issues,
}


def read_into(client: JiraClient, live: LiveState, reads: Iterable[Read]) -> None:
    """Make ``reads`` at once (``client.LOOKUP_WORKERS`` at a time), each answer or error kept in ``live``."""
    def one(read: Read) -> tuple[Any, ProviderError | None]:
        what, args = read
        try:
            return _CALLS[what](client, *args), None
        except ProviderError as exc:
            return None, exc
    todo = sorted(set(reads) - live.answers.keys(), key=repr)
    for read, answer in zip(todo, concurrently(one, todo), strict=True):
        live.answers[read] = answer


def read_live(client: JiraClient, plan: Callable[[LiveState], _R]) -> LiveState:
    """Everything ``plan`` reads, read in waves (see the module's text); ``plan`` is run over the answers so
    far until it asks for nothing more. An error of the plan's own (a ``ProviderError`` of an answer it
    uses) is left for the plan that follows to raise."""
    live = LiveState(cloud=client.cloud)
    for _ in range(MAX_WAVES):
        try:
            plan(live)
        except Unread as more:
            read_into(client, live, more.reads)
            continue
        except ProviderError:
            pass
        return live
    raise ProviderError(f"planning Jira connection '{client.conn.name}' still asked for reads after "
                        f"{MAX_WAVES} waves of them")
