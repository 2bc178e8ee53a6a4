"""The customer list: filters, orderings, keyset paging, limits and statement counts."""

from __future__ import annotations

import pytest

from tests.factories import T0, add_customer, add_product, add_purchase, days
from tests.http_client import GRAPHQL_RESPONSE, data, error_codes, gql

LIST = """
query($first: Int!, $after: String, $filter: CustomerFilterInput, $order: CustomerOrderInput) {
  customers(first: $first, after: $after, filter: $filter, orderBy: $order) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    nodes { id email }
  }
}"""


async def _people(db):
    """Five customers with known countries, sign-up times and spend."""
    ids = {}
    rows = [
        ("ann", "DE", 0, ["50.00"]),
        ("bob", "DE", 1, ["10.00", "15.00"]),
        ("cyd", "FR", 2, []),
        ("dee", "FR", 3, ["100.00"]),
        ("eve_x", "US", 4, ["5.00"]),
    ]
    for name, country, day, amounts in rows:
        cid = await add_customer(
            db, first_name=name.title(), email=f"{name}@example.com", country=country,
            created_at=T0 + days(day),
        )  # fmt: skip
        for i, amount in enumerate(amounts):
            await add_purchase(db, cid, T0 + days(10 + day + i), amount)
        ids[name] = str(cid)
    return ids


async def _all_pages(client, variables, first=2):
    seen, after = [], None
    while True:
        body = data(await gql(client, LIST, {**variables, "first": first, "after": after}))
        conn = body["customers"]
        seen += [n["email"].split("@")[0] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            return seen, conn["totalCount"]
        after = conn["pageInfo"]["endCursor"]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (None, ["eve_x", "dee", "cyd", "bob", "ann"]),
        ({"field": "CREATED_AT", "direction": "ASC"}, ["ann", "bob", "cyd", "dee", "eve_x"]),
        ({"field": "TOTAL_SPEND", "direction": "DESC"}, ["dee", "ann", "bob", "eve_x", "cyd"]),
        ({"field": "TOTAL_SPEND", "direction": "ASC"}, ["cyd", "eve_x", "bob", "ann", "dee"]),
        (
            {"field": "LAST_PURCHASE_AT", "direction": "DESC"},
            ["eve_x", "dee", "bob", "ann", "cyd"],
        ),
    ],
)
async def test_orderings_page_through_every_customer_once(client, db, order, expected):
    await _people(db)
    seen, total = await _all_pages(client, {"order": order})
    assert seen == expected
    assert total == 5


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"country": "de"}, ["bob", "ann"]),
        ({"createdAfter": "2025-01-02T00:00:00Z", "createdBefore": "2025-01-04T00:00:00Z"},
         ["cyd", "bob"]),
        ({"minTotalSpend": "25"}, ["dee", "bob", "ann"]),
        ({"purchasedSince": "2025-01-13T00:00:00Z"}, ["eve_x", "dee", "bob"]),
        ({"purchasedUntil": "2025-01-12T00:00:01Z"}, ["bob", "ann"]),
        ({"search": "EVE_"}, ["eve_x"]),  # `_` is literal, not a LIKE wildcard
        ({"search": "example.com", "country": "FR"}, ["dee", "cyd"]),
        ({"search": "%%"}, []),
    ],
)  # fmt: skip
async def test_filters(client, db, flt, expected):
    await _people(db)
    seen, total = await _all_pages(client, {"filter": flt}, first=10)
    assert seen == expected
    assert total == len(expected)


@pytest.mark.parametrize(
    ("flt", "field"),
    [
        ({"country": "Germany"}, "country"),
        ({"search": "x"}, "search"),
        ({"createdAfter": "2025-01-02T00:00:00"}, "createdAfter"),  # the argument's own name
        ({"purchasedUntil": "0001-01-01T00:00:00Z"}, "purchasedUntil"),
        ({"minTotalSpend": "-1"}, "minTotalSpend"),
        ({"minTotalSpend": "NaN"}, None),  # refused by the Decimal scalar, before the filter
    ],
)
async def test_bad_filters_name_the_field(client, db, flt, field):
    # A variable that does not coerce is a request error: 400 under the new media type.
    body = await gql(
        client, LIST, {"first": 5, "filter": flt}, expect_status=400 if field is None else 200
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"].get("field") == field
    assert body.get("data") is None


async def test_page_size_is_capped_with_a_message_naming_the_limit(client, db):
    body = await gql(client, LIST, {"first": 101})
    assert error_codes(body) == ["PAGE_SIZE_OUT_OF_RANGE"]
    assert "between 1 and 100" in body["errors"][0]["message"]
    body = await gql(client, LIST, {"first": 0})
    assert error_codes(body) == ["PAGE_SIZE_OUT_OF_RANGE"]


async def test_cursor_from_another_ordering_or_forged_is_refused(client, db):
    await _people(db)
    first = data(await gql(client, LIST, {"first": 1}))["customers"]["pageInfo"]["endCursor"]
    other = {"field": "TOTAL_SPEND", "direction": "DESC"}
    body = await gql(client, LIST, {"first": 1, "after": first, "order": other})
    assert error_codes(body) == ["INVALID_CURSOR"]
    for forged in ["garbage", "eyJ4IjoxfQ", "W10", "'; select 1 --"]:
        body = await gql(client, LIST, {"first": 1, "after": forged})
        assert error_codes(body) == ["INVALID_CURSOR"], forged


W2 = """
query {
  customers(first: 50) {
    totalCount
    nodes {
      id email
      purchases(first: 5) { nodes { amount purchasedAt product { sku } } }
      purchaseSummary { purchaseCount totalSpend lastPurchaseAt }
    }
  }
}"""


@pytest.mark.parametrize("customers", [3, 60])
async def test_page_of_customers_costs_a_fixed_number_of_statements(client, db, customers):
    product = await add_product(db, "S-1")
    for i in range(customers):
        cid = await add_customer(db, email=f"c{i}@example.com", created_at=T0 + days(i))
        for j in range(3):
            await add_purchase(db, cid, T0 + days(i + j), "1.00", product_id=product)
    response = await client.post(
        "/graphql", json={"query": W2}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    body = response.json()
    assert "errors" not in body
    nodes = body["data"]["customers"]["nodes"]
    assert len(nodes) == min(customers, 50)
    assert all(len(n["purchases"]["nodes"]) == 3 for n in nodes)
    # One statement builds the whole answer (api/sql_compiler.py), for 3 or 50 customers.
    assert response.headers["X-SQL-Statements"] == "1"


async def test_products_come_with_purchases_also_through_fragments(client, db):
    product = await add_product(db, "F-1", "garden")
    cid = await add_customer(db)
    await add_purchase(db, cid, T0, "3.00", product_id=product)
    query = """
      fragment Line on Purchase { product { sku category } }
      query($id: ID!) { customer(id: $id) {
        purchases(first: 5) { edges { node { amount ...Line } } } } }"""
    response = await client.post(
        "/graphql", json={"query": query, "variables": {"id": str(cid)}},
        headers={"Accept": GRAPHQL_RESPONSE},
    )  # fmt: skip
    node = response.json()["data"]["customer"]["purchases"]["edges"][0]["node"]
    assert node == {"amount": "3.00", "product": {"sku": "F-1", "category": "garden"}}
    assert response.headers["X-SQL-Statements"] == "1"  # one statement builds it all
