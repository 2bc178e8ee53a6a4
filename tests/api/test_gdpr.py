"""Data-subject rights: export everything held about a person; erase it for good."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from domain.access import Role
from domain.erasure import ERASURE_RULES, Action
from tests.conftest import api_key, bearer
from tests.factories import (
    add_consent,
    add_customer,
    add_identity,
    add_interaction,
    add_product,
    add_purchase,
)
from tests.http_client import data, error_codes, gql

T = datetime(2025, 3, 1, tzinfo=UTC)
EXPORT = "query($id: ID!) { exportCustomerData(id: $id) }"
ERASE = """mutation($id: ID!) { eraseCustomer(id: $id) {
  __typename ... on CustomerErased { customerId erasedAt alreadyErased removed }
  ... on ValidationFailed { errors { field code message } } } }"""
UPSERT = """mutation($input: CustomerInput!, $resume: Boolean! = false) {
  upsertCustomer(source: "crm", input: $input, resumeErased: $resume) {
  __typename ... on Customer { id email } ... on ValidationFailed { errors { field code message } }
} }"""


async def a_person(db: asyncpg.Pool, marker: str) -> tuple[int, int]:
    """A person with something in every table that can hold their data, every value carrying
    ``marker``; and a second record of them, merged in. Returns (survivor id, merged id)."""
    cid = await add_customer(
        db, first_name=f"Grace{marker}", last_name=f"Hopper{marker}",
        email=f"grace{marker}@navy.mil", phone="+12025550143", birth_date=T.date(),
    )  # fmt: skip
    await add_identity(db, cid, "email", "crm", f"grace{marker}@navy.mil")
    await add_identity(db, cid, "external_id", "crm", f"CRM-{marker}")
    product = await add_product(db, f"SKU-{marker}")
    await add_purchase(db, cid, T, "30.00", product_id=product, order_ref="ord-1")
    await add_interaction(db, cid, T, "ticket_opened", "support", {"text": f"I am {marker}"})
    await add_consent(db, cid, "email_marketing", True, T)
    await add_consent(db, cid, "email_marketing", False, datetime(2025, 4, 1, tzinfo=UTC))
    await db.execute(
        "INSERT INTO customer_scores (customer_id, as_of, churn_probability, churn_model_version)"
        " VALUES ($1, $2, 0.25, 3)", cid, T,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO customer_rfm (customer_id, as_of, recency_days, frequency, monetary, r, f,"
        " m, segment) VALUES ($1, $2, 3, 1, 30, 5, 1, 2, 'new')", cid, T,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO segments (name, definition, created_by) VALUES ($1, $2, 'test')",
        f"new-{marker[::-1]}", {"rfm_segments": ["new"]},  # not the person's marker
    )  # fmt: skip
    other = await add_customer(db, first_name=f"G{marker}", email=f"g{marker}@old.example")
    return cid, other


async def merge(client, survivor: int, merged: int) -> None:
    query = """mutation($s: ID!, $m: [ID!]!) { mergeCustomers(survivorId: $s, mergedIds: $m) {
        __typename } }"""
    done = data(await gql(client, query, {"s": str(survivor), "m": [str(merged)]}))
    assert done["mergeCustomers"]["__typename"] == "MergeDone"


async def test_export_holds_everything_about_the_person(client, db):
    # Ids restart in every test while the audit log is kept: only entries from this test count.
    since = await db.fetchval("SELECT clock_timestamp()")
    marker = uuid.uuid4().hex[:8]
    cid, other = await a_person(db, marker)
    await merge(client, cid, other)
    document = data(await gql(client, EXPORT, {"id": str(other)}))["exportCustomerData"]
    assert document["customerId"] == cid  # a merged id exports its survivor
    assert document["mergedIds"] == [other]
    assert document["profile"]["email"] == f"grace{marker}@navy.mil"
    assert document["profile"]["birth_date"] == "2025-03-01"
    assert {(i["kind"], i["value"]) for i in document["identities"]} >= {
        ("email", f"grace{marker}@navy.mil"), ("external_id", f"CRM-{marker}"),
    }  # fmt: skip
    assert [(c["purpose"], c["granted"]) for c in document["consents"]] == [
        ("email_marketing", True), ("email_marketing", False),
    ]  # fmt: skip
    (purchase,) = document["purchases"]
    assert (purchase["sku"], purchase["amount"], purchase["order_ref"]) == (
        f"SKU-{marker}", "30.00", "ord-1",
    )  # fmt: skip
    assert document["interactions"][0]["properties"] == {"text": f"I am {marker}"}
    assert document["storedScores"][0]["churn_probability"] == 0.25
    assert document["rfm"][0]["segment"] == "new"
    assert f"new-{marker[::-1]}" in {s["name"] for s in document["segments"]}
    (merged,) = document["merges"]
    assert (merged["survivor_id"], merged["merged_ids"]) == (cid, [other])
    assert "mergeCustomers" in {e["operation"] for e in document["auditEntries"]}
    assert document["erasure"] is None
    # Current scores and their explanations: no model is trained here, and the export says so.
    current = document["currentScores"]
    assert current["churnRisk"]["unavailable"].startswith("no churn model is available")
    assert set(current) == {"asOf", "churnRisk", "nextPurchase", "recommendations", "buyAgain"}
    # Buy again needs no model: the one product bought, once, with its cycle.
    (again,) = current["buyAgain"]
    assert (again["sku"], again["orders"]) == (f"SKU-{marker}", 1)
    # The export itself is on the record.
    exported = await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE operation = 'exportCustomerData'"
        " AND customer_ids = ARRAY[$1::bigint] AND at >= $2", cid, since,
    )  # fmt: skip
    assert exported == 1
    assert data(await gql(client, EXPORT, {"id": "999999"}))["exportCustomerData"] is None


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN])
async def test_only_admins_export_and_erase(client, db, role):
    cid = await add_customer(db)
    client.headers.update(bearer(await api_key(db, role)))
    for query in (EXPORT, ERASE):
        body = await gql(client, query, {"id": str(cid)}, expect_status=403)
        assert error_codes(body) == ["FORBIDDEN"]
    assert await db.fetchval("SELECT erased_at FROM customers WHERE id = $1", cid) is None


async def text_columns(db: asyncpg.Pool) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND data_type IN ('text', 'jsonb', 'ARRAY', 'character')"
    )
    return [(r["table_name"], r["column_name"]) for r in rows]


async def test_erasure_leaves_nothing_personal_anywhere(client, db):
    marker = uuid.uuid4().hex[:8]
    cid, other = await a_person(db, marker)
    await merge(client, cid, other)
    body = data(await gql(client, ERASE, {"id": str(cid)}))["eraseCustomer"]
    assert body["__typename"] == "CustomerErased"
    assert body["customerId"] == str(cid)
    assert body["removed"] == {
        "identities": 2, "interactions": 1, "consents": 2, "customer_scores": 1, "customer_rfm": 1,
        "merges": 1,
    }  # fmt: skip

    # Every text, JSON and array column of every table, scanned for the person's marker.
    found = []
    for table, column in await text_columns(db):
        hits = await db.fetchval(
            f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE $1', f"%{marker}%"
        )
        if hits and table != "products":  # the catalogue is not about the person
            found.append((table, column))
    assert found == []

    profile = await db.fetchrow("SELECT * FROM customers WHERE id = $1", cid)
    assert profile["erased_at"] is not None
    assert [profile[f] for f in ("first_name", "email", "phone", "birth_date")] == [None] * 4
    assert profile["country"] == "GB"  # kept for the accounting of the purchases
    assert await db.fetchval("SELECT sum(amount) FROM purchases WHERE customer_id = $1", cid) == 30
    assert await db.fetchval("SELECT erased_by FROM erasures WHERE customer_id = $1", cid) == (
        "key:test admin"
    )
    # Erasing again is the same success; the list no longer shows the tombstone; the merge
    # stays done.
    again = data(await gql(client, ERASE, {"id": str(cid)}))["eraseCustomer"]
    assert (again["__typename"], again["customerId"]) == ("CustomerErased", str(cid))
    listed = data(await gql(client, "{ customers(first: 50) { nodes { id } } }"))
    assert str(cid) not in {n["id"] for n in listed["customers"]["nodes"]}
    merge_id = await db.fetchval("SELECT id FROM merges WHERE survivor_id = $1", cid)
    undo = """mutation($m: ID!) { unmergeCustomers(mergeId: $m) { __typename
        ... on Conflict { code } } }"""
    assert data(await gql(client, undo, {"m": str(merge_id)}))["unmergeCustomers"] == {
        "__typename": "Conflict", "code": "erased",
    }  # fmt: skip
    export = data(await gql(client, EXPORT, {"id": str(cid)}))["exportCustomerData"]
    assert export["identities"] == []
    assert export["erasure"]["erased_by"] == "key:test admin"


async def test_every_table_and_column_has_an_erasure_rule(db):
    rows = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public'"
    )
    columns: dict[str, set[str]] = {}
    for r in rows:
        columns.setdefault(r["table_name"], set()).add(r["column_name"])
    unruled = sorted(set(columns) - set(ERASURE_RULES))
    assert unruled == [], "add an erasure rule to domain.erasure.ERASURE_RULES"
    for table, rule in ERASURE_RULES.items():
        assert table in columns, f"stale rule for {table}"
        if rule.action is not Action.DELETE:
            assert columns[table] == rule.cleared | rule.kept, table


async def test_an_erased_person_is_not_brought_back_by_old_records(client, db):
    marker = uuid.uuid4().hex[:8]
    cid, _ = await a_person(db, marker)
    await gql(client, ERASE, {"id": str(cid)})
    email = f"grace{marker}@navy.mil"

    refused = data(await gql(client, UPSERT, {"input": {"email": email.upper()}}))
    (error,) = refused["upsertCustomer"]["errors"]
    assert (error["field"], error["code"]) == ("email", "erased_person")
    assert "resumeErased" in error["message"]
    by_ref = """mutation($ref: String!) { recordPurchases(source: "crm",
        createMissingCustomers: true, items: [{customerExternalId: $ref, externalId: "x-1",
        purchasedAt: "2025-05-01T00:00:00Z", amount: 5, currency: "EUR", channel: "web"}]) {
        ... on ValidationFailed { errors { field code message } } } }"""
    errors = data(await gql(client, by_ref, {"ref": f"CRM-{marker}"}))["recordPurchases"]
    assert [e["code"] for e in errors["errors"]] == ["erased_person"]
    by_id = by_ref.replace("customerExternalId: $ref", "customerId: $ref").replace("String!", "ID!")
    errors = data(await gql(client, by_id, {"ref": str(cid)}))["recordPurchases"]
    assert [(e["code"], e["message"]) for e in errors["errors"]] == [
        ("erased_person", f"customer {cid} was erased; nothing more is recorded about them"),
    ]
    assert await db.fetchval("SELECT count(*) FROM customers WHERE erased_at IS NULL") == 1

    # Back as a new customer, on purpose: a new id, their identities accepted again.
    back = data(await gql(client, UPSERT, {"input": {"email": email}, "resume": True}))
    assert back["upsertCustomer"]["email"] == email
    assert int(back["upsertCustomer"]["id"]) != cid
    again = data(await gql(client, UPSERT, {"input": {"email": email, "firstName": "G"}}))
    assert again["upsertCustomer"]["id"] == back["upsertCustomer"]["id"]


async def test_a_second_erasure_is_a_success_that_says_when(client, db):
    marker = uuid.uuid4().hex[:8]
    cid, other = await a_person(db, marker)
    await merge(client, cid, other)
    first = data(await gql(client, ERASE, {"id": str(cid)}))["eraseCustomer"]
    assert first["alreadyErased"] is False
    for asked in (cid, other, cid):  # a merged id names the same erased person
        request_id = uuid.uuid4().hex
        response = await client.post(
            "/graphql", json={"query": ERASE, "variables": {"id": str(asked)}},
            headers={"X-Request-Id": request_id},
        )  # fmt: skip
        again = data(response.json())["eraseCustomer"]
        assert again == {**first, "alreadyErased": True}  # when, and what went, the first time
        outcome = await db.fetchval(
            "SELECT details FROM audit_log WHERE request_id = $1", request_id
        )
        assert outcome == {"outcome": "done", "alreadyErased": True}
    assert await db.fetchval("SELECT count(*) FROM erasures WHERE customer_id = $1", cid) == 1
    unknown = data(await gql(client, ERASE, {"id": "999999"}))["eraseCustomer"]
    assert unknown["errors"][0]["message"] == "no customer with id 999999"


READS = {
    "customer": "query($id: ID!) { customer(id: $id) { id country createdAt } }",
    "scores": "query($id: ID!) { scores(customerIds: [$id]) { id } }",
    "byExternalId": 'query($x: String!) { customer(externalId: $x, source: "crm") { id } }',
    "scoresByExternalId": "query($x: String!) { scores(externalIds: [$x]) { id } }",
}


@pytest.mark.parametrize("role", [Role.ADMIN, Role.APP, Role.ANALYST, Role.PERSONALIZATION])
async def test_an_erased_person_reads_exactly_like_an_unknown_id(client, db, role):
    marker = uuid.uuid4().hex[:8]
    cid, other = await a_person(db, marker)
    await merge(client, cid, other)
    await gql(client, ERASE, {"id": str(cid)})
    client.headers.update(bearer(await api_key(db, role)))
    unknown = str(await db.fetchval("SELECT max(id) + 1000 FROM customers"))
    for name, query in READS.items():
        if role is Role.PERSONALIZATION and name.startswith(("customer", "by")):
            continue  # not this role's field
        for erased_id in (str(cid), str(other)):  # the tombstone, and an id merged into it
            variables = {"id": erased_id, "x": f"CRM-{marker}"}
            erased = await gql(client, query, variables)
            never = await gql(client, query, {"id": unknown, "x": f"CRM-none-{marker}"})
            assert erased == never, (name, erased_id)
            assert erased["data"] in ({"customer": None}, {"scores": []}), name


async def test_concurrent_erasures_of_one_person_all_succeed_once(client, db):
    for _ in range(3):
        marker = uuid.uuid4().hex[:8]
        cid, _ = await a_person(db, marker)
        answers = await asyncio.gather(*(gql(client, ERASE, {"id": str(cid)}) for _ in range(8)))
        erased = [data(a)["eraseCustomer"] for a in answers]
        assert {e["__typename"] for e in erased} == {"CustomerErased"}
        assert sorted(e["alreadyErased"] for e in erased) == [False] + [True] * 7
        assert len({e["erasedAt"] for e in erased}) == 1
        assert await db.fetchval("SELECT count(*) FROM erasures WHERE customer_id = $1", cid) == 1
