"""Every role against every sensitive field and every mutation, over HTTP, compared with the
policy in ``domain.access``: what the server does must be what the table says."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.access import ADMIN_ONLY, PERSONAL_FIELDS, Access, Role, access, mask
from tests.api.test_audit import MUTATIONS
from tests.conftest import api_key, bearer
from tests.factories import add_customer, add_identity, add_interaction, add_product
from tests.http_client import GRAPHQL_RESPONSE

# A query reaching each sensitive field, and the path to its value in the response.
CUSTOMER = "query($c: ID!) { customer(id: $c) { %s } }"
PAIRS = "{ duplicateCandidates(minScore: 0.5) { evidence { aValue bValue } } }"
PLAN = """mutation($c: ID!, $d: ID!) { mergeCustomers(survivorId: $c, mergedIds: [$d],
  dryRun: true) { ... on MergePlan { fields { value candidates { value } } } } }"""
FIELDS: dict[str, tuple[str, tuple[object, ...]]] = {
    "Customer.firstName": (CUSTOMER % "firstName", ("customer", "firstName")),
    "Customer.lastName": (CUSTOMER % "lastName", ("customer", "lastName")),
    "Customer.fullName": (CUSTOMER % "fullName", ("customer", "fullName")),
    "Customer.email": (CUSTOMER % "email", ("customer", "email")),
    "Customer.phone": (CUSTOMER % "phone", ("customer", "phone")),
    "Customer.birthDate": (CUSTOMER % "birthDate", ("customer", "birthDate")),
    "Identity.value": (CUSTOMER % "identities { value }", ("customer", "identities", 0, "value")),
    "Interaction.properties": (
        CUSTOMER % "interactions(first: 5) { nodes { properties } }",
        ("customer", "interactions", "nodes", 0, "properties"),
    ),
    "MatchEvidence.aValue": (PAIRS, ("duplicateCandidates", 0, "evidence", 0, "aValue")),
    "MatchEvidence.bValue": (PAIRS, ("duplicateCandidates", 0, "evidence", 0, "bValue")),
    "MergeFieldDecision.value": (PLAN, ("mergeCustomers", "fields", 0, "value")),
    "MergeFieldValue.value": (PLAN, ("mergeCustomers", "fields", 0, "candidates", 0, "value")),
    "Query.auditLog": ("{ auditLog(first: 1) { totalCount } }", ("auditLog", "totalCount")),
    "Query.apiKeys": ("{ apiKeys { prefix } }", ("apiKeys", 0, "prefix")),
    "Query.exportCustomerData": (
        "query($c: ID!) { exportCustomerData(id: $c) }", ("exportCustomerData", "customerId"),
    ),
}  # fmt: skip


def test_the_matrix_covers_every_sensitive_field():
    assert set(FIELDS) == set(PERSONAL_FIELDS) | {c for c in ADMIN_ONLY if c.startswith("Query.")}


def dig(value: object, path: tuple[object, ...]) -> object:
    for step in path:
        value = value[step]  # type: ignore[index]
    return value


async def people(db) -> dict[str, str]:
    c = await add_customer(
        db, first_name="Grace", last_name="Hopper", email="grace@navy.mil", phone="+12025550143",
        birth_date=date(1906, 12, 9),
    )  # fmt: skip
    d = await add_customer(db, first_name="Grace", last_name="Hoper", email="grace@navy.mil")
    await add_identity(db, c, "email", "navy", "grace@navy.mil")
    await add_interaction(db, c, datetime(2025, 1, 1, tzinfo=UTC), properties={"note": "hi"})
    return {"c": str(c), "d": str(d)}


async def post(client, key: str, query: str, variables: dict):
    used = {k: v for k, v in variables.items() if f"${k}" in query}
    return await client.post(
        "/graphql", json={"query": query, "variables": used},
        headers={"Accept": GRAPHQL_RESPONSE, **bearer(key)},
    )  # fmt: skip


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_sees_each_sensitive_field_as_the_policy_says(client, db, role):
    variables = await people(db)
    admin, key = await api_key(db, Role.ADMIN), await api_key(db, role)
    for coordinate, (query, path) in FIELDS.items():
        root = "Mutation.mergeCustomers" if query.startswith("mutation") else None
        verdicts = {access(role, coordinate), access(role, root) if root else Access.ALLOW}
        response = await post(client, key, query, variables)
        if Access.DENY in verdicts:
            assert response.status_code == 403, (role, coordinate, response.text)
            continue
        assert response.status_code == 200, (role, coordinate, response.text)
        clear = dig((await post(client, admin, query, variables)).json()["data"], path)
        seen = dig(response.json()["data"], path)
        assert clear is not None, coordinate  # the data reaches the field
        if access(role, coordinate) is Access.MASK:
            assert seen == mask(PERSONAL_FIELDS[coordinate], clear), (role, coordinate)
            assert seen != clear
        else:
            assert seen == clear, (role, coordinate)


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_may_call_exactly_the_mutations_the_policy_grants(client, db, role):
    variables = await people(db)
    await add_product(db, "SKU-1")
    key = await api_key(db, role)
    for name, query in MUTATIONS.items():
        if name == "unmergeCustomers":
            merge = await db.fetchval("SELECT max(id) FROM merges")
            variables["m"] = str(merge or 1)
        if name == "deleteSegment":
            variables["s"] = str(await db.fetchval("SELECT max(id) FROM segments") or 1)
        # Changes only: reads and refusals are queued and written by a background flush,
        # which may land at any moment (counting them made this test depend on timing).
        changes = "SELECT count(*) FROM audit_log WHERE kind = 'mutation'"
        before = await db.fetchval(changes)
        response = await post(client, key, query, variables)
        if access(role, f"Mutation.{name}") is Access.DENY:
            assert response.status_code == 403, (role, name, response.text)
            assert f"Mutation.{name}" in response.json()["errors"][0]["message"]
            assert await db.fetchval(changes) == before  # nothing ran
        else:
            assert response.status_code == 200, (role, name, response.text)
            assert "errors" not in response.json(), (role, name, response.json())
