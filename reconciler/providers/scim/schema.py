"""What a SCIM provider says it supports and stores: ServiceProviderConfig (``Capabilities``), and
``/Schemas`` with ``/ResourceTypes`` (``ProviderSchema``): which attributes exist, which may be written,
which are required.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Capabilities:
    """What discovery says the provider supports (defaults when it has no ServiceProviderConfig)."""

    patch: bool = True
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0
    etag: bool = False
    filter: bool = True
    max_results: int | None = None
    discovered: bool = False
    schemas: dict[str, set[str]] | None = None  # URN -> attribute names (read only when needed)

    def describe(self) -> str:
        bits = [f"patch={'yes' if self.patch else 'no'}",
                f"bulk={'yes (max ' + str(self.bulk_max_operations) + ' ops)' if self.bulk else 'no'}",
                f"etag={'yes' if self.etag else 'no'}", f"filter={'yes' if self.filter else 'no'}",
                f"maxResults={self.max_results or 'unset'}"]
        return ", ".join(bits) + ("" if self.discovered else " (no ServiceProviderConfig; assumed)")
