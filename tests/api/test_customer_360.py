"""A customer 360 view through HTTP, as a frontend reads it."""

from __future__ import annotations

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
from tests.http_client import data, error_codes, gql

CUSTOMER_360 = """
query($id: ID!) {
  customer(id: $id) {
    id fullName email country
    identities { kind source value }
    consents { purpose granted }
    purchaseSummary { purchaseCount orderCount totalSpend averageOrderValue
                      firstPurchaseAt lastPurchaseAt distinctProducts distinctCategories }
    purchases(first: 2) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { amount purchasedAt product { sku category } }
    }
    interactions(first: 5, kinds: ["complaint"]) { totalCount nodes { kind channel properties } }
  }
}"""


async def test_customer_360_view(client, db):
    cid = await add_customer(db, first_name="Grace", last_name="Hopper", email="grace@navy.mil")
    await add_identity(db, cid, "external_id", "crm", "CRM-1")
    await add_consent(db, cid, "email_marketing", True, T0)
    await add_consent(db, cid, "email_marketing", False, T0 + days(3))  # newest wins
    book = await add_product(db, "B-1", "books")
    pen = await add_product(db, "P-1", "office")
    await add_purchase(db, cid, T0 + days(1), "10.00", product_id=book, order_ref="o1")
    await add_purchase(db, cid, T0 + days(1), "5.50", product_id=pen, order_ref="o1")
    await add_purchase(db, cid, T0 + days(9), "30.00", product_id=book, order_ref="o2")
    await add_interaction(db, cid, T0 + days(2), "complaint", "support", {"topic": "late"})
    await add_interaction(db, cid, T0 + days(2.5), "page_view")

    customer = data(await gql(client, CUSTOMER_360, {"id": str(cid)}))["customer"]

    assert customer["fullName"] == "Grace Hopper"
    assert customer["identities"] == [{"kind": "EXTERNAL_ID", "source": "crm", "value": "CRM-1"}]
    assert customer["consents"] == [{"purpose": "email_marketing", "granted": False}]
    summary = customer["purchaseSummary"]
    assert summary["purchaseCount"] == 3
    assert summary["orderCount"] == 2
    assert summary["totalSpend"] == "45.50"
    assert summary["averageOrderValue"] == "22.75"
    assert summary["distinctProducts"] == 2
    assert summary["distinctCategories"] == 2
    assert summary["firstPurchaseAt"].startswith("2025-01-02T00:00:00")
    purchases = customer["purchases"]
    assert purchases["totalCount"] == 3
    assert purchases["pageInfo"]["hasNextPage"] is True
    assert [p["amount"] for p in purchases["nodes"]] == ["30.00", "5.50"]
    assert purchases["nodes"][0]["product"] == {"sku": "B-1", "category": "books"}
    assert customer["interactions"] == {
        "totalCount": 1,
        "nodes": [{"kind": "complaint", "channel": "support", "properties": {"topic": "late"}}],
    }


async def test_purchases_page_through_with_cursor(client, db):
    cid = await add_customer(db)
    for i in range(5):
        await add_purchase(db, cid, T0 + days(i), f"{i + 1}.00")
    query = """query($id: ID!, $after: String) { customer(id: $id) {
        purchases(first: 2, after: $after) { pageInfo { hasNextPage endCursor } nodes { amount } }
    } }"""
    seen, after = [], None
    while True:
        page = data(await gql(client, query, {"id": str(cid), "after": after}))
        purchases = page["customer"]["purchases"]
        seen += [n["amount"] for n in purchases["nodes"]]
        if not purchases["pageInfo"]["hasNextPage"]:
            break
        after = purchases["pageInfo"]["endCursor"]
    assert seen == ["5.00", "4.00", "3.00", "2.00", "1.00"]


async def test_customer_by_external_id(client, db):
    cid = await add_customer(db)
    await add_identity(db, cid, "external_id", "crm", "CRM-7")
    other = await add_customer(db)
    await add_identity(db, other, "external_id", "shop", "CRM-7")

    query = "query($x: String!, $s: String) { customer(externalId: $x, source: $s) { id } }"
    found = data(await gql(client, query, {"x": "CRM-7", "s": "crm"}))
    assert found["customer"] == {"id": str(cid)}
    ambiguous = await gql(client, query, {"x": "CRM-7"})
    assert error_codes(ambiguous) == ["AMBIGUOUS_LOOKUP"]
    assert data(await gql(client, query, {"x": "nobody"}))["customer"] is None


async def test_unknown_and_malformed_ids(client, db):
    query = "query($id: ID!) { customer(id: $id) { id } }"
    assert data(await gql(client, query, {"id": "999999"}))["customer"] is None
    body = await gql(client, query, {"id": "1; DROP TABLE customers"})
    assert error_codes(body) == ["INVALID_ID"]
    assert body["data"] == {"customer": None}
