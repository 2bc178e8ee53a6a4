"""Abuse limits beyond the document's shape: a cost budget, a request budget per key, and a
production mode that stops mapping the schema for strangers."""

from __future__ import annotations

from graphql import OperationDefinitionNode, parse

from api.cost import query_cost
from api.rate_limit import RateLimiter
from api.schema import schema
from domain.access import Role
from tests.conftest import api_key, bearer, serving
from tests.http_client import GRAPHQL_RESPONSE, data, error_codes, gql

NESTED = """query($n: Int!) { customers(first: $n) { nodes { id
  purchases(first: 50) { nodes { amount } } } } }"""
SCORES = """query($ids: [ID!]) { scores(customerIds: $ids) { id churnRisk { probability band }
  recommendations(first: 5) { product { id } } } }"""


def cost(query: str, variables: dict | None = None) -> int:
    document = parse(query)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    return query_cost(schema._schema, {}, operation, variables)


def test_cost_multiplies_by_page_sizes_and_id_lists():
    assert cost("{ customer(id: 1) { id email } }") == 3
    # customers (1) + 10 x [nodes (1) + id (1) + purchases (1) + 50 x (nodes + amount)]
    assert cost(NESTED, {"n": 10}) == 1 + 10 * (1 + 1 + 1 + 50 * 2)
    # The default page size counts when `first` is not given (customers: 20).
    assert cost("{ customers { nodes { id } } }") == 1 + 20 * 2
    ids = [str(i) for i in range(1000)]
    # A personalization engine's full batch fits the default budget comfortably.
    assert cost(SCORES, {"ids": ids}) == 1 + 1000 * (1 + 1 + 2 + 1 + 5 * 2)
    assert cost(SCORES, {"ids": ids}) < 50_000


async def test_queries_over_the_cost_budget_are_refused_before_running(db, database_url, settings):
    tight = settings.model_copy(update={"query_max_cost": 1_000})
    async with serving(database_url, tight) as http:
        body = await gql(http, NESTED, {"n": 10}, expect_status=400)
        assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
        assert body["errors"][0]["extensions"]["cost"] == 1031
        assert "the limit is 1,000" in body["errors"][0]["message"]
        assert data(await gql(http, NESTED, {"n": 5}))["customers"]["nodes"] == []
        # A cost that variables set is never kept with the document: n=10 is refused again.
        body = await gql(http, NESTED, {"n": 10}, expect_status=400)
        assert body["errors"][0]["extensions"]["cost"] == 1031
        literal = (
            "{ customers(first: 11) { nodes { id purchases(first: 50) { nodes { amount } } } } }"
        )
        for _ in range(2):  # kept with the document after the first time, and still refused
            body = await gql(http, literal, expect_status=400)
            assert body["errors"][0]["extensions"]["cost"] == 1 + 11 * (1 + 1 + 1 + 50 * 2)


def test_a_token_bucket_allows_bursts_then_the_rate():
    now = [0.0]
    limiter = RateLimiter(per_second=2, burst=3, clock=lambda: now[0])
    assert [limiter.retry_after("a") for _ in range(3)] == [None] * 3
    assert limiter.retry_after("a") == 0.5
    assert limiter.retry_after("b") is None  # each client has its own budget
    now[0] = 0.5
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("a") is not None
    assert RateLimiter(per_second=0, burst=1).retry_after("a") is None  # 0: no limit


async def test_a_client_over_its_rate_gets_429_with_retry_after(db, database_url, settings):
    slow = settings.model_copy(update={"rate_limit_per_second": 0.01, "rate_limit_burst": 2})
    other = await api_key(db, Role.ANALYST)
    async with serving(database_url, slow) as http:
        for _ in range(2):
            await gql(http, "{ __typename }")
        response = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Accept": GRAPHQL_RESPONSE}
        )
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert error_codes(response.json()) == ["RATE_LIMITED"]
        assert "retry in" in response.json()["errors"][0]["message"]
        http.headers.update(bearer(other))  # another key has its own budget
        assert data(await gql(http, "{ __typename }")) == {"__typename": "Query"}


INTROSPECTION = "{ __schema { queryType { name } } }"
TYPO = "{ custmer(id: 1) { id } }"


async def test_production_mode_hides_the_schema(db, database_url, settings):
    async with serving(database_url, settings) as http:
        assert data(await gql(http, INTROSPECTION))["__schema"]["queryType"]["name"] == "Query"
        body = await gql(http, TYPO, expect_status=400)
        assert "Did you mean" in body["errors"][0]["message"]
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" in page.text.lower()

    production = settings.model_copy(update={"mode": "production"})
    async with serving(database_url, production) as http:
        body = await gql(http, INTROSPECTION, expect_status=400)
        assert "introspection" in body["errors"][0]["message"].lower()
        body = await gql(http, TYPO, expect_status=400)
        assert "custmer" in body["errors"][0]["message"]
        assert "Did you mean" not in body["errors"][0]["message"]
        assert data(await gql(http, "{ __typename }")) == {"__typename": "Query"}
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" not in page.text.lower()
