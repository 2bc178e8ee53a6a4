"""Saved segments: every filter operator, and/or/not, members, stats and sizes over time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import add_consent, add_customer, add_interaction, add_product, add_purchase
from tests.http_client import data, error_codes, gql

NOW = datetime.now(UTC)
CREATE = """mutation($name: String!, $definition: SegmentFilterInput!) {
  createSegment(name: $name, definition: $definition) {
    __typename
    ... on Segment { id size customers(first: 50) { totalCount nodes { firstName } } }
    ... on ValidationFailed { errors { field code message } } } }"""


async def people(db) -> dict[str, int]:
    """Three customers built so that each operator tells them apart."""
    ann = await add_customer(db, first_name="ann", country="GB")
    bob = await add_customer(db, first_name="bob", country="DE")
    cid = await add_customer(db, first_name="cid", country="FR")  # never bought
    book = await add_product(db, "SKU-BOOK", "books")
    pen = await add_product(db, "SKU-PEN", "office")
    for n in range(3):  # ann: three orders, 300 in all, the last 10 days ago
        await add_purchase(db, ann, NOW - timedelta(days=10 + n), "100.00", product_id=book)
    await add_purchase(db, bob, NOW - timedelta(days=200), "50.00", product_id=pen)
    await add_consent(db, ann, "email_marketing", True, NOW - timedelta(days=50))
    await add_consent(db, bob, "email_marketing", True, NOW - timedelta(days=50))
    await add_consent(db, bob, "email_marketing", False, NOW - timedelta(days=5))  # changed mind
    await add_consent(db, cid, "sms", True, NOW - timedelta(days=5))
    for _ in range(2):
        await add_interaction(db, ann, NOW - timedelta(days=5, minutes=_), "page_view", "web")
    await add_interaction(db, bob, NOW - timedelta(days=100), "ticket_opened", "support")
    scores = [(ann, 0.8, 0.2, 0.5), (bob, 0.5, 0.6, 1.5)]
    for customer, churn, p30, expected in scores:
        await db.execute(
            "INSERT INTO customer_scores (customer_id, as_of, churn_probability,"
            " purchase_30d_probability, expected_purchases) VALUES ($1, $2, $3, $4, $5)",
            customer, NOW, churn, p30, expected,
        )  # fmt: skip
    for customer, segment in ((ann, "champions"), (bob, "lost")):
        await db.execute(
            "INSERT INTO customer_rfm (customer_id, as_of, recency_days, frequency, monetary,"
            " r, f, m, segment) VALUES ($1, $2, 1, 1, 1, 1, 1, 1, $3)", customer, NOW, segment,
        )  # fmt: skip
    return {"ann": ann, "bob": bob, "cid": cid}


CASES = [
    ({"countryIn": ["Germany"]}, {"bob"}),
    ({"countryIn": ["gb", "FRA"]}, {"ann", "cid"}),
    ({"totalSpend": {"min": "100"}}, {"ann"}),
    ({"totalSpend": {"max": "100"}}, {"bob", "cid"}),  # never bought: spent 0
    ({"totalSpend": {"min": "50", "max": "50"}}, {"bob"}),  # bounds are inclusive
    ({"orders": {"min": "2"}}, {"ann"}),
    ({"orders": {"max": "0"}}, {"cid"}),
    ({"daysSinceLastPurchase": {"min": "100"}}, {"bob"}),
    ({"daysSinceLastPurchase": {"max": "30"}}, {"ann"}),
    ({"rfmSegmentIn": ["CHAMPIONS"]}, {"ann"}),
    ({"rfmSegmentIn": ["LOST", "HIBERNATING"]}, {"bob"}),
    ({"churnBandIn": ["HIGH"]}, {"ann"}),
    ({"churnBandIn": ["MEDIUM", "LOW"]}, {"bob"}),
    ({"churnProbability": {"min": "0.6"}}, {"ann"}),
    ({"purchaseProbability30d": {"max": "0.3"}}, {"ann"}),
    ({"expectedPurchases": {"min": "1"}}, {"bob"}),
    ({"consentedTo": "email_marketing"}, {"ann"}),  # bob's latest decision is a refusal
    ({"consentedTo": "SMS"}, {"cid"}),
    ({"bought": {"category": "Books"}}, {"ann"}),
    ({"bought": {"sku": "SKU-PEN"}}, {"bob"}),
    ({"bought": {"sku": "SKU-PEN", "withinDays": 30}}, set()),
    ({"interactions": {"kind": "page_view", "min": 2}}, {"ann"}),
    ({"interactions": {"kind": "page_view", "min": 3}}, set()),
    ({"interactions": {"kind": "ticket_opened", "channel": "support"}}, {"bob"}),
    ({"interactions": {"kind": "ticket_opened", "withinDays": 30}}, set()),
    ({"interactions": {"kind": "page_view", "min": 0, "max": 0}}, {"bob", "cid"}),
    ({"and": [{"countryIn": ["GB"]}, {"totalSpend": {"min": "100"}}]}, {"ann"}),
    ({"or": [{"countryIn": ["DE"]}, {"countryIn": ["FR"]}]}, {"bob", "cid"}),
    ({"not": {"countryIn": ["GB"]}}, {"bob", "cid"}),
    ({"not": {"churnBandIn": ["HIGH"]}}, {"bob", "cid"}),  # no score: not high either
    (
        {
            "or": [
                {"and": [{"countryIn": ["DE"]}, {"not": {"consentedTo": "email_marketing"}}]},
                {"rfmSegmentIn": ["CHAMPIONS"]},
            ]
        },
        {"ann", "bob"},
    ),
    ({}, {"ann", "bob", "cid"}),
]


@pytest.mark.parametrize(("definition", "expected"), CASES, ids=[str(c[0]) for c in CASES])
async def test_each_operator_selects_exactly_its_customers(client, db, definition, expected):
    await people(db)
    made = data(await gql(client, CREATE, {"name": uuid.uuid4().hex, "definition": definition}))
    segment = made["createSegment"]
    assert segment["__typename"] == "Segment", segment
    names = {n["firstName"] for n in segment["customers"]["nodes"]}
    assert names == expected
    assert segment["size"] == segment["customers"]["totalCount"] == len(expected)


async def test_segment_stats_history_and_paging(client, db):
    ids = await people(db)
    await db.execute(
        "INSERT INTO customers (first_name, erased_at) VALUES ('gone', now())"
    )  # a tombstone is never a member
    made = data(await gql(client, CREATE, {"name": "everyone", "definition": {}}))
    sid = made["createSegment"]["id"]
    query = """query($id: ID!, $after: String) { segment(id: $id) { name size
      stats { customers totalSpend averageSpend purchases averageChurnProbability scored }
      sizeHistory { size }
      customers(first: 2, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } } } }"""
    first = data(await gql(client, query, {"id": sid}))["segment"]
    assert first["size"] == 3
    assert first["stats"] == {
        "customers": 3, "totalSpend": "350.00", "averageSpend": "116.67", "purchases": 4,
        "averageChurnProbability": pytest.approx(0.65), "scored": 2,
    }  # fmt: skip
    assert first["sizeHistory"] == [{"size": 3}]
    assert [n["id"] for n in first["customers"]["nodes"]] == [str(ids["ann"]), str(ids["bob"])]
    after = first["customers"]["pageInfo"]["endCursor"]
    second = data(await gql(client, query, {"id": sid, "after": after}))["segment"]
    assert [n["id"] for n in second["customers"]["nodes"]] == [str(ids["cid"])]
    assert second["customers"]["pageInfo"]["hasNextPage"] is False
    by_name = data(await gql(client, '{ segment(name: "everyone") { id } }'))["segment"]
    assert by_name == {"id": sid}
    listed = data(await gql(client, "{ segments { name } }"))["segments"]
    assert listed == [{"name": "everyone"}]


async def test_bad_definitions_are_refused_with_every_reason(client, db):
    bad = {
        "countryIn": ["Narnia"], "orders": {"min": "5", "max": "1"},
        "churnProbability": {"max": "1.5"}, "bought": {"sku": "A", "category": "b"},
        "interactions": {"kind": "x", "withinDays": 0},
    }  # fmt: skip
    refused = data(await gql(client, CREATE, {"name": "bad", "definition": bad}))
    errors = {(e["field"], e["code"]) for e in refused["createSegment"]["errors"]}
    assert errors == {
        ("definition.countries.0", "invalid_country"),
        ("definition.orders", "invalid_range"),
        ("definition.churn_probability", "invalid_range"),
        ("definition.bought", "invalid"),
        ("definition.interactions.within_days", "invalid_days"),
    }
    assert await db.fetchval("SELECT count(*) FROM segments") == 0
    ok = data(await gql(client, CREATE, {"name": "gb", "definition": {"countryIn": ["GB"]}}))
    assert ok["createSegment"]["__typename"] == "Segment"
    taken = data(await gql(client, CREATE, {"name": "gb", "definition": {}}))
    assert taken["createSegment"]["errors"][0]["code"] == "taken"
    deep: dict = {"countryIn": ["GB"]}
    for _ in range(7):
        deep = {"not": deep}
    too_deep = data(await gql(client, CREATE, {"name": "deep", "definition": deep}))
    assert too_deep["createSegment"]["errors"][0]["code"] == "too_deep"
    body = await gql(client, '{ segment(id: "1", name: "x") { id } }')
    assert error_codes(body) == ["BAD_USER_INPUT"]
