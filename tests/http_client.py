"""Helpers to talk GraphQL over HTTP the way a frontend does."""

from __future__ import annotations

from typing import Any

import httpx

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    expect_status: int = 200,
) -> dict[str, Any]:
    """POST a query; assert the status; return the decoded body."""
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == expect_status, response.text
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    return response.json()


def data(body: dict[str, Any]) -> dict[str, Any]:
    """The data of a response that must have no errors."""
    assert "errors" not in body, body["errors"]
    return body["data"]


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]
