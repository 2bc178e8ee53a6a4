"""The data-quality report through HTTP: the same numbers as the repository's."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from graphql import execute, get_operation_ast, parse

from api.compiled import compile_query
from api.context import Context
from api.schema import schema
from domain.quality import hours_between
from sql.executor import Database
from sql.quality import STATEMENTS_PER_REPORT, QualityRepository
from tests.factories import T0, add_customer, add_identity, add_interaction, add_purchase, days
from tests.http_client import data, gql

REPORT = """{ dataQuality {
  generatedAt
  tables { table rows fields { field filled fillRate invalid invalidRate
                               checks { name description count share } } }
  duplicates { kind description customers groups share }
  consistency { name description count share }
  freshness { table source rows lastRecordAt lastEventAt ageHours }
} }"""


@pytest.fixture
async def dataset(db):
    a = await add_customer(db, email="dup@example.com", phone="+12345")
    b = await add_customer(db, first_name="Bob ", email="bob@example.com")
    c = await add_customer(db, first_name="Cy", last_name=None, country=None)
    await add_identity(db, b, "email", "shop", "Dup@Example.com")
    await add_purchase(db, a, T0 + days(1), "10.00")
    await add_purchase(db, b, T0 - days(1), "4.50")
    await add_interaction(db, c, T0 + days(2), properties={"page": "/"})
    # (Updating purchases refreshes their stats: tamper with the stats after it.)
    await db.execute("UPDATE purchases SET recorded_at = $1", datetime(2025, 2, 1, tzinfo=UTC))
    await db.execute(
        "UPDATE customer_purchase_stats SET purchase_count = 7 WHERE customer_id = $1", a
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def test_data_quality_answers_the_repository_numbers(client, db, dataset):
    body = data(await gql(client, REPORT))["dataQuality"]
    expected = await QualityRepository(Database(db)).report()

    assert datetime.fromisoformat(body["generatedAt"]).utcoffset().total_seconds() == 0
    assert [
        (t["table"], t["rows"],
         [(f["field"], f["filled"], f["fillRate"], f["invalid"], f["invalidRate"],
           [(c["name"], c["description"], c["count"], c["share"]) for c in f["checks"]])
          for f in t["fields"]])
        for t in body["tables"]
    ] == [
        (t.table, t.rows,
         [(f.field, f.filled, f.fill_rate, f.invalid, f.invalid_rate,
           [(c.name, c.description, c.count, c.share) for c in f.checks])
          for f in t.fields])
        for t in expected.tables
    ]  # fmt: skip
    assert body["duplicates"] == [
        {"kind": d.kind.name, "description": d.description, "customers": d.customers,
         "groups": d.groups, "share": d.share}
        for d in expected.duplicates
    ]  # fmt: skip
    assert body["consistency"] == [
        {"name": c.name, "description": c.description, "count": c.count, "share": c.share}
        for c in expected.consistency
    ]
    assert [
        (f["table"], f["source"], f["rows"], f["lastRecordAt"], f["lastEventAt"])
        for f in body["freshness"]
    ] == [
        (f.table, f.source, f.rows, _iso(f.last_record_at), _iso(f.last_event_at))
        for f in expected.freshness
    ]


async def test_data_quality_known_answers(client, db, dataset):
    body = data(await gql(client, REPORT))["dataQuality"]
    tables = {t["table"]: t for t in body["tables"]}
    customers = {f["field"]: f for f in tables["customers"]["fields"]}
    assert tables["customers"]["rows"] == 3
    assert (customers["first_name"]["invalid"], customers["last_name"]["fillRate"]) == (1, 2 / 3)
    assert (customers["phone"]["filled"], customers["phone"]["invalid"]) == (1, 1)
    assert customers["phone"]["invalidRate"] == 1.0
    assert customers["email"]["fillRate"] == 2 / 3
    identity_checks = {c["name"]: c["count"] for f in tables["identities"]["fields"]
                       for c in f["checks"]}  # fmt: skip
    assert identity_checks["identities.value.email_not_lower_case"] == 1
    purchases = {f["field"]: f for f in tables["purchases"]["fields"]}
    assert purchases["purchased_at"]["checks"][1] == {
        "name": "purchases.purchased_at.before_customer_created",
        "description": "before the customer's created_at", "count": 1, "share": 0.5,
    }  # fmt: skip
    assert purchases["unit_price"]["fillRate"] == 0.0
    interactions = {f["field"]: f for f in tables["interactions"]["fields"]}
    assert interactions["properties"]["fillRate"] == 1.0

    duplicates = {d["kind"]: d for d in body["duplicates"]}
    assert (duplicates["EMAIL"]["customers"], duplicates["EMAIL"]["groups"]) == (2, 1)
    assert duplicates["PHONE"]["customers"] == 0
    consistency = {c["name"]: c for c in body["consistency"]}
    assert consistency["purchase_stats_mismatch"]["count"] == 1
    assert consistency["purchase_stats_mismatch"]["share"] == 0.5
    assert consistency["customers_without_identity"]["count"] == 2
    assert consistency["alias_chain"] == {
        "name": "alias_chain", "count": 0, "share": None,
        "description": consistency["alias_chain"]["description"],
    }  # fmt: skip

    generated = datetime.fromisoformat(body["generatedAt"])
    shop = next(f for f in body["freshness"] if f["table"] == "purchases")
    assert (shop["source"], shop["rows"]) == ("shop", 2)
    assert datetime.fromisoformat(shop["lastRecordAt"]) == datetime(2025, 2, 1, tzinfo=UTC)
    assert datetime.fromisoformat(shop["lastEventAt"]) == T0 + days(1)
    assert shop["ageHours"] == pytest.approx(
        hours_between(datetime(2025, 2, 1, tzinfo=UTC), generated)
    )
    assert Decimal(str(shop["ageHours"])) > 0


async def test_data_quality_statement_count(client, db):
    response = await client.post("/graphql", json={"query": "{ dataQuality { generatedAt } }"})
    assert response.status_code == 200, response.text
    assert int(response.headers["X-SQL-Statements"]) == STATEMENTS_PER_REPORT


async def test_compiled_fast_path_matches_graphql_core(db, dataset, settings):
    document = parse(REPORT)
    compiled = compile_query(schema._schema, document, get_operation_ast(document))
    assert compiled is not None
    fast = await compiled.execute(Context.for_request(db, settings), None)
    reference = await execute(
        schema._schema, document, context_value=Context.for_request(db, settings)
    )
    assert reference.errors is None

    def timeless(report: dict) -> dict:
        # Two reads, two clocks: everything but the report's time and the ages must agree.
        report = dict(report["dataQuality"], generatedAt=None)
        report["freshness"] = [dict(f, ageHours=None) for f in report["freshness"]]
        return report

    assert timeless(fast) == timeless(reference.data)
