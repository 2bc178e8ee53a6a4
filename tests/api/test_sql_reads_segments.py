"""Saved segments and RFM answered by the SQL compiler (api/sql_compiler_segments.py,
api/sql_compiler_rfm.py); graphql-core checks every answer here too (api/parity.py).

These tests check the path (the counters, the statement count), exact values, number
literals as Python writes them, masking, the audit of members read, and the fallbacks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

import sql.audit
from api.metrics import READS
from domain.access import Role
from domain.rfm import RfmSegment
from tests.conftest import api_key, serving
from tests.factories import T0, add_customer, add_purchase, days
from tests.http_client import data, error_codes, gql

CREATE = """mutation($name: String!, $definition: SegmentFilterInput!) {
  createSegment(name: $name, definition: $definition) { ... on Segment { id } } }"""
SEGMENT = """query($id: ID!, $after: String) { segment(id: $id) { id name description createdBy
  definition size sizeHistory { size }
  stats { customers totalSpend averageSpend purchases averageChurnProbability scored }
  customers(first: 2, after: $after) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id firstName purchases(first: 5) { nodes { amount } }
                          rfm { code } } } } } }"""


def literals(text: str) -> object:
    """The JSON with each number as its literal text: ``1.0`` and ``1`` are told apart."""
    return json.loads(text, parse_float=lambda s: f"float:{s}", parse_int=lambda s: f"int:{s}")


async def post(client, query: str, variables: dict | None = None):
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response


@pytest.fixture
async def members(db, client):
    """Three customers in GB (two bought, two scored), one in DE; a segment of GB."""
    gb = [await add_customer(db, first_name=f"gb{i}", email=f"gb{i}@example.com") for i in range(3)]
    await add_customer(db, first_name="de", country="DE")
    await add_purchase(db, gb[0], T0 + days(1), "10.00")
    await add_purchase(db, gb[0], T0 + days(2), "20.50")
    await add_purchase(db, gb[1], T0 + days(3), "5.25")
    for customer, churn in ((gb[0], 0.25), (gb[1], 0.75)):
        await db.execute(
            "INSERT INTO customer_scores (customer_id, as_of, churn_probability)"
            " VALUES ($1, $2, $3)",
            customer, datetime.now(UTC), churn,
        )  # fmt: skip
    definition = {"countryIn": ["GB"], "totalSpend": {"min": "0"}}
    made = data(await gql(client, CREATE, {"name": "britons", "definition": definition}))
    return made["createSegment"]["id"], gb


async def test_a_segment_with_its_members_over_pages_is_answered_by_sql(client, members):
    sid, gb = members
    before = READS.answered.copy(), READS.fallbacks.copy()
    response = await post(client, SEGMENT, {"id": sid})
    assert response.headers["X-SQL-Statements"] == "2"  # the definition's look-up, the answer
    first = response.json()["data"]["segment"]
    assert {k: v for k, v in first.items() if k != "customers"} == {
        "id": sid, "name": "britons", "description": None, "createdBy": "key:test admin",
        "definition": {"countries": ["GB"], "total_spend": {"min": "0"}}, "size": 3,
        "sizeHistory": [{"size": 3}],
        "stats": {
            "customers": 3, "totalSpend": "35.75", "averageSpend": "11.92", "purchases": 3,
            "averageChurnProbability": 0.5, "scored": 2,
        },
    }  # fmt: skip
    page = first["customers"]
    assert page["totalCount"] == 3
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["pageInfo"]["hasPreviousPage"] is False
    assert [e["node"]["id"] for e in page["edges"]] == [str(gb[0]), str(gb[1])]
    assert page["edges"][0]["node"]["purchases"]["nodes"] == [
        {"amount": "20.50"}, {"amount": "10.00"}
    ]  # fmt: skip
    assert page["edges"][0]["node"]["rfm"] is None
    assert page["pageInfo"]["endCursor"] == page["edges"][1]["cursor"]
    stats = literals(response.text)["data"]["segment"]["stats"]  # as Python writes them
    assert (stats["averageChurnProbability"], stats["averageSpend"]) == ("float:0.5", "11.92")

    after = page["pageInfo"]["endCursor"]
    second = data(await gql(client, SEGMENT, {"id": sid, "after": after}))["segment"]
    assert [e["node"]["firstName"] for e in second["customers"]["edges"]] == ["gb2"]
    assert second["customers"]["pageInfo"]["hasNextPage"] is False
    assert second["customers"]["pageInfo"]["hasPreviousPage"] is True
    assert READS.answered - before[0] == {"sql": 2}
    assert READS.fallbacks - before[1] == {}


async def test_stored_columns_alone_take_one_statement_and_the_list_two(client, members):
    sid, _ = members
    data(await gql(client, CREATE, {"name": "all", "definition": {}}))
    before = READS.answered.copy(), READS.fallbacks.copy()
    query = '{ segment(name: "britons") { id name createdAt sizeHistory { size } } }'
    response = await post(client, query)
    assert response.headers["X-SQL-Statements"] == "1"
    found = response.json()["data"]["segment"]
    assert (found["id"], found["name"], found["sizeHistory"]) == (sid, "britons", [{"size": 3}])
    listed = """{ segments { name definition size customers(first: 1) { totalCount
        nodes { firstName } } } }"""
    response = await post(client, listed)
    assert response.headers["X-SQL-Statements"] == "2"
    assert response.json()["data"]["segments"] == [
        {"name": "all", "definition": {}, "size": 4,
         "customers": {"totalCount": 4, "nodes": [{"firstName": "gb0"}]}},
        {"name": "britons", "definition": {"countries": ["GB"], "total_spend": {"min": "0"}},
         "size": 3, "customers": {"totalCount": 3, "nodes": [{"firstName": "gb0"}]}},
    ]  # fmt: skip
    response = await post(client, "{ segments { name } }")
    assert response.headers["X-SQL-Statements"] == "1"
    assert READS.answered - before[0] == {"sql": 3}
    assert READS.fallbacks - before[1] == {}


async def test_members_are_masked_for_an_analyst_and_audited_when_read_in_clear(
    db, members, database_url, settings
):
    sid, gb = members
    query = """query($id: ID!) { segment(id: $id) { customers(first: 3) {
        nodes { id firstName email } } } }"""
    before = READS.answered.copy()
    async with serving(database_url, settings, key=await api_key(db, Role.ANALYST)) as http:
        nodes = data(await gql(http, query, {"id": sid}))["segment"]["customers"]["nodes"]
    assert nodes == [
        {"id": str(c), "firstName": "g***", "email": "g***@example.com"} for c in gb
    ]  # fmt: skip
    assert READS.answered - before == {"sql": 1}
    since = await db.fetchval("SELECT clock_timestamp()")
    slow = settings.model_copy(update={"audit_flush_seconds": 3600})
    async with serving(database_url, slow, key=await api_key(db, Role.APP)) as http:
        small = query.replace("first: 3", "first: 2")
        nodes = data(await gql(http, small, {"id": sid}))["segment"]["customers"]["nodes"]
    assert nodes[0]["email"] == "gb0@example.com"
    found = await sql.audit.page(
        db, sql.audit.AuditFilter(kind=sql.audit.AuditKind.READ, since=since), limit=10
    )
    assert [(e.operation, set(e.customer_ids)) for e in found] == [("segment", set(gb[:2]))]


async def test_arguments_to_refuse_and_unknown_segments_fall_back(client, members):
    before = READS.fallbacks.copy()
    body = await gql(client, '{ segment(id: "1", name: "x") { id size } }')
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert data(await gql(client, '{ segment(name: "nobody") { id size } }')) == {"segment": None}
    assert data(await gql(client, '{ segment(name: "nobody") { id } }')) == {"segment": None}
    bad = """query($id: ID!) { segment(id: $id) {
        customers(first: 2, after: "x") { totalCount } } }"""
    body = await gql(client, bad, {"id": members[0]})
    assert error_codes(body) == ["INVALID_CURSOR"]
    assert READS.fallbacks - before == {
        "arguments to refuse": 1, "a segment that is not there": 1, "a cursor to refuse": 1,
    }  # fmt: skip


RFM = """query($id: ID!) { customer(id: $id) { id rfm { asOf recencyDays frequency monetary
  r f m code segment } } }"""
SUMMARY = """{ rfmSummary { asOf customers segments { segment customers share monetary
  averageRecencyDays averageFrequency } } }"""


async def add_rfm(db, customer: int, recency: int, frequency: int, monetary: str, rfm: str, seg):
    await db.execute(
        "INSERT INTO customer_rfm (customer_id, as_of, recency_days, frequency, monetary,"
        " r, f, m, segment) VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, $8, $9)",
        customer, T0, recency, frequency, monetary, *map(int, rfm), seg.value,
    )  # fmt: skip


async def test_rfm_is_a_row_of_the_snapshot_rendered_in_sql(client, db):
    scored, unscored = await add_customer(db), await add_customer(db)
    await add_rfm(db, scored, 3, 2, "30.50", "543", RfmSegment.CANT_LOSE_THEM)
    before = READS.answered.copy(), READS.fallbacks.copy()
    response = await post(client, RFM, {"id": str(scored)})
    assert response.headers["X-SQL-Statements"] == "1"  # no Python batch after it any more
    assert response.json()["data"]["customer"]["rfm"] == {
        "asOf": "2025-01-01T00:00:00+00:00", "recencyDays": 3, "frequency": 2,
        "monetary": "30.50", "r": 5, "f": 4, "m": 3, "code": "543", "segment": "CANT_LOSE_THEM",
    }  # fmt: skip
    assert data(await gql(client, RFM, {"id": str(unscored)}))["customer"]["rfm"] is None
    assert READS.answered - before[0] == {"sql": 2}
    assert READS.fallbacks - before[1] == {}


async def test_the_rfm_summary_writes_floats_as_python_does(client, db):
    empty = literals((await post(client, SUMMARY)).text)["data"]["rfmSummary"]
    assert (empty["asOf"], empty["customers"]) == (None, "int:0")
    assert {(s["share"], s["averageFrequency"], s["monetary"]) for s in empty["segments"]} == {
        ("float:0.0", "float:0.0", "0")
    }
    people = [await add_customer(db) for _ in range(3)]
    await add_rfm(db, people[0], 3, 1, "10.00", "555", RfmSegment.CHAMPIONS)
    await add_rfm(db, people[1], 5, 2, "20.50", "545", RfmSegment.CHAMPIONS)
    await add_rfm(db, people[2], 100, 1, "5.00", "111", RfmSegment.LOST)
    before = READS.answered.copy()
    response = await post(client, SUMMARY)
    assert response.headers["X-SQL-Statements"] == "1"
    summary = literals(response.text)["data"]["rfmSummary"]
    assert (summary["asOf"], summary["customers"]) == ("2025-01-01T00:00:00+00:00", "int:3")
    assert [s["segment"] for s in summary["segments"]] == [s.name for s in RfmSegment]
    by_name = {s.pop("segment"): s for s in summary["segments"]}
    assert by_name["CHAMPIONS"] == {
        "customers": "int:2", "share": "float:0.6666666666666666", "monetary": "30.50",
        "averageRecencyDays": "float:4.0", "averageFrequency": "float:1.5",
    }  # fmt: skip
    assert by_name["LOST"] == {
        "customers": "int:1", "share": "float:0.3333333333333333", "monetary": "5.00",
        "averageRecencyDays": "float:100.0", "averageFrequency": "float:1.0",
    }  # fmt: skip
    assert by_name["NEW"] == {
        "customers": "int:0", "share": "float:0.0", "monetary": "0",
        "averageRecencyDays": "float:0.0", "averageFrequency": "float:0.0",
    }  # fmt: skip
    assert READS.answered - before == {"sql": 1}
