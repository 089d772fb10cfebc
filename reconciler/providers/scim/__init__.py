"""SCIM 2.0 providers: members and teams converged into /Users and /Groups.

- ``client``: the wire protocol (discovery, paged reads, lookups, writes) and ``bulk``: SCIM Bulk;
  ``wire``: a provider's HTTP auth and what its answers mean;
- ``schema``: what discovery says (ServiceProviderConfig, /Schemas, /ResourceTypes); ``fit``: the desired
  attributes fitted to what the provider stores;
- ``attributes``: live resources and config items as comparable attributes, and back into bodies;
- ``plan``: desired + live -> changes, pure;
- ``apply``: one provider's changes in dependency order;
- ``check``: the "Test connection" steps;
- ``system``: all of it as one live system of the contract (``reconciler.contract``).
"""

from reconciler.providers.scim.attributes import (
    address,
    attribute_diff,
    desired_group,
    desired_user,
    digest,
    live_group,
    live_user,
    precondition,
    user_body,
    user_ops,
)
from reconciler.providers.scim.bulk import Adopted, BulkResult, bulk_chunks
from reconciler.providers.scim.client import (
    ENTERPRISE,
    GROUP,
    PATCH_OP,
    USER,
    Capabilities,
    LiveState,
    ScimClient,
    client_for,
    connect,
)
from reconciler.providers.scim.plan import ProviderPlan, plan_provider
from reconciler.providers.scim.system import system

__all__ = ["ENTERPRISE", "GROUP", "PATCH_OP", "USER", "Adopted", "BulkResult", "Capabilities", "LiveState",
           "ProviderPlan", "ScimClient", "address", "attribute_diff", "bulk_chunks", "client_for", "connect",
           "desired_group", "desired_user", "digest", "live_group", "live_user", "plan_provider", "precondition",
           "system", "user_body", "user_ops"]
