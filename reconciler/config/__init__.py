"""Config: YAML files with positions -> validated desired-state models."""

from reconciler.config.loader import load_config
from reconciler.config.models import Config, ConfigFile, Member, ScimProvider, Team

__all__ = ["Config", "ConfigFile", "Member", "ScimProvider", "Team", "load_config"]
