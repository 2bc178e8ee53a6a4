"""Query bombs are refused before they are validated or run, with a readable reason."""

from __future__ import annotations

import pytest

from tests.http_client import GRAPHQL_RESPONSE, gql


def _deep(levels: int) -> str:
    return "{ " + "a { " * levels + "b" + " }" * levels + " }"


SPREAD = "{ models { " + "...F " * 20 + "} } fragment F on ModelStatus { " + "task " * 30 + "}"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (_deep(12), "13 levels deep; the limit is 12"),
        ("{ " + " ".join(f"m{i}: models {{ task }}" for i in range(51)) + " }", "51 aliases"),
        ("{ models { " + "task " * 600 + "} }", "selects 601 fields"),
        # 30 fields, spread 20 times: 600 once fragments are expanded.
        (SPREAD, "selects 601 fields"),
        ("{ models { " + "task " * 6000 + "} }", "more than 5000 tokens"),
    ],
)
async def test_bombs_are_refused_before_validation(client, query, says):
    body = await gql(client, query, expect_status=400)
    (error,) = body["errors"]
    assert says in error["message"]
    assert "data" not in body


async def test_a_normal_customer_view_fits_the_limits(client):
    query = """{ customers(first: 5) { nodes { id fullName purchases(first: 3) {
        nodes { amount product { name category } } } purchaseSummary { orderCount } } } }"""
    body = await gql(client, query)
    assert body["data"]["customers"]["nodes"] == []


async def test_an_oversized_body_is_413(client):
    huge = '{"query": "{ models { task } }", "pad": "' + "x" * 1_100_000 + '"}'
    r = await client.post(
        "/graphql", content=huge,
        headers={"Content-Type": "application/json", "Accept": GRAPHQL_RESPONSE},
    )  # fmt: skip
    assert r.status_code == 413
    assert "larger than 1,000,000 bytes" in r.json()["errors"][0]["message"]


async def test_graphiqls_introspection_fits_the_limits(client):
    """GraphiQL asks for the schema with an introspection query 15 levels deep, nearly all of
    it `ofType` chains, which unwrap list and non-null types and cost nothing: they add no
    depth. Refused, GraphiQL had no docs and no completion."""
    from graphql import get_introspection_query

    query = get_introspection_query(
        descriptions=True, specified_by_url=True, directive_is_repeatable=True,
        schema_description=True, input_value_deprecation=True,
    )  # fmt: skip
    schema = (await gql(client, query))["data"]["__schema"]
    assert any(t["name"] == "Customer" for t in schema["types"])
    # Depth made of anything else still counts.
    nested = "{ __schema { types { fields { type { fields { type { fields { type { fields {"
    deep = nested + " type { fields { type { fields { name } } } } } } } } } } } } } }"
    (error,) = (await gql(client, deep, expect_status=400))["errors"]
    assert "levels deep" in error["message"]
