"""The compiled fast path answers exactly as graphql-core does, and falls back when it must."""

from __future__ import annotations

import pytest
from graphql import execute, get_operation_ast, parse, validate

from api.compiled import compile_query
from api.context import Context
from api.schema import schema
from tests.factories import (
    T0,
    add_consent,
    add_customer,
    add_identity,
    add_interaction,
    add_product,
    add_purchase,
    days,
)

GRAPHQL_SCHEMA = schema._schema

COMPILED = [
    ("{ customers(first: 3) { totalCount nodes { id fullName email country birthDate } } }", None),
    (
        """query($first: Int!, $order: CustomerOrderInput) {
             customers(first: $first, orderBy: $order) {
               pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
               edges { cursor node { id createdAt updatedAt } } } }""",
        {"first": 2, "order": {"field": "TOTAL_SPEND", "direction": "DESC"}},
    ),
    (
        """query($id: ID!) { customer(id: $id) { __typename id
             identities { kind source value }
             consents { purpose granted recordedAt }
             summary: purchaseSummary { purchaseCount totalSpend averageOrderValue currencies
                                        firstPurchaseAt lastPurchaseAt distinctCategories }
             latest: purchases(first: 2) { totalCount edges { cursor node {
                 amount unitPrice quantity purchasedAt product { sku price category } } } }
             older: purchases(first: 5, since: "2025-01-01T00:00:00Z") {
                 totalCount nodes { amount } }
             interactions(first: 10) { totalCount nodes { kind channel properties occurredAt } }
           } }""",
        {"id": "1"},
    ),
    (
        """fragment Who on Customer { email fullName }
           query { customers(first: 4) { nodes { ...Who ... on Customer { country }
                   skipped: id @skip(if: true) kept: id @include(if: true) } } }""",
        None,
    ),
    (
        """{ products(first: 2, category: "books") { totalCount nodes { id sku name price } } }""",
        None,
    ),
    ("""{ product(sku: "B-1") { id name createdAt } nope: product(sku: "zzz") { id } }""", None),
]

NOT_COMPILED = [
    "{ __schema { queryType { name } } }",  # introspection
    "query($s: Boolean!) { customers(first: 1) { nodes { id @skip(if: $s) } } }",
    "{ customers(first: 1) { nodes { id id } } }",  # a key selected twice
]

FALLS_BACK = [
    ("""{ customer(id: "abc") { id } }""", None),  # a user error
    ("""{ customers(first: 1000) { totalCount } }""", None),
]


@pytest.fixture
async def dataset(db):
    ids = []
    books = await add_product(db, "B-1", "books", "12.50")
    pens = await add_product(db, "P-1", "office", "2.00")
    for i in range(5):
        cid = await add_customer(
            db, first_name=f"N{i}", email=f"n{i}@example.com", country="DE" if i % 2 else "FR",
            created_at=T0 + days(i),
        )  # fmt: skip
        ids.append(cid)
        await add_identity(db, cid, "email", "shop", f"n{i}@example.com")
        await add_consent(db, cid, "email_marketing", i % 2 == 0, T0)
        for j in range(i):
            await add_purchase(
                db, cid, T0 + days(j), f"{j + 1}.25", product_id=books if j % 2 else pens
            )
        await add_interaction(db, cid, T0 + days(1), "email_open", "email", {"campaign": "c1"})
    return ids


async def _both(pool, settings, query, variables):
    document = parse(query)
    assert validate(GRAPHQL_SCHEMA, document) == []
    operation = get_operation_ast(document)
    compiled = compile_query(GRAPHQL_SCHEMA, document, operation)
    fast = (
        await compiled.execute(Context.for_request(pool, settings), variables) if compiled else None
    )
    reference = await execute(
        GRAPHQL_SCHEMA, document, context_value=Context.for_request(pool, settings),
        variable_values=variables,
    )  # fmt: skip
    return compiled, fast, reference


@pytest.mark.parametrize(("query", "variables"), COMPILED)
async def test_compiled_matches_graphql_core(dataset, db, settings, query, variables):
    compiled, fast, reference = await _both(db, settings, query, variables)
    assert reference.errors is None
    assert compiled is not None
    assert fast == reference.data


@pytest.mark.parametrize("query", NOT_COMPILED)
def test_unsupported_documents_are_left_to_graphql_core(query):
    document = parse(query)
    assert compile_query(GRAPHQL_SCHEMA, document, get_operation_ast(document)) is None


@pytest.mark.parametrize(("query", "variables"), FALLS_BACK)
async def test_errors_hand_the_request_to_graphql_core(dataset, db, settings, query, variables):
    compiled, fast, reference = await _both(db, settings, query, variables)
    assert compiled is not None
    assert fast is None  # the endpoint then runs graphql-core, which reports the error
    assert reference.errors


async def test_bad_variables_are_request_errors(dataset, db, settings):
    query = "query($id: ID!) { customer(id: $id) { id } }"
    document = parse(query)
    compiled = compile_query(GRAPHQL_SCHEMA, document, get_operation_ast(document))
    outcome = await compiled.execute(Context.for_request(db, settings), {})
    assert isinstance(outcome, list)
    assert "$id" in outcome[0].message
