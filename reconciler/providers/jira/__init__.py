"""Jira Cloud and Jira Data Center: check integrations against the live Jira, plan and apply the Jira side.

At plan time every name an integration uses (project, issue type, priority, status, resolution,
role, fallback users, mapped accounts) is looked up, and the integration user's permissions on the
project are compared with what the integration needs; every mismatch is one PlanError line that
lists the valid values. Apply converges project role actors, the integration's resolved settings
(a project property), admin webhooks (matched by name) and the activation test issue. An integration
removed from the config is found by reconciler's own marks (its property, its webhook's name) and its
property, webhook and recorded role grants are planned for deletion.

Cloud speaks REST v3 with account IDs and basic auth (email + API token); Data Center speaks REST v2
with usernames and a personal access token. Both are read with paged calls where Jira pages.

- ``client``: the wire protocol and ``connect``;
- ``common``: names, addresses, the plan's parts, value comparisons;
- ``live``: what a plan read (``LiveState``), and ``read``: reading it, in waves;
- ``plan`` (with ``base``, ``roles``, ``removed``): desired + ``LiveState`` -> changes, with no request;
- ``apply``: one connection's changes in dependency order;
- ``system``: all of it as one live system of the contract (``reconciler.contract``).
"""

from reconciler.providers.jira.apply import ConnectionApplier
from reconciler.providers.jira.client import CLOUD_PAGE, USER_CHUNK, JiraClient, connect
from reconciler.providers.jira.common import (
    ADMIN_GLOBAL,
    ADMIN_PROJECT,
    DELETE_PERMISSION,
    INTEGRATION_PERMISSIONS,
    JIRA_TYPES,
    PREFIX,
    PROPERTY_PREFIX,
    PROPERTY_SCHEMA,
    TEST_LABEL_PREFIX,
    JiraPlan,
    address,
    diff_values,
    integrations_on,
    jira_connections,
    webhook_body,
)
from reconciler.providers.jira.plan import ConnectionPlanner
from reconciler.providers.jira.system import JiraPlanner, planner

__all__ = ["ADMIN_GLOBAL", "ADMIN_PROJECT", "CLOUD_PAGE", "DELETE_PERMISSION", "INTEGRATION_PERMISSIONS",
           "JIRA_TYPES", "PREFIX", "PROPERTY_PREFIX", "PROPERTY_SCHEMA", "TEST_LABEL_PREFIX", "USER_CHUNK",
           "ConnectionApplier", "ConnectionPlanner", "JiraClient", "JiraPlan", "JiraPlanner", "address", "connect",
           "diff_values", "integrations_on", "jira_connections", "planner", "webhook_body"]
