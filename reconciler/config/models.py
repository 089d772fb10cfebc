"""Desired-state models: what a config file may declare.

Models hold no I/O. Field docstrings become the descriptions in the published
JSON Schema (``schemas/config.schema.json``), which editors use to autocomplete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from reconciler.config.base import Item, Model, Name, check_email, check_http_url, lower
from reconciler.integrations.models import Connection, Integration
from reconciler.secrets import SecretRef
from reconciler.usermaps.models import FallbackUser, UserMap

# --- credentials -----------------------------------------------------------

class BearerAuth(Model):
    """A static bearer token (RFC 6750)."""

    type: Literal["bearer"]
    token: SecretRef
    """The token, as ${env:NAME} or ${file:PATH}."""


class BasicAuth(Model):
    """HTTP basic auth with a user ID and an API token (Okta-style SCIM apps)."""

    type: Literal["basic"]
    username: str
    """The user ID (not a secret)."""
    token: SecretRef
    """The API token or password, as ${env:NAME} or ${file:PATH}."""


class OAuth2Auth(Model):
    """OAuth 2.0 client-credentials grant; the token is cached and refreshed before it expires."""

    type: Literal["oauth2"]
    token_url: str
    """The token endpoint (https, or http on loopback)."""
    client_id: str
    """The OAuth client ID (not a secret)."""
    client_secret: SecretRef
    """The client secret, as ${env:NAME} or ${file:PATH}."""
    audience: str | None = None
    """Sent as the 'audience' parameter where the authorization server wants one (Entra ID, Auth0)."""
    scope: str | None = None
    """Space-separated scopes to request, where the authorization server wants them."""
    client_auth: Literal["client_secret_basic", "client_secret_post", "auto"] = "client_secret_basic"
    """How the client ID and secret reach the token endpoint: HTTP Basic (client_secret_basic, the
    RFC 6749 default every server accepts), in the form body (client_secret_post), or auto: as the
    authorization server's metadata advertises (token_endpoint_auth_methods_supported; Basic preferred;
    Basic where no metadata can be read)."""
    metadata_url: str | None = None
    """With client_auth auto: the authorization server's metadata document, where it is not at the token
    endpoint's origin under /.well-known/oauth-authorization-server or /.well-known/openid-configuration
    (an issuer with a path, e.g. https://id.example.com/realms/acme/.well-known/openid-configuration)."""

    @field_validator("token_url", "metadata_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_http_url(v)

    @model_validator(mode="after")
    def _metadata_for_auto(self) -> OAuth2Auth:
        if self.metadata_url is not None and self.client_auth != "auto":
            raise ValueError(f"metadata_url is read only with client_auth: auto (client_auth is {self.client_auth})")
        return self


Auth = Annotated[BearerAuth | BasicAuth | OAuth2Auth, Field(discriminator="type")]


# --- providers -------------------------------------------------------------

class TeamSchema(Model):
    """Where a provider keeps team attributes that SCIM's core Group schema lacks.

    Managed only when the provider's /Schemas advertises this schema and attributes;
    otherwise the plan says plainly that they are not managed there.
    """

    urn: str
    """The SCIM extension schema URN, e.g. urn:acme:params:scim:schemas:extension:platform:2.0:Group."""
    description: str | None = None
    """Attribute holding the team description."""
    roles: str | None = None
    """Attribute holding the team's roles (multi-valued)."""
    collections: str | None = None
    """Attribute holding the team's collections (multi-valued)."""


class ScimProvider(Item):
    """A SCIM 2.0 service provider that members and teams are converged into."""

    name: Name
    """Short name used in addresses: scim.<name>.user["..."]."""
    type: Literal["scim"]
    base_url: str
    """The SCIM base URL, e.g. https://platform.example.com/scim/v2 (http only on loopback)."""
    auth: Auth
    """How reconciler authenticates: bearer token, basic (user ID + API token) or OAuth 2.0 client credentials."""
    authoritative: bool = False
    """Remove users and groups the config does not declare, even those reconciler never created."""
    removal: Literal["deactivate", "delete"] = "deactivate"
    """What happens to a member removed from the config: deactivate (active: false) or hard delete."""
    max_removals: int = Field(default=500, ge=0)
    """Refuse a plan that would remove (deactivate or delete) more objects than this."""
    max_removal_percent: float = Field(default=20.0, ge=0, le=100)
    """Refuse a plan that would remove more than this share of the managed objects (checked above 5 removals)."""
    protect: list[str] = Field(default_factory=list)
    """userNames and group names that are never deactivated or deleted."""
    ownership_prefix: str = "reconciler:"
    """Prefix of externalId that marks an object as created or adopted by reconciler."""
    ownership_attribute: str = "externalId"
    """The user attribute that holds the ownership mark (the prefix, then the member's external_id or email).
    externalId is the attribute RFC 7643 makes for it; where a provider cannot store it (read-only, as on
    Canaille), name another attribute it stores and reconciler does not otherwise manage, by name or full
    URN path (e.g. urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber)."""
    concurrency: int = Field(default=8, ge=1, le=64)
    """How many requests may be in flight at once: writes, and the list pages of a read."""
    page_size: int | None = Field(default=None, ge=1)
    """Page size for list calls; default: the provider's advertised maximum (else 100)."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds before one HTTP request times out."""
    ca_bundle: str | None = None
    """A PEM file of CA certificates to trust instead of the system's."""
    bulk: Literal["auto", "never"] = "auto"
    """Use SCIM Bulk for creates when the provider offers it."""
    team_schema: TeamSchema | None = None
    """Extension schema for team description and permissions."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_http_url(v)


Provider = Annotated[ScimProvider, Field(discriminator="type")]


# --- members and teams -----------------------------------------------------

class Member(Item):
    """One person on the platform (a SCIM User)."""

    email: str
    """The unique identifier (SCIM userName) and primary work email."""
    given_name: str | None = None
    """SCIM name.givenName."""
    family_name: str | None = None
    """SCIM name.familyName."""
    display_name: str | None = None
    """SCIM displayName: the name shown in the platform's UI."""
    active: bool = True
    """false deactivates the account (it is kept)."""
    external_id: str | None = None
    """Your identifier for this person (HR id); stored after the provider's ownership prefix."""
    roles: list[str] | None = None
    """SCIM roles (values); the list replaces the provider's. Unset leaves the provider's roles alone."""
    title: str | None = None
    """SCIM title: the job title."""
    department: str | None = None
    """Enterprise extension: department."""
    employee_number: str | None = None
    """Enterprise extension: employeeNumber."""
    cost_center: str | None = None
    """Enterprise extension: costCenter."""
    organization: str | None = None
    """Enterprise extension: organization."""
    division: str | None = None
    """Enterprise extension: division."""
    manager: str | None = None
    """Enterprise extension: the manager, by member email."""
    attributes: dict[str, str | bool | int] | None = None
    """Other single-valued SCIM attributes by name (nickName, userType, locale ...) or full URN path."""
    providers: list[Name] | None = None
    """Only these providers get this member (default: every SCIM provider)."""
    protect: bool = False
    """Refuse any plan that deactivates or deletes this member."""

    @field_validator("email", "manager")
    @classmethod
    def _valid_email(cls, v: str | None) -> str | None:
        return None if v is None else check_email(v)

    @property
    def key(self) -> str:
        return lower(self.email)


class Permissions(Model):
    """What a team grants its members on the platform."""

    roles: list[str] = Field(default_factory=list)
    """Platform roles every member of the team holds."""
    collections: list[str] = Field(default_factory=list)
    """Collections (projects, asset groups ...) the team may access."""


class Team(Item):
    """A named group of members (a SCIM Group)."""

    name: str = Field(min_length=1)
    """The group's displayName."""
    description: str | None = None
    """What the team is for; managed where the provider has an attribute for it (see team_schema)."""
    members: list[str] = Field(default_factory=list)
    """Member emails."""
    previously: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Names this team had before (a rename): the provider's group of an old name is renamed in place,
    keeping its id, members and whatever the platform attached to it, instead of being removed."""
    permissions: Permissions | None = None
    """Roles and collections, sent where the provider can express them (see team_schema)."""
    providers: list[Name] | None = None
    """Only these providers get this team (default: every SCIM provider)."""

    @property
    def key(self) -> str:
        return self.name




class ConfigFile(Model):
    """One YAML file of a config. Every key is optional; kinds may be split across files."""

    providers: list[Provider] = Field(default_factory=list)
    """SCIM 2.0 service providers that members and teams are converged into."""
    members: list[Member] = Field(default_factory=list)
    """People, each converged into a SCIM User."""
    teams: list[Team] = Field(default_factory=list)
    """Named groups of members, each converged into a SCIM Group."""
    connections: list[Connection] = Field(default_factory=list)
    """Tracker connections (Jira Cloud, Jira Data Center, Redmine)."""
    integrations: list[Integration] = Field(default_factory=list)
    """Platform programs wired to tracker projects."""
    user_maps: list[UserMap] = Field(default_factory=list)
    """Members' identities in other systems (tracker accounts, Jenkins users ...)."""
    fallback_users: list[FallbackUser] = Field(default_factory=list)
    """Who stands in when a member has no identity in a system; the most specific rule wins."""


@dataclass
class Config:
    """A whole config: every file merged, cross-references checked. Every kind is a declared field."""

    root: str
    files: list[str]
    providers: list[ScimProvider]
    members: list[Member]
    teams: list[Team]
    digest: str
    connections: list[Connection] = field(default_factory=list)
    integrations: list[Integration] = field(default_factory=list)
    user_maps: list[UserMap] = field(default_factory=list)
    fallback_users: list[FallbackUser] = field(default_factory=list)

    @classmethod
    def merge(cls, root: str, files: list[str], digest: str, parts: list[ConfigFile]) -> Config:
        """The kinds of every file, in file order."""
        def every(kind: str) -> list[Any]:
            return [x for part in parts for x in getattr(part, kind)]
        return cls(root=root, files=files, digest=digest, providers=every("providers"), members=every("members"),
                   teams=every("teams"), connections=every("connections"), integrations=every("integrations"),
                   user_maps=every("user_maps"), fallback_users=every("fallback_users"))

    def provider(self, name: str) -> ScimProvider:
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(name)

    def members_for(self, provider: str) -> list[Member]:
        return [m for m in self.members if m.providers is None or provider in m.providers]

    def teams_for(self, provider: str) -> list[Team]:
        return [t for t in self.teams if t.providers is None or provider in t.providers]
