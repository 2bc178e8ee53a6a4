"""API keys managed over GraphQL by admins: created (secret shown once), listed, revoked."""

from __future__ import annotations

from tests.conftest import bearer
from tests.http_client import GRAPHQL_RESPONSE, data, gql

CREATE = """mutation($name: String!, $role: Role!, $days: Int) {
  createApiKey(name: $name, role: $role, expiresInDays: $days) {
    __typename ... on ApiKeyCreated { secret key { id name role prefix expiresAt revokedAt } }
    ... on ValidationFailed { errors { field code } } } }"""
REVOKE = """mutation($k: String!) { revokeApiKey(idOrPrefix: $k) {
  __typename ... on ApiKey { prefix revokedAt } ... on ValidationFailed { errors { code } } } }"""


async def status_with(client, secret: str) -> int:
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"},
        headers={"Accept": GRAPHQL_RESPONSE, **bearer(secret)},
    )  # fmt: skip
    return response.status_code


async def test_admins_create_list_and_revoke_keys(client, db):
    made = data(await gql(client, CREATE, {"name": " crm ", "role": "APP", "days": 30}))
    created = made["createApiKey"]
    key = created["key"]
    assert (key["name"], key["role"], key["revokedAt"]) == ("crm", "APP", None)
    assert key["expiresAt"] is not None
    assert created["secret"].startswith(f"cdm_{key['prefix']}_")
    assert await status_with(client, created["secret"]) == 200
    stored = await db.fetchval("SELECT secret_hash FROM api_keys WHERE prefix = $1", key["prefix"])
    assert created["secret"].encode() not in bytes(stored)  # only the hash is kept

    listed = data(await gql(client, "{ apiKeys { prefix name role } }"))["apiKeys"]
    assert {"prefix": key["prefix"], "name": "crm", "role": "APP"} in listed

    spare = data(await gql(client, CREATE, {"name": "spare", "role": "ANALYST"}))["createApiKey"]
    revoked = data(await gql(client, REVOKE, {"k": spare["key"]["prefix"]}))["revokeApiKey"]
    assert revoked["revokedAt"] is not None
    assert await status_with(client, spare["secret"]) == 401

    refused = data(await gql(client, CREATE, {"name": "  ", "role": "APP", "days": 0}))
    assert [e["code"] for e in refused["createApiKey"]["errors"]] == ["length", "range"]
    unknown = data(await gql(client, REVOKE, {"k": "nope"}))["revokeApiKey"]
    assert unknown["errors"][0]["code"] == "unknown_key"
