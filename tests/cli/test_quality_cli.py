"""`cdm quality` as a real process on a real database."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from tests.cli.test_cli import assert_one_line_error, cdm
from tests.factories import T0, add_customer, add_identity, add_purchase, days


async def test_json_report_parses_and_holds_the_known_answers(db, database_url):
    a = await add_customer(db, email="dup@example.com", phone="+12345")
    b = await add_customer(db, first_name=" Bea", email="bea@example.com")
    await add_identity(db, b, "email", "crm", "DUP@example.com")
    await add_purchase(db, a, T0 + days(1), "10.00")
    await db.execute("UPDATE purchases SET recorded_at = $1", datetime(2025, 2, 1, tzinfo=UTC))
    await db.execute("UPDATE customer_purchase_stats SET total_spend = 1 WHERE customer_id = $1", a)

    result = cdm("quality", "--json", env={"CDM_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)  # stdout is the JSON and nothing else
    assert datetime.fromisoformat(report["generated_at"]).utcoffset().total_seconds() == 0

    customers = next(t for t in report["tables"] if t["table"] == "customers")
    fields = {f["field"]: f for f in customers["fields"]}
    assert customers["rows"] == 2
    assert (fields["first_name"]["invalid"], fields["first_name"]["invalid_rate"]) == (1, 0.5)
    assert fields["phone"]["fill_rate"] == 0.5
    assert fields["phone"]["checks"] == [{
        "name": "customers.phone.not_e164", "count": 1, "share": 1.0,
        "description": fields["phone"]["checks"][0]["description"],
    }]  # fmt: skip
    identities = next(t for t in report["tables"] if t["table"] == "identities")
    value = identities["fields"][0]
    assert (value["field"], value["invalid"]) == ("value", 1)  # the upper-case address

    duplicates = {d["kind"]: d for d in report["duplicates"]}
    assert (duplicates["email"]["customers"], duplicates["email"]["share"]) == (2, 1.0)
    consistency = {c["name"]: c["count"] for c in report["consistency"]}
    assert consistency["purchase_stats_mismatch"] == 1
    assert consistency["customers_without_identity"] == 1
    assert [(f["table"], f["source"], f["rows"], f["last_record_at"])
            for f in report["freshness"]] == [
        ("identities", "crm", 1, report["freshness"][0]["last_record_at"]),
        ("purchases", "shop", 1, "2025-02-01T00:00:00+00:00"),
    ]  # fmt: skip
    assert report["freshness"][1]["age_hours"] > 0


async def test_table_report(db, database_url):
    await add_customer(db, phone="+12345")
    result = cdm("quality", env={"CDM_DATABASE_URL": database_url, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    expected = ["Completeness and validity", "not_e164 1", "Duplicate candidates",
                "customers_without_identity", "Freshness per source", "no data yet"]  # fmt: skip
    for fragment in expected:
        assert fragment in result.stdout, fragment


def test_bad_option_is_one_line():
    result = cdm("quality", "--bogus")
    assert_one_line_error(result, "--bogus")
    assert result.returncode == 2
    assert result.stdout == ""


def test_unreachable_database_is_one_line():
    result = cdm("quality", "--json",
                 env={"CDM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})  # fmt: skip
    assert_one_line_error(result, "cannot reach the database")
    assert result.stdout == ""
