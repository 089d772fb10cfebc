"""Redmine provider: teams -> groups, integrations -> project memberships, tracker and a record page.

Live state is read with paged list calls (``offset`` / ``limit`` / ``total_count``)
plus one GET per declared group (Redmine lists group members nowhere else) and
per integrated project. Planning is pure (``plan_connection``); apply runs a
plan's changes in dependency order. Members become Redmine logins through user
maps. An integration's resolved settings live on a wiki page of its project,
the Redmine counterpart of a Jira project property: it marks the integration
as activated, lets the plan show drift in its mappings, and records the roles
it granted, so that an integration removed from the config is found (one paged
search for reconciler's record pages across all projects) and exactly what it
recorded is removed.

- ``client``: the wire protocol (the API key, paged reads, lookups, writes) and ``connect``;
- ``live``: the connection's side of the config, the live state (``read_live``) and the record pages;
- ``plan``: desired + live -> changes, pure;
- ``apply``: one connection's changes in dependency order;
- ``system``: all of it as one live system of the contract (``reconciler.contract.LiveSystem``).
"""

from reconciler.providers.redmine.apply import TEST_SUBJECT, RedmineApplier
from reconciler.providers.redmine.client import (
    MAX_PAGE,
    PREFIX,
    RECORD_PREFIX,
    RECORD_TITLE,
    SYSTEM,
    RedmineApiKey,
    RedmineClient,
    connect,
)
from reconciler.providers.redmine.live import (
    LiveState,
    address,
    integrations_on,
    parse_record,
    read_live,
    record_text,
    record_title,
    redmine_connections,
    synced_teams,
)
from reconciler.providers.redmine.plan import ProviderPlan, desired_user, plan_connection
from reconciler.providers.redmine.system import RedminePlanner, planner

__all__ = ["MAX_PAGE", "PREFIX", "RECORD_PREFIX", "RECORD_TITLE", "SYSTEM", "TEST_SUBJECT", "LiveState",
           "ProviderPlan", "RedmineApiKey", "RedmineApplier", "RedmineClient", "RedminePlanner", "address",
           "connect", "desired_user", "integrations_on", "parse_record", "plan_connection", "planner",
           "read_live", "record_text", "record_title", "redmine_connections", "synced_teams"]
