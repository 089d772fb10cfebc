"""The desired attributes fitted to what a provider's /Schemas says it stores (scim/fit.py), pure."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.config.models import Member, ScimProvider
from reconciler.plan.model import AttributeChange
from reconciler.providers.scim.attributes import desired_user, user_body, user_ops
from reconciler.providers.scim.fit import email_meta, fit_group, fit_users, member_refs_required
from reconciler.providers.scim.schema import ProviderSchema, parse_resource_types, parse_schemas

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def a(name: str, mutability: str = "readWrite", required: bool = False, sub: list[dict[str, Any]] | None = None) \
        -> dict[str, Any]:
    return {"name": name, "mutability": mutability, "required": required, "subAttributes": sub or []}


# Canaille 0.3.6's /Schemas and /ResourceTypes, abridged
CANAILLE = ProviderSchema(
    parse_schemas({"Resources": [
        {"id": USER, "attributes": [a("externalId", "readOnly"), a("userName", "immutable", True),
                                    a("name", required=True, sub=[a("formatted", required=True),
                                                                  a("familyName", required=True), a("givenName")]),
                                    a("displayName"), a("title"), a("active", required=True),
                                    a("emails", sub=[a("value", required=True)]), a("groups", "readOnly")]},
        {"id": GROUP, "attributes": [a("externalId", "readOnly"), a("displayName", "immutable", True),
                                     a("members", required=True, sub=[a("value", "immutable", True),
                                                                      a("$ref", "immutable", True)])]},
        {"id": ENT, "attributes": [a("employeeNumber"), a("organization"), a("department")]}]}),
    parse_resource_types({"Resources": [{"schema": USER, "schemaExtensions": [{"schema": ENT}]},
                                        {"schema": GROUP}]}))


def provider(**kw: Any) -> ScimProvider:
    return ScimProvider.model_validate({"name": "p", "type": "scim", "base_url": "https://s.example/v2",
                                        "auth": {"type": "bearer", "token": "${env:T}"}, **kw})


def test_what_canaille_does_not_store_is_dropped_and_named_once() -> None:
    p = provider(ownership_attribute=f"{ENT}:employeeNumber")
    ms = [Member(email="a@x.io", given_name="A", family_name="B", cost_center="1", roles=["r"], department="D"),
          Member(email="c@x.io", family_name="C", cost_center="2")]
    found = [(m, desired_user(m, p), None) for m in ms]
    fitted = fit_users(found, p, CANAILLE)  # type: ignore[arg-type]
    assert fitted.errors == []
    want = found[0][1]
    assert "enterprise:costCenter" not in want and "roles" not in want and want["enterprise:department"] == "D"
    assert want["name.formatted"] == "A B" and found[1][1]["name.formatted"] == "C"
    assert want["enterprise:employeeNumber"] == "reconciler:a@x.io" and "externalId" not in want
    assert [n for n in fitted.notes if "costCenter" in n] == [
        f"scim.p: {ENT}:costCenter (cost_center) is not stored by this provider (not in /Schemas); "
        "not sent for a@x.io, c@x.io"]
    body = user_body(want, {}, email_meta(CANAILLE))
    assert body["emails"] == [{"value": "a@x.io"}] and "externalId" not in body
    assert body[ENT] == {"department": "D", "employeeNumber": "reconciler:a@x.io"}
    assert user_ops([AttributeChange("emails", None, "a@x.io")], {}, False)[0]["value"] == [{"value": "a@x.io"}]


def test_without_a_fallback_the_mark_is_dropped_with_a_note_and_required_names_the_member() -> None:
    p = provider()
    m = Member(email="a@x.io", given_name="A")
    found = [(m, desired_user(m, p), None)]
    fitted = fit_users(found, p, CANAILLE)  # type: ignore[arg-type]
    assert "externalId" not in found[0][1] and fitted.mark_dropped
    assert any("externalId cannot hold the ownership mark here (readOnly in /Schemas)" in n for n in fitted.notes)
    assert len(fitted.errors) == 1 and "member a@x.io: provider p requires name.familyName" in fitted.errors[0]
    # an existing user needs nothing on create
    assert fit_users([(m, desired_user(m, p), {"id": "1"})], p, CANAILLE).errors == []


@pytest.mark.parametrize("attr, why", [("nickName", "not in /Schemas"), ("groups", "readOnly in /Schemas"),
                                       (f"{ENT}:costCenter", "not in /Schemas"),
                                       ("urn:acme:ext:User:x", "the schema urn:acme:ext:User is not in /Schemas")])
def test_a_declared_attribute_the_provider_cannot_store_is_an_error(attr: str, why: str) -> None:
    p = provider()
    m = Member(email="a@x.io", family_name="B", attributes={attr: "v"})
    fitted = fit_users([(m, desired_user(m, p), None)], p, CANAILLE)
    assert fitted.errors == [f"<config>:0:0: member a@x.io: attribute {attr} cannot be stored by provider p ({why}); "
                             "remove it, or keep this member off the provider (providers: [...])"]


def test_an_extension_the_resource_type_does_not_carry_is_not_stored() -> None:
    schema = ProviderSchema(CANAILLE.schemas, {USER: set()})
    assert schema.refusal(f"{ENT}:department", USER) == f"the schema {ENT} is not an extension of this resource type"
    assert CANAILLE.refusal(f"{ENT}:department", USER) is None


def test_groups_and_servers_without_schemas() -> None:
    want = {"displayName": "g", "externalId": "reconciler:g", "members": []}
    assert fit_group(want, CANAILLE) and "externalId" not in want
    assert member_refs_required(CANAILLE) and not member_refs_required(None)
    # no /Schemas: everything as declared
    p = provider()
    m = Member(email="a@x.io", attributes={"nickName": "n"})
    found = [(m, desired_user(m, p), None)]
    assert fit_users(found, p, None).errors == [] and found[0][1]["nickName"] == "n"  # type: ignore[arg-type]
    assert email_meta(None) and not fit_group({"externalId": "x"}, None)
    # externalId absent from a schema (scim2-server lists none): a common attribute, writable
    bare = ProviderSchema(parse_schemas({"Resources": [{"id": USER, "attributes": [a("userName")]}]}))
    assert bare.refusal("externalId", USER) is None
