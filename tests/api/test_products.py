"""The catalogue through HTTP."""

from __future__ import annotations

from tests.factories import add_product
from tests.http_client import data, error_codes, gql

PAGE = """query($after: String, $category: String, $search: String) {
  products(first: 2, after: $after, category: $category, search: $search) {
    totalCount pageInfo { hasNextPage endCursor } nodes { sku price currency } } }"""


async def test_products_page_filter_and_search(client, db):
    for sku, category in [("A-1", "books"), ("A-2", "books"), ("B-1", "toys"), ("A-3", "books")]:
        await add_product(db, sku, category, "9.90")
    first = data(await gql(client, PAGE, {"category": "books"}))["products"]
    assert first["totalCount"] == 3
    assert [n["sku"] for n in first["nodes"]] == ["A-1", "A-2"]
    after = first["pageInfo"]["endCursor"]
    second = data(await gql(client, PAGE, {"category": "books", "after": after}))["products"]
    assert [n["sku"] for n in second["nodes"]] == ["A-3"]
    assert second["pageInfo"]["hasNextPage"] is False
    found = data(await gql(client, PAGE, {"search": "b-"}))["products"]
    assert [n["sku"] for n in found["nodes"]] == ["B-1"]
    assert found["nodes"][0] == {"sku": "B-1", "price": "9.90", "currency": "EUR"}


async def test_product_by_id_or_sku(client, db):
    pid = await add_product(db, "Z-9", "garden")
    query = "query($id: ID, $sku: String) { product(id: $id, sku: $sku) { id sku category } }"
    by_id = data(await gql(client, query, {"id": str(pid)}))["product"]
    by_sku = data(await gql(client, query, {"sku": "Z-9"}))["product"]
    assert by_id == by_sku == {"id": str(pid), "sku": "Z-9", "category": "garden"}
    assert error_codes(await gql(client, query, {})) == ["BAD_USER_INPUT"]
    assert error_codes(await gql(client, query, {"id": "x"})) == ["INVALID_ID"]
