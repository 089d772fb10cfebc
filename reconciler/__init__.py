"""reconciler: members, teams, tracker integrations and user maps as code, planned and applied."""

__version__ = "0.1.0"
