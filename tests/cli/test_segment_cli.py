"""`cdm rfm` and `cdm segment`: snapshots, sizes and consent-respecting exports."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from tests.cli.test_cli import assert_one_line_error, cdm
from tests.factories import add_consent, add_customer, add_purchase

NOW = datetime.now(UTC)


async def test_rfm_and_segment_exports_respect_consent(db, database_url, tmp_path):
    env = {"CDM_DATABASE_URL": database_url}
    ann = await add_customer(db, first_name="Ann", email="ann@example.org", country="GB")
    bob = await add_customer(db, first_name="Bob", email="bob@example.org", country="GB")
    await add_customer(db, first_name="Cid", country="DE")
    for who in (ann, bob):
        await add_purchase(db, who, NOW - timedelta(days=3), "25.00")
    await add_consent(db, ann, "email_marketing", True, NOW - timedelta(days=1))
    await add_consent(db, bob, "email_marketing", False, NOW - timedelta(days=1))

    result = cdm("rfm", env=env)
    assert result.returncode == 0, result.stderr
    assert "RFM of 2 customers" in result.stdout
    assert await db.fetchval("SELECT count(*) FROM customer_rfm") == 2

    await db.execute(
        "INSERT INTO segments (name, definition, created_by) VALUES ('uk', $1, 'test')",
        {"countries": ["GB"]},
    )
    listed = cdm("segment", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "uk" in listed.stdout

    out = tmp_path / "uk.csv"
    result = cdm("segment", "export", "uk", "--channel", "email", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())  # the console wraps long lines
    assert "Wrote 1 of 2 members" in said
    assert "1 without consent to email_marketing left out" in said
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["email"], r["rfm_segment"]) for r in rows] == [
        (str(ann), "ann@example.org", rows[0]["rfm_segment"])
    ]
    assert rows[0]["rfm_segment"]

    parquet = tmp_path / "uk.parquet"
    result = cdm(
        "segment", "export", "uk", "--purpose", "analytics", "--format", "parquet",
        "-o", str(parquet), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pq.read_table(parquet).to_pydict()
    assert sorted(table["id"]) == sorted([ann, bob])  # analytics: no channel consent needed
    assert table["total_spend"] == [25.0, 25.0]
    assert "email" not in table  # ... and no contact field

    sizes = await db.fetch("SELECT size FROM segment_sizes ORDER BY at")
    assert [r["size"] for r in sizes] == [2, 2, 2]  # list, and each export, record the size
    audit = await db.fetchval(
        "SELECT details FROM audit_log WHERE operation = 'segment export' ORDER BY id LIMIT 1"
    )
    assert audit["rows"] == 1

    missing = cdm("segment", "export", "nope", "--channel", "email", env=env)
    assert_one_line_error(missing, "no segment named 'nope'")
    bad = cdm("segment", "export", "uk", "--channel", "fax", env=env)
    assert_one_line_error(bad, "--channel must be one of")


CONTACT_FIELDS = {"first_name", "last_name", "email", "phone"}


async def test_an_export_needs_a_channel_or_the_analytics_purpose(db, database_url, tmp_path):
    env = {"CDM_DATABASE_URL": database_url}
    ann = await add_customer(db, first_name="Ann", email="ann@example.org", country="GB")
    bob = await add_customer(db, first_name="Bob", email="bob@example.org", country="GB")
    eve = await add_customer(db, first_name="Eve", email="eve@example.org", country="GB")
    for who in (ann, bob, eve):
        await add_purchase(db, who, NOW - timedelta(days=3), "25.00")
    await add_consent(db, bob, "email_marketing", False, NOW - timedelta(days=1))
    await add_consent(db, eve, "analytics", False, NOW - timedelta(days=1))
    await db.execute(
        "INSERT INTO segments (name, definition, created_by) VALUES ('uk', $1, 'test')",
        {"countries": ["GB"]},
    )
    out = tmp_path / "uk.csv"
    since = await db.fetchval("SELECT clock_timestamp()")  # the log outlives each test's data

    # Neither: a usage error naming both ways, and nothing written or recorded.
    bare = cdm("segment", "export", "uk", "-o", str(out), env=env)
    assert bare.returncode == 2
    assert_one_line_error(bare, "--channel", "--purpose analytics")
    assert not out.exists()
    both = cdm("segment", "export", "uk", "--channel", "email", "--purpose", "analytics", env=env)
    assert both.returncode == 2
    assert_one_line_error(both, "not both")
    unknown = cdm("segment", "export", "uk", "--purpose", "marketing", env=env)
    assert unknown.returncode == 2
    exports = "SELECT count(*) FROM audit_log WHERE operation = 'segment export' AND at >= $1"
    assert await db.fetchval(exports, since) == 0

    # Analytics: ids and non-contact attributes of everyone but who refused analytics.
    result = cdm("segment", "export", "uk", "--purpose", "analytics", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "Wrote 2 of 3 members" in said
    assert "1 who refused analytics left out" in said
    with out.open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert not CONTACT_FIELDS & set(reader.fieldnames or [])
    assert [(r["id"], r["country"], r["total_spend"]) for r in rows] == [
        (str(ann), "GB", "25.00"), (str(bob), "GB", "25.00"),
    ]  # fmt: skip
    assert "@" not in out.read_text()
    entry = await db.fetchrow(
        "SELECT actor, kind, details, customer_ids FROM audit_log"
        " WHERE operation = 'segment export' ORDER BY id DESC LIMIT 1"
    )
    assert entry["actor"].startswith("cli:")
    assert entry["kind"] == "command"
    segment_id = await db.fetchval("SELECT id FROM segments WHERE name = 'uk'")
    assert entry["details"] == {
        "segment": segment_id, "segmentName": "uk", "purpose": "analytics",
        "contactFields": False, "rows": 2,
    }  # fmt: skip
    assert entry["customer_ids"] == [ann, bob]

    # A channel: contact fields, only who consented (a refusal or no decision is left out).
    result = cdm("segment", "export", "uk", "--channel", "email", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    with out.open() as handle:
        assert list(csv.DictReader(handle)) == []
    assert bob not in (await db.fetchval(
        "SELECT customer_ids FROM audit_log WHERE operation = 'segment export'"
        " ORDER BY id DESC LIMIT 1"
    ))  # fmt: skip
