"""User maps and fallback users: one member's identities in other systems, and who stands in.

Public API for tracker providers: ``resolve_identity``, ``identities_for``,
``mapped_identities`` and ``Resolution``.
"""

from reconciler.usermaps.models import FallbackUser, UserMap
from reconciler.usermaps.resolve import (
    Resolution,
    identities_for,
    mapped_identities,
    matching_fallback,
    resolve_identity,
    system_type,
)

__all__ = ["FallbackUser", "Resolution", "UserMap", "identities_for", "mapped_identities", "matching_fallback",
           "resolve_identity", "system_type"]
