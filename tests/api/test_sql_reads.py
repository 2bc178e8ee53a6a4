"""Reads answered by one SQL statement that builds the JSON (api/sql_compiler.py).

Every query of the test suite is also checked against graphql-core on the same snapshot
(api/parity.py, turned on in tests/conftest.py); these tests check what parity alone cannot:
one statement, masking inside the database, rounding ties, and honest fallback counts.
"""

from __future__ import annotations

import json

import pytest
from graphql import get_operation_ast, parse
from graphql.execution.values import get_variable_values

from api.metrics import READS
from api.schema import schema
from api.sql_compiler import compile_sql
from domain.access import Role
from tests.conftest import api_key, serving
from tests.factories import (
    T0,
    add_customer,
    add_identity,
    add_product,
    add_purchase,
    days,
)
from tests.http_client import data, error_codes, gql

W1 = """query W1($id: ID!) { customer(id: $id) { id firstName lastName email country
  purchases(first: 10) { nodes { id amount currency purchasedAt quantity
    product { id sku name category } } } } }"""
W2 = """query W2 { customers(first: 50) { totalCount nodes { id firstName lastName email country
  purchases(first: 5) { nodes { id amount currency purchasedAt } }
  purchaseSummary { purchaseCount totalSpend firstPurchaseAt lastPurchaseAt
                    averageOrderValue } } } }"""
W3 = """query W3 { customers(first: 10, filter: {search: "anna"}) { totalCount
  nodes { id firstName lastName email } } }"""


@pytest.fixture
async def shop(db):
    book = await add_product(db, "B-1", "books", "12.50")
    ids = []
    for i in range(4):
        cid = await add_customer(
            db, first_name=f"Anna{i}", last_name="Berg", email=f"anna{i}@example.com",
            created_at=T0 + days(i),
        )  # fmt: skip
        ids.append(cid)
        for j in range(i + 1):
            at = T0 + days(10 + j) + (days(0.5) if j % 2 else days(0))
            await add_purchase(db, cid, at, f"{j + 1}.05", product_id=book if j % 2 else None)
    return ids


async def test_the_benchmark_workloads_take_one_statement(client, shop):
    for query, variables in ((W1, {"id": str(shop[3])}), (W2, None), (W3, None)):
        response = await client.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        assert response.headers["X-SQL-Statements"] == "1"
        assert "errors" not in response.json()
    w1 = data(await gql(client, W1, {"id": str(shop[3])}))["customer"]
    assert [p["amount"] for p in w1["purchases"]["nodes"]] == ["4.05", "3.05", "2.05", "1.05"]
    assert w1["purchases"]["nodes"][0]["product"] == {
        "id": w1["purchases"]["nodes"][0]["product"]["id"], "sku": "B-1",
        "name": "Product B-1", "category": "books",
    }  # fmt: skip
    assert w1["purchases"]["nodes"][1]["product"] is None
    w3 = data(await gql(client, W3))["customers"]
    assert w3["totalCount"] == 4
    assert [n["firstName"] for n in w3["nodes"]] == ["Anna3", "Anna2", "Anna1", "Anna0"]


async def test_average_order_value_rounds_ties_to_even_like_python(client, db):
    cid = await add_customer(db)
    # 0.05 over two orders is 0.025: Decimal.quantize gives 0.02 (half to even), not 0.03.
    await add_purchase(db, cid, T0, "0.01", order_ref="o1")
    await add_purchase(db, cid, T0 + days(1), "0.04", order_ref="o2")
    query = """query($id: ID!) { customer(id: $id) {
        purchaseSummary { totalSpend orderCount averageOrderValue currencies } } }"""
    summary = data(await gql(client, query, {"id": str(cid)}))["customer"]["purchaseSummary"]
    assert summary == {
        "totalSpend": "0.05", "orderCount": 2, "averageOrderValue": "0.02", "currencies": ["EUR"]
    }  # fmt: skip


async def test_a_customer_without_purchases_has_the_empty_summary(client, db):
    cid = await add_customer(db)
    query = """query($id: ID!) { customer(id: $id) { purchaseSummary {
        purchaseCount totalSpend averageOrderValue distinctProducts lastPurchaseAt currencies }
        purchases(first: 3) { totalCount pageInfo { hasNextPage startCursor endCursor }
                              edges { cursor } } } }"""
    customer = data(await gql(client, query, {"id": str(cid)}))["customer"]
    assert customer["purchaseSummary"] == {
        "purchaseCount": 0, "totalSpend": "0", "averageOrderValue": None, "distinctProducts": 0,
        "lastPurchaseAt": None, "currencies": [],
    }  # fmt: skip
    assert customer["purchases"] == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "startCursor": None, "endCursor": None},
        "edges": [],
    }


async def test_masked_values_never_leave_the_database_in_clear(db, database_url, settings):
    cid = await add_customer(
        db, first_name="Zelda", last_name="Quist", email="zelda@example.com",
        phone="+4930123456", birth_date=T0.date(),
    )  # fmt: skip
    await add_identity(db, cid, "email", "shop", "zelda@example.com")
    query = """query($id: ID!) { customer(id: $id) { firstName fullName email phone birthDate
        identities { value } } }"""
    document = parse(query)
    plan = compile_sql(
        schema._schema, document, get_operation_ast(document), Role.ANALYST, track_reads=False
    )
    assert not isinstance(plan, str), plan
    operation = get_operation_ast(document)
    variables = get_variable_values(
        schema._schema, operation.variable_definitions, {"id": str(cid)}
    )
    statement = plan.render(variables, settings)
    raw = (await db.fetchval(statement.sql, *statement.params)).decode()  # what leaves PG
    for clear in ("Zelda", "Quist", "zelda@", "30123456", str(T0.date())):
        assert clear not in raw
    async with serving(database_url, settings, key=await api_key(db, Role.ANALYST)) as http:
        customer = data(await gql(http, query, {"id": str(cid)}))["customer"]
    assert customer == {
        "firstName": "Z***", "fullName": "Z***", "email": "z***@example.com", "phone": "***56",
        "birthDate": None, "identities": [{"value": "z***@example.com"}],
    }  # fmt: skip


async def test_fallbacks_are_counted_with_their_reason(client, shop):
    before = READS.fallbacks.copy()
    governance = "{ storedScoresSummary { customers } }"
    data(await gql(client, governance))
    assert READS.fallbacks - before == {"Query.storedScoresSummary is not compiled to SQL": 1}
    bad = """{ customers(first: 2, after: "not-a-cursor") { nodes { id } } }"""
    body = await gql(client, bad)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"  # worded by Python
    # No model trained: churnRisk answers null with MODEL_NOT_TRAINED, which graphql-core words.
    scores = "query($id: ID!) { customer(id: $id) { id churnRisk { probability } } }"
    body = await gql(client, scores, {"id": str(shop[0])})
    assert body["data"] == {"customer": {"id": str(shop[0]), "churnRisk": None}}
    assert error_codes(body) == ["MODEL_NOT_TRAINED"]
    assert READS.fallbacks - before == {
        "Query.storedScoresSummary is not compiled to SQL": 1, "a cursor to refuse": 1,
        "a field answered by Python failed": 1,
    }  # fmt: skip
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'cdm_graphql_sql_fallbacks_total{reason="a cursor to refuse"}' in metrics.text
    assert 'cdm_graphql_queries_total{path="sql"}' in metrics.text


async def test_served_without_the_parity_check_the_answers_are_the_same(
    shop, database_url, settings
):
    """Production serves from its own generically planned pool, with no comparison."""
    plain = settings.model_copy(update={"verify_sql_reads": False})
    bodies = []
    for each in (settings, plain):
        async with serving(database_url, each) as http:
            for query, variables in ((W1, {"id": str(shop[2])}), (W2, None), (W3, None)):
                response = await http.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                assert response.headers["X-SQL-Statements"] == "1"
                bodies.append(response.json())
    assert bodies[:3] == bodies[3:]
    assert all("errors" not in b for b in bodies)


async def test_fields_python_answers_are_merged_into_the_statements_json(client, db, shop):
    """Field sources (and model scores, RFM, lifetime value) are resolved after the SQL for
    all the page's customers at once, and land at their place in each object."""
    await db.execute(
        """UPDATE customers SET field_sources = jsonb_build_object('email',
               jsonb_build_object('source', 'crm', 'at', '2025-01-02T00:00:00+00:00'))
            WHERE id = $1""",
        shop[1],
    )
    before = READS.answered.copy(), READS.fallbacks.copy()
    query = """query($n: Int!) { customers(first: $n) { nodes { id
        sources: fieldSources { field source at } email rfm { code } } } }"""
    response = await client.post("/graphql", json={"query": query, "variables": {"n": 4}})
    nodes = response.json()["data"]["customers"]["nodes"]
    assert [list(n) for n in nodes] == [["id", "sources", "email", "rfm"]] * 4  # in place
    by_id = {n["id"]: n for n in nodes}
    assert by_id[str(shop[1])]["sources"] == [
        {"field": "email", "source": "crm", "at": "2025-01-02T00:00:00+00:00"}
    ]
    assert by_id[str(shop[0])]["sources"] == []
    assert all(n["rfm"] is None for n in nodes)  # no `cdm rfm` snapshot yet
    assert READS.answered - before[0] == {"sql": 1}
    assert READS.fallbacks - before[1] == {}
    # The page's statement, then one batch for the Python fields (customers by id).
    assert int(response.headers["X-SQL-Statements"]) <= 3


def _renderer(query: str, settings):
    """The admin's plan of ``query`` and a function rendering it for some variables."""
    document = parse(query)
    operation = get_operation_ast(document)
    plan = compile_sql(schema._schema, document, operation, Role.ADMIN, track_reads=False)
    assert not isinstance(plan, str), plan

    def render(**values):
        coerced = get_variable_values(schema._schema, operation.variable_definitions or (), values)
        return plan.render(coerced, settings)

    return plan, render


async def test_objects_with_literal_arguments_render_once_and_stay_per_request(
    client, shop, settings
):
    """A customer object whose nested pages have literal arguments is the same text for every
    request: rendered once, then reused, while the id stays a bound value per request. A
    literal that must be bound (a date) keeps its object rendered per request."""
    plan, render = _renderer(W1, settings)
    first, second = render(id=str(shop[3])), render(id=str(shop[0]))
    assert first.sql == second.sql
    assert first.params == [[shop[3]]]
    assert second.params == [[shop[0]]]
    assert plan.roots[0].children.rendered  # the customer object's text, kept
    for cid, amounts in ((shop[3], ["4.05", "3.05", "2.05", "1.05"]), (shop[0], ["1.05"])):
        w1 = data(await gql(client, W1, {"id": str(cid)}))["customer"]
        assert [p["amount"] for p in w1["purchases"]["nodes"]] == amounts

    dated = """query($id: ID!) { customer(id: $id) { id
        purchases(first: 10, since: "2025-01-13T00:00:00Z") { nodes { amount } } } }"""
    plan, render = _renderer(dated, settings)
    assert render(id=str(shop[3])).params[1:] == render(id=str(shop[0])).params[1:]
    assert not plan.roots[0].children.rendered  # its date is bound anew each time
    for cid, amounts in ((shop[3], ["4.05", "3.05"]), (shop[0], [])):
        w = data(await gql(client, dated, {"id": str(cid)}))["customer"]
        assert [p["amount"] for p in w["purchases"]["nodes"]] == amounts


async def test_a_document_without_variables_renders_one_statement_for_every_request(
    client, db, shop, settings
):
    """W2 and W3 name every value in the document: the statement is rendered once and only
    the counts it may reuse change between requests (api/remembered_counts.py). Variables, a
    clock (segments' members are "now") or rows read first keep rendering per request."""
    plan, render = _renderer(W3, settings)
    first, second = render(), render()
    assert second.sql is first.sql
    assert second.params == first.params
    assert first.remembered
    assert second.params is not first.params
    elsewhere = settings.model_copy(update={"max_page_size": 20})
    assert plan.render({}, elsewhere).sql is not first.sql  # other settings: rendered anew
    for query in (W1, "{ segments { name size } }"):
        assert not _renderer(query, settings)[0].reusable
    for _ in range(2):
        w3 = data(await gql(client, W3))["customers"]
        assert w3["totalCount"] == 4
        assert [n["firstName"] for n in w3["nodes"]] == ["Anna3", "Anna2", "Anna1", "Anna0"]
    await add_customer(db, first_name="Anna9", email="anna9@example.com")
    assert data(await gql(client, W3))["customers"]["totalCount"] == 5


async def test_a_field_that_binds_without_arguments_is_rendered_afresh_each_time(client, shop):
    """scoresWithheld binds its reasons' texts: its object must not be reused as static text
    (the second request's statement would name a parameter it does not have)."""
    query = "query($id: ID!) { customer(id: $id) { id scoresWithheld } }"
    for cid in shop[:2]:
        answer = data(await gql(client, query, {"id": str(cid)}))
        assert answer == {"customer": {"id": str(cid), "scoresWithheld": None}}


async def test_whole_floats_are_written_as_python_writes_them(client, db):
    """A churn probability of exactly 1 is `1.0` in Python's JSON; PostgreSQL writes `1`.
    The parity check compares the JSON text too, so either difference fails there."""
    cid = await add_customer(db)
    await db.execute(
        "INSERT INTO customer_scores (customer_id, as_of, churn_probability,"
        " purchase_30d_probability, expected_purchases, expected_days_to_next)"
        " VALUES ($1, $2, 1, 0, 2, 0.5)", cid, T0,
    )  # fmt: skip
    query = """query($id: ID!) { customer(id: $id) { storedScores { churnProbability
        purchase30dProbability expectedPurchases expectedDaysToNext } } }"""
    response = await client.post("/graphql", json={"query": query, "variables": {"id": str(cid)}})
    assert response.headers["X-SQL-Statements"] == "1"
    scores = json.loads(response.text, parse_float=lambda s: f"float:{s}")
    assert scores["data"]["customer"]["storedScores"] == {
        "churnProbability": "float:1.0", "purchase30dProbability": "float:0.0",
        "expectedPurchases": "float:2.0", "expectedDaysToNext": "float:0.5",
    }  # fmt: skip


def test_the_parity_check_tells_1_from_1_0():
    from api.parity import _same

    assert _same({"a": [1.5, "x"]}, {"a": [1.5, "x"]})
    assert not _same({"a": 1}, {"a": 1.0})
