"""Concurrent clients racing on the same person, over real HTTP: one person, one row, one
answer for every caller, and never a 500 (docs/design.md, "One person per identity")."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from api.app import create_app
from tests.conftest import api_key, bearer
from tests.factories import add_product
from tests.faults.conftest import ServerThread

WRITERS = 8
ROUNDS = 6

UPSERT = """mutation($source: String!, $input: CustomerInput!) {
  upsertCustomer(source: $source, input: $input) {
    __typename ... on Customer { id } ... on ValidationFailed { errors { code message } } } }"""
PURCHASES = """mutation($items: [PurchaseInput!]!, $create: Boolean!) {
  recordPurchases(source: "shop", items: $items, createMissingCustomers: $create) {
    __typename ... on BatchWritten { inserted updated unchanged }
    ... on ValidationFailed { errors { code message } } } }"""
INTERACTIONS = """mutation($items: [InteractionInput!]!) {
  recordInteractions(source: "web", items: $items) {
    __typename ... on BatchWritten { inserted updated unchanged }
    ... on ValidationFailed { errors { code message } } } }"""


@pytest.fixture
async def http(db, database_url, settings):
    """A client of the app served by a real uvicorn server, with room for every writer."""
    app = create_app(settings.model_copy(update={"pool_max_size": WRITERS + 2}), database_url)
    with ServerThread(app) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(await api_key(db)), timeout=120
        ) as client:
            yield client


async def _burst(http: httpx.AsyncClient, query: str, variables: list[dict]) -> list[dict]:
    """Send every request at once; each answer's single mutation result."""
    responses = await asyncio.gather(
        *(http.post("/graphql", json={"query": query, "variables": v}) for v in variables)
    )
    results = []
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        results.append(next(iter(body["data"].values())))
    return results


async def test_identical_upserts_make_one_customer(http, db):
    for n in range(ROUNDS):
        email = f"racer{n}@example.com"
        variables = {"source": "web", "input": {"externalId": f"W-{n}", "email": email}}
        answers = await _burst(http, UPSERT, [variables] * WRITERS)
        assert {a["__typename"] for a in answers} == {"Customer"}
        ids = {int(a["id"]) for a in answers}
        assert len(ids) == 1, f"round {n}: {WRITERS} callers got {len(ids)} customers"
        (cid,) = ids
        assert await db.fetchval("SELECT count(*) FROM customers WHERE email = $1", email) == 1
        owners = await db.fetch(
            "SELECT DISTINCT customer_id FROM identities WHERE value = ANY ($1::text[])",
            [f"W-{n}", email],
        )
        assert [r["customer_id"] for r in owners] == [cid]
    assert await db.fetchval("SELECT count(*) FROM customers") == ROUNDS


async def test_racing_sources_sharing_an_email_make_one_customer(http, db):
    # Each caller brings its own external id and the shared e-mail: one person, every id.
    for n in range(ROUNDS):
        email = f"shared{n}@example.com"
        variables = [
            {"source": f"app{w}", "input": {"externalId": f"A-{n}-{w}", "email": email}}
            for w in range(WRITERS)
        ]
        answers = await _burst(http, UPSERT, variables)
        assert len({a["id"] for a in answers}) == 1
        owners = await db.fetchval(
            "SELECT count(DISTINCT customer_id) FROM identities WHERE value LIKE $1",
            f"A-{n}-%",
        )
        assert owners == 1
    assert await db.fetchval("SELECT count(*) FROM customers") == ROUNDS


async def test_identical_purchase_batches_write_one_row_and_all_succeed(http, db):
    await add_product(db, "S-1")
    for n in range(ROUNDS):
        item = {
            "customerExternalId": f"new-{n}", "externalId": f"o-{n}", "productSku": "S-1",
            "unitPrice": "9.50", "currency": "EUR", "purchasedAt": "2025-01-01T10:00:00Z",
        }  # fmt: skip
        answers = await _burst(http, PURCHASES, [{"items": [item], "create": True}] * WRITERS)
        assert {a["__typename"] for a in answers} == {"BatchWritten"}
        assert sum(a["inserted"] for a in answers) == 1
        assert sum(a["unchanged"] for a in answers) == WRITERS - 1
    assert await db.fetchval("SELECT count(*) FROM purchases") == ROUNDS
    # Each new external id made one customer, however many callers created it at once.
    assert await db.fetchval("SELECT count(*) FROM customers") == ROUNDS
    assert await db.fetchval("SELECT count(*) FROM identities") == ROUNDS


async def test_identical_interaction_batches_write_one_row_and_all_succeed(http, db):
    answer = await _burst(http, UPSERT, [{"source": "web", "input": {"externalId": "V-1"}}])
    cid = answer[0]["id"]
    for n in range(ROUNDS):
        items = [
            {"customerId": cid, "externalId": f"e-{n}-{i}", "channel": "web", "kind": "page_view",
             "occurredAt": "2025-01-01T10:00:00Z"}
            for i in range(3)
        ]  # fmt: skip
        answers = await _burst(http, INTERACTIONS, [{"items": items}] * WRITERS)
        assert {a["__typename"] for a in answers} == {"BatchWritten"}
        assert sum(a["inserted"] for a in answers) == 3
    assert await db.fetchval("SELECT count(*) FROM interactions") == 3 * ROUNDS


ERASE = """mutation($id: ID!) { eraseCustomer(id: $id) { __typename } }"""


async def test_erasure_racing_upserts_leaves_nobody_behind(http, db):
    # Upserts of a person race their erasure: each either lands before it (and is erased with
    # the rest) or after it (and is refused); no live customer is left with their e-mail.
    for n in range(ROUNDS):
        email = f"gone{n}@example.com"
        variables = {"source": "web", "input": {"externalId": f"G-{n}", "email": email}}
        (first,) = await _burst(http, UPSERT, [variables])
        upserts = _burst(http, UPSERT, [variables] * WRITERS)
        erase = _burst(http, ERASE, [{"id": first["id"]}])
        answers, (erased,) = await asyncio.gather(upserts, erase)
        assert erased["__typename"] == "CustomerErased"
        for answer in answers:
            if answer["__typename"] == "Customer":
                assert answer["id"] == first["id"]
            else:
                assert [e["code"] for e in answer["errors"]] == ["erased_person"]
        assert await db.fetchval("SELECT count(*) FROM customers WHERE email = $1", email) == 0
        assert await db.fetchval("SELECT count(*) FROM identities WHERE value = $1", email) == 0
    assert await db.fetchval("SELECT count(*) FROM customers WHERE erased_at IS NULL") == 0
