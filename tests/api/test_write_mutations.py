"""Write mutations: same rules as import, typed field errors, all-or-nothing batches."""

from __future__ import annotations

from tests.factories import add_customer, add_identity, add_product
from tests.http_client import data, gql

UPSERT = """mutation($source: String!, $input: CustomerInput!) {
  upsertCustomer(source: $source, input: $input) {
    __typename
    ... on Customer { id email phone country fullName }
    ... on ValidationFailed { errors { field code message } }
  } }"""

PURCHASES = """mutation($items: [PurchaseInput!]!, $partial: Boolean!) {
  recordPurchases(source: "shop", items: $items, partial: $partial) {
    __typename
    ... on BatchWritten { inserted updated unchanged rejected { index errors { field code } }
                          items { index accepted } }
    ... on ValidationFailed { errors { field code message } }
  } }"""


async def test_upsert_customer_standardises_and_is_idempotent(client, db):
    variables = {"source": "web", "input": {
        "externalId": "W-1", "firstName": "  Ada ", "lastName": "Lovelace",
        "email": "ADA@Example.com", "phone": "+49 30 1234567", "country": "germany"}}  # fmt: skip
    first = data(await gql(client, UPSERT, variables))["upsertCustomer"]
    assert first == {
        "__typename": "Customer", "id": first["id"], "email": "ada@example.com",
        "phone": "+49301234567", "country": "DE", "fullName": "Ada Lovelace",
    }  # fmt: skip
    again = data(await gql(client, UPSERT, variables))["upsertCustomer"]
    assert again["id"] == first["id"]
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    # Another source with the same e-mail is the same person.
    other = {"source": "crm", "input": {"email": "ada@example.com", "lastName": "King"}}
    merged = data(await gql(client, UPSERT, other))["upsertCustomer"]
    assert merged["id"] == first["id"]
    assert merged["fullName"] == "Ada King"


async def test_upsert_customer_field_errors(client, db):
    variables = {"source": "web", "input": {"email": "nope", "country": "Atlantis"}}
    result = data(await gql(client, UPSERT, variables))["upsertCustomer"]
    assert result["__typename"] == "ValidationFailed"
    assert {(e["field"], e["code"]) for e in result["errors"]} == {
        ("email", "invalid_email"),
        ("country", "invalid_country"),
    }
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_purchase_batch_is_all_or_nothing(client, db):
    cid = await add_customer(db)
    await add_product(db, "S-1")
    good = {"customerId": str(cid), "externalId": "o-1", "productSku": "S-1", "unitPrice": "10",
            "quantity": 2, "currency": "EUR", "purchasedAt": "2025-01-01T10:00:00Z"}  # fmt: skip
    bad_amount = {**good, "externalId": "o-2", "unitPrice": "-3"}
    unknown_sku = {**good, "externalId": "o-3", "productSku": "NOPE"}
    naive_time = {**good, "externalId": "o-4", "purchasedAt": "2025-01-01T10:00:00"}
    items = [good, bad_amount, unknown_sku, naive_time]

    result = data(await gql(client, PURCHASES, {"items": items, "partial": False}))
    refused = result["recordPurchases"]
    assert refused["__typename"] == "ValidationFailed"
    assert {(e["field"], e["code"]) for e in refused["errors"]} == {
        ("items.1.unit_price", "negative"),
        ("items.3.purchased_at", "missing_zone"),
    }
    assert await db.fetchval("SELECT count(*) FROM purchases") == 0

    result = data(await gql(client, PURCHASES, {"items": items, "partial": True}))
    written = result["recordPurchases"]
    assert written["__typename"] == "BatchWritten"
    assert (written["inserted"], written["updated"], written["unchanged"]) == (1, 0, 0)
    assert [(p["index"], p["errors"][0]["code"]) for p in written["rejected"]] == [
        (1, "negative"),
        (2, "unknown_product"),
        (3, "missing_zone"),
    ]
    assert await db.fetchval("SELECT amount FROM purchases") == 20

    again = data(await gql(client, PURCHASES, {"items": [good], "partial": False}))
    assert again["recordPurchases"]["unchanged"] == 1


async def test_consents_and_interactions_by_external_id(client, db):
    cid = await add_customer(db)
    await add_identity(db, cid, "external_id", "crm", "CRM-9")
    consent = """mutation { setConsent(source: "crm", input: {customerExternalId: "CRM-9",
        purpose: "Email Marketing", granted: true, recordedAt: "2025-01-01T00:00:00Z"}) {
        ... on Consent { purpose granted source } ... on ValidationFailed { errors { code } } } }"""
    assert data(await gql(client, consent))["setConsent"] == {
        "purpose": "email_marketing",
        "granted": True,
        "source": "crm",
    }
    interactions = """mutation { recordInteractions(source: "crm", items: [
        {customerExternalId: "CRM-9", externalId: "t-1", occurredAt: "2025-01-02T00:00:00Z",
         channel: "support", kind: "ticket_opened", properties: {topic: "late"}}]) {
        ... on BatchWritten { inserted } ... on ValidationFailed { errors { field code } } } }"""
    assert data(await gql(client, interactions))["recordInteractions"] == {"inserted": 1}
    row = await db.fetchrow("SELECT kind, properties FROM interactions WHERE customer_id = $1", cid)
    assert (row["kind"], row["properties"]) == ("ticket_opened", {"topic": "late"})


async def test_products_upsert(client, db):
    mutation = """mutation($items: [ProductInput!]!) { upsertProducts(items: $items) {
        ... on BatchWritten { inserted updated unchanged } } }"""
    items = [{"sku": "K-1", "name": "Kettle", "category": "Kitchen", "price": "29.90",
              "currency": "eur"}]  # fmt: skip
    assert data(await gql(client, mutation, {"items": items}))["upsertProducts"] == {
        "inserted": 1,
        "updated": 0,
        "unchanged": 0,
    }
    items[0]["price"] = "24.90"
    assert data(await gql(client, mutation, {"items": items}))["upsertProducts"] == {
        "inserted": 0,
        "updated": 1,
        "unchanged": 0,
    }


async def test_field_sources_say_who_gave_each_value(client, db):
    first = {"source": "web", "input": {"email": "ada@example.com", "firstName": "Ada",
             "observedAt": "2025-01-01T00:00:00Z"}}  # fmt: skip
    cid = data(await gql(client, UPSERT, first))["upsertCustomer"]["id"]
    later = {"source": "crm", "input": {"email": "ada@example.com", "lastName": "Lovelace",
             "observedAt": "2025-02-01T00:00:00Z"}}  # fmt: skip
    await gql(client, UPSERT, later)
    query = "query($id: ID!) { customer(id: $id) { fieldSources { field source at } } }"
    sources = data(await gql(client, query, {"id": cid}))["customer"]["fieldSources"]
    assert [(s["field"], s["source"]) for s in sources] == [
        ("email", "web"),
        ("firstName", "web"),
        ("lastName", "crm"),
    ]
    assert sources[2]["at"].startswith("2025-02-01")
