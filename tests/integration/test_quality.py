"""The data-quality report on small hand-made datasets with known answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from domain.quality import DuplicateKind, hours_between
from sql.executor import Database
from sql.quality import STATEMENTS_PER_REPORT, QualityRepository
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


async def report_of(db):
    return await QualityRepository(Database(db)).report()


def future() -> datetime:
    return datetime.now(UTC) + days(30)


async def add_line(db, customer_id, *, quantity, unit_price, amount, at=None, **extra):
    """A purchase with every column under the test's control."""
    at = at or T0 + days(1)
    row = {
        "customer_id": customer_id, "quantity": quantity, "amount": Decimal(amount),
        "unit_price": None if unit_price is None else Decimal(unit_price), "currency": "EUR",
        "channel": "web", "purchased_at": at, "source": "shop",
        "external_id": f"l-{customer_id}-{quantity}-{amount}-{at.timestamp()}", **extra,
    }  # fmt: skip
    cols = ", ".join(row)
    params = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await db.execute(f"INSERT INTO purchases ({cols}) VALUES ({params})", *row.values())


async def add_merge(db, survivor: int, merged: list[int], *, undone: bool = False) -> int:
    return await db.fetchval(
        "INSERT INTO merges (survivor_id, merged_ids, evidence, plan, before_images, merged_by,"
        " undone_at) VALUES ($1, $2, '{}', '{}', '{}', 'test', $3) RETURNING id",
        survivor, merged, T0 if undone else None,
    )  # fmt: skip


async def test_an_empty_database_reports_zeros(db):
    report = await report_of(db)
    # The database's clock (the test server may be another machine: allow some skew).
    assert abs(report.generated_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert report.generated_at.utcoffset() == timedelta(0)
    assert [t.table for t in report.tables] == [
        "customers", "identities", "purchases", "interactions", "consents",
    ]  # fmt: skip
    for table in report.tables:
        assert table.rows == 0
        for f in table.fields:
            assert (f.filled, f.invalid, f.fill_rate, f.invalid_rate) == (0, 0, None, None)
            assert all(c.count == 0 and c.share is None for c in f.checks)
    assert [(d.kind, d.customers, d.groups, d.share) for d in report.duplicates] == [
        (DuplicateKind.EMAIL, 0, 0, None), (DuplicateKind.PHONE, 0, 0, None),
        (DuplicateKind.NAME_COUNTRY, 0, 0, None),
    ]  # fmt: skip
    assert all(c.count == 0 for c in report.consistency)
    assert report.freshness == ()


async def test_customer_completeness_and_standard_form(db):
    await add_customer(db, email="ada@example.com", phone="+447700900123",
                       birth_date=date(1990, 5, 1))  # fmt: skip
    await add_customer(db, first_name=" Bob", last_name="Smith  Jr", email="not-an-email",
                       phone="+12345", country="XX",
                       birth_date=date.today() + timedelta(days=400))  # fmt: skip
    await add_customer(db, first_name="Cy", last_name=None, country=None)
    await add_customer(db, first_name="Di\tAna", created_at=future())
    customers = (await report_of(db)).table("customers")
    assert customers.rows == 4

    first = customers.field("first_name")
    assert (first.filled, first.fill_rate, first.invalid) == (4, 1.0, 2)  # " Bob", "Di\tAna"
    assert first.check("untidy_whitespace").count == 2
    assert first.check("untidy_whitespace").share == 0.5
    last = customers.field("last_name")
    assert (last.filled, last.fill_rate, last.invalid) == (3, 0.75, 1)
    email = customers.field("email")
    assert (email.filled, email.fill_rate, email.invalid, email.invalid_rate) == (2, 0.5, 1, 0.5)
    assert email.check("customers.email.malformed").count == 1
    assert email.check("not_lower_case").count == 0
    phone = customers.field("phone")
    assert (phone.filled, phone.invalid) == (2, 1)  # +12345: the schema's shape, not E.164
    assert phone.check("not_e164").name == "customers.phone.not_e164"
    country = customers.field("country")
    assert (country.filled, country.invalid) == (3, 1)  # XX has the shape but is no country
    birth = customers.field("birth_date")
    assert (birth.filled, birth.fill_rate, birth.invalid) == (2, 0.5, 1)
    created = customers.field("created_at")
    assert (created.filled, created.invalid) == (4, 1)


async def test_upper_case_emails_are_counted_where_they_can_exist(db):
    # The customers table refuses them outright; identities keep what a source sent.
    with pytest.raises(asyncpg.CheckViolationError):
        await add_customer(db, email="Ada@Example.com")
    cid = await add_customer(db, email="ada@example.com")
    await add_identity(db, cid, "email", "crm", "Ada@Example.com")
    await add_identity(db, cid, "email", "shop", "ada@example.com")
    await add_identity(db, cid, "email", "web", "ada(at)example")
    await add_identity(db, cid, "phone", "crm", "+49 30 1234567")
    await add_identity(db, cid, "phone", "shop", "+49301234567")
    await add_identity(db, cid, "external_id", "crm", "CRM-1 ")
    await add_identity(db, cid, "cookie", "web", "c0ffee")
    report = await report_of(db)
    value = report.table("identities").field("value")
    assert (value.filled, value.invalid) == (7, 4)
    assert {c.name: c.count for c in value.checks} == {
        "identities.value.email_not_lower_case": 1,
        "identities.value.email_malformed": 1,
        "identities.value.phone_not_e164": 1,
        "identities.value.untidy_whitespace": 1,
    }
    assert report.table("customers").field("email").invalid == 0


async def test_purchase_fields(db):
    early = await add_customer(db)
    late = await add_customer(db, created_at=T0 + days(10))
    product = await add_product(db, "B-1")
    await add_line(db, early, quantity=2, unit_price="5.00", amount="10.00",
                   product_id=product, order_ref="o-1")  # fmt: skip
    await add_line(db, early, quantity=2, unit_price="5.00", amount="12.00", order_ref="o-2")
    await add_line(db, early, quantity=1, unit_price=None, amount="7.00")
    await add_line(db, early, quantity=1, unit_price=None, amount="1.00", at=future())
    await add_line(db, late, quantity=1, unit_price="3.00", amount="3.00", at=T0 + days(2),
                   currency="ABC")  # fmt: skip
    purchases = (await report_of(db)).table("purchases")
    assert purchases.rows == 5
    assert purchases.field("product_id").filled == 1
    assert purchases.field("order_ref").fill_rate == 0.4
    unit_price = purchases.field("unit_price")
    assert (unit_price.filled, unit_price.fill_rate) == (3, 0.6)
    amount = purchases.field("amount")
    assert (amount.invalid, amount.check("not_quantity_times_unit_price").count) == (1, 1)
    assert purchases.field("currency").invalid == 1
    at = purchases.field("purchased_at")
    assert at.invalid == 2
    assert at.check("in_future").count == 1
    assert at.check("before_customer_created").count == 1
    assert at.check("before_customer_created").share == 0.2


async def test_interactions_and_consents(db):
    cid = await add_customer(db)
    other = await add_customer(db)
    await add_interaction(db, cid, T0 + days(1), properties={"page": "/"})
    await add_interaction(db, cid, T0 + days(2))
    await add_interaction(db, cid, T0 - days(1))
    await add_interaction(db, cid, future())
    await add_consent(db, cid, "email_marketing", True, T0)
    await add_consent(db, cid, "email_marketing", False, future())
    report = await report_of(db)
    interactions = report.table("interactions")
    properties = interactions.field("properties")
    assert (properties.filled, properties.fill_rate) == (1, 0.25)
    occurred = interactions.field("occurred_at")
    assert occurred.invalid == 2
    assert occurred.check("in_future").count == 1
    assert occurred.check("before_customer_created").count == 1
    recorded = report.table("consents").field("recorded_at")
    assert (recorded.invalid, recorded.check("in_future").share) == (1, 0.5)
    # Two decisions at one instant for one purpose: which holds is a tie-break.
    await add_consent(db, other, "sms", True, T0)
    await db.execute(
        "INSERT INTO consents (customer_id, purpose, granted, source, recorded_at)"
        " VALUES ($1, 'sms', false, 'store', $2)", other, T0,
    )  # fmt: skip
    conflict = (await report_of(db)).consistency_check("consent_conflicting_decisions")
    assert (conflict.count, conflict.population) == (2, 4)


async def test_duplicate_candidates(db):
    a = await add_customer(db, email="dup@example.com", phone="+4930123456")
    b = await add_customer(db, first_name="Bea", email="solo@example.com")
    await add_identity(db, b, "email", "shop", " DUP@example.com")  # same address, other form
    c = await add_customer(db, first_name="ada", last_name="LOVELACE ", country="GB")
    await add_identity(db, c, "phone", "crm", "+49 30 123456")
    await add_customer(db, first_name="Ada", last_name="Lovelace", country="FR")
    await add_customer(db, first_name="Bea", last_name="Lovelace", country=None)
    # The same customer known twice by one address is no duplicate.
    await add_identity(db, a, "email", "crm", "dup@example.com")
    report = await report_of(db)
    email = report.duplicate(DuplicateKind.EMAIL)
    assert (email.customers, email.groups, email.share) == (2, 1, 0.4)
    phone = report.duplicate("phone")
    assert (phone.customers, phone.groups) == (2, 1)
    names = report.duplicate("name_country")
    assert (names.customers, names.groups) == (2, 1)  # a and c: Ada Lovelace, GB


async def test_consistency_checks(db):
    bought = await add_customer(db)
    tampered = await add_customer(db)
    dropped = await add_customer(db)
    idle = await add_customer(db)
    await add_identity(db, bought, "email", "shop", "b@example.com")
    for cid in (bought, tampered, dropped):
        await add_purchase(db, cid, T0, "10.00")
        await add_purchase(db, cid, T0 + days(1), "5.00")
    clean = await report_of(db)
    assert {c.name: c.count for c in clean.consistency} == {
        "customers_without_identity": 3, "purchase_stats_mismatch": 0,
        "purchase_stats_missing": 0, "purchase_stats_without_purchases": 0,
        "alias_chain": 0, "alias_of_live_customer": 0, "alias_of_undone_merge": 0,
        "merged_id_without_alias": 0, "consent_conflicting_decisions": 0,
    }  # fmt: skip
    assert clean.consistency_check("customers_without_identity").share == 0.75

    await db.execute(
        "UPDATE customer_purchase_stats SET total_spend = total_spend + 1 WHERE customer_id = $1",
        tampered,
    )
    await db.execute("DELETE FROM customer_purchase_stats WHERE customer_id = $1", dropped)
    await db.execute(
        "INSERT INTO customer_purchase_stats (customer_id, purchase_count, total_spend,"
        " first_purchase_at, last_purchase_at, currencies)"
        " SELECT $1, purchase_count, total_spend, first_purchase_at, last_purchase_at, currencies"
        " FROM customer_purchase_stats WHERE customer_id = $2",
        idle, bought,
    )  # fmt: skip
    report = await report_of(db)
    mismatch = report.consistency_check("purchase_stats_mismatch")
    assert (mismatch.count, mismatch.population) == (1, 3)  # tampered; idle has no purchases
    assert report.consistency_check("purchase_stats_missing").count == 1
    assert report.consistency_check("purchase_stats_without_purchases").count == 1


async def test_alias_checks(db):
    survivor = await add_customer(db)
    middle = await add_customer(db)  # merged into survivor, yet still here
    restored = await add_customer(db)
    merge = await add_merge(db, survivor, [middle, 901])
    undone = await add_merge(db, survivor, [restored], undone=True)
    lost = await add_merge(db, survivor, [902])
    await db.executemany(
        "INSERT INTO customer_aliases (merged_id, customer_id, merge_id) VALUES ($1, $2, $3)",
        [(middle, survivor, merge), (901, middle, merge), (restored, survivor, undone)],
    )
    report = await report_of(db)
    counts = {c.name: (c.count, c.population) for c in report.consistency}
    assert counts["alias_chain"] == (1, 3)  # 901 -> middle, which is merged away itself
    assert counts["alias_of_live_customer"] == (2, 3)  # middle and restored still exist
    assert counts["alias_of_undone_merge"] == (1, 3)
    assert counts["merged_id_without_alias"] == (1, 3)  # 902: merged by `lost`, no alias
    assert lost


async def test_freshness_per_source(db):
    cid = await add_customer(db)
    seen = datetime(2025, 3, 1, 12, tzinfo=UTC)
    for source, recorded, at in [
        ("shop", seen - days(1), T0 + days(3)),
        ("shop", seen, T0 + days(2)),
        ("pos", seen - days(2), T0 + days(1)),
    ]:
        await add_line(db, cid, quantity=1, unit_price=None, amount="1.00", at=at,
                       source=source, recorded_at=recorded)  # fmt: skip
    await add_interaction(db, cid, T0 + days(5))
    await db.execute("UPDATE interactions SET recorded_at = $1", seen + timedelta(hours=6))
    await add_consent(db, cid, "email_marketing", True, seen - timedelta(hours=1))
    await add_identity(db, cid, "email", "crm", "x@example.com")
    await db.execute("UPDATE identities SET created_at = $1", seen)

    report = await report_of(db)
    assert [(f.table, f.source, f.rows) for f in report.freshness] == [
        ("identities", "crm", 1), ("purchases", "pos", 1), ("purchases", "shop", 2),
        ("interactions", "web", 1), ("consents", "web", 1),
    ]  # fmt: skip
    shop = report.source("purchases", "shop")
    assert shop.last_record_at == seen
    assert shop.last_event_at == T0 + days(3)  # the newest purchase, whichever record brought it
    assert shop.age_hours == hours_between(seen, report.generated_at)
    assert report.source("purchases", "pos").last_record_at == seen - days(2)
    web = report.source("interactions", "web")
    assert (web.last_record_at, web.last_event_at) == (seen + timedelta(hours=6), T0 + days(5))
    consent = report.source("consents", "web")
    assert (consent.last_record_at, consent.last_event_at) == (seen - timedelta(hours=1), None)
    assert report.table("purchases").rows == 3


async def test_one_snapshot_and_counted_statements(db):
    await add_customer(db)
    database = Database(db)
    await QualityRepository(database).report()
    assert database.statements == STATEMENTS_PER_REPORT
    # The read-only transaction ended with the report: the pooled connection writes again.
    await add_customer(db)
    assert await db.fetchval("SELECT count(*) FROM customers") == 2
