"""The schema makes bad data impossible and keeps purchase aggregates in step."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from tests.factories import T0, add_customer, add_product, add_purchase, days


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("quantity", 0),
        ("amount", Decimal("-1")),
        ("currency", "eur"),
        ("channel", "carrier-pigeon"),
    ],
)
async def test_purchase_constraints(db, column, value):
    cid = await add_customer(db)
    row = {
        "customer_id": cid, "quantity": 1, "amount": Decimal(1), "currency": "EUR",
        "channel": "web", "purchased_at": T0, "source": "shop", "external_id": "x",
    }  # fmt: skip
    row[column] = value
    cols = ", ".join(row)
    params = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(f"INSERT INTO purchases ({cols}) VALUES ({params})", *row.values())


@pytest.mark.parametrize(
    ("column", "value"),
    [("email", "Upper@Example.com"), ("phone", "0301234"), ("country", "de"), ("first_name", "")],
)
async def test_customer_constraints(db, column, value):
    with pytest.raises(asyncpg.CheckViolationError):
        await add_customer(db, **{column: value})


async def test_purchase_is_idempotent_per_source_external_id(db):
    cid = await add_customer(db)
    await add_purchase(db, cid, T0, external_id="o-1")
    with pytest.raises(asyncpg.UniqueViolationError):
        await add_purchase(db, cid, T0 + days(1), external_id="o-1")


async def test_purchase_needs_a_customer(db):
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await add_purchase(db, 12345, T0)


async def test_identity_unique_per_kind_source_value(db):
    a, b = await add_customer(db), await add_customer(db)
    sql = (
        "INSERT INTO identities (customer_id, kind, source, value)"
        " VALUES ($1, 'email', 'shop', 'x@y.z')"
    )
    await db.execute(sql, a)
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(sql, b)


async def test_timestamps_are_stored_and_returned_in_utc(db):
    cid = await add_customer(db)
    await db.execute("SET timezone = 'America/New_York'")  # a session in another zone
    await add_purchase(db, cid, T0)
    stored = await db.fetchval("SELECT purchased_at FROM purchases WHERE customer_id = $1", cid)
    assert stored == T0
    assert stored.utcoffset().total_seconds() == 0


async def test_purchase_stats_follow_inserts_updates_and_deletes(db):
    cid = await add_customer(db)
    toys = await add_product(db, "T-1", "toys")
    await db.executemany(
        "INSERT INTO purchases (customer_id, product_id, order_ref, amount, currency, channel,"
        " purchased_at, source, external_id) VALUES ($1, $2, $3, $4, 'EUR', 'web', $5, 'shop', $6)",
        [
            (cid, toys, "o1", Decimal("10.00"), T0, "a"),
            (cid, None, "o1", Decimal("2.50"), T0, "b"),
            (cid, toys, "o2", Decimal("7.00"), T0 + days(5), "c"),
        ],
    )
    stats = await db.fetchrow("SELECT * FROM customer_purchase_stats WHERE customer_id = $1", cid)
    assert (stats["purchase_count"], stats["total_spend"]) == (3, Decimal("19.50"))
    assert (stats["first_purchase_at"], stats["last_purchase_at"]) == (T0, T0 + days(5))
    assert stats["currencies"] == ["EUR"]
    # A second statement adds to the running totals.
    await add_purchase(db, cid, T0 - days(1), "0.50", external_id="d")
    stats = await db.fetchrow("SELECT * FROM customer_purchase_stats WHERE customer_id = $1", cid)
    assert (stats["purchase_count"], stats["total_spend"]) == (4, Decimal("20.00"))
    assert stats["first_purchase_at"] == T0 - days(1)
    await db.execute("DELETE FROM purchases WHERE external_id = 'd'")

    await db.execute("UPDATE purchases SET amount = 1 WHERE external_id = 'a'")
    assert await db.fetchval(
        "SELECT total_spend FROM customer_purchase_stats WHERE customer_id = $1", cid
    ) == Decimal("10.50")

    await db.execute("DELETE FROM purchases WHERE customer_id = $1", cid)
    assert await db.fetchval("SELECT count(*) FROM customer_purchase_stats") == 0


async def test_records_map_onto_domain_fields_by_name(db):
    """Repositories unpack records positionally: the statements' columns must match."""
    from dataclasses import fields

    from domain.commerce import Product, Purchase
    from domain.interactions import Interaction
    from sql.queries import query

    cid = await add_customer(db)
    pid = await add_product(db, "M-1")
    await add_purchase(db, cid, T0, product_id=pid)
    await db.execute(
        "INSERT INTO interactions (customer_id, occurred_at, channel, kind, source, external_id)"
        " VALUES ($1, $2, 'web', 'page_view', 'web', 'i1')", cid, T0,
    )  # fmt: skip
    for name, args, cls in [
        ("purchases_page_by_customer_ids", ([cid], None, None, None, None, 5, True), Purchase),
        (
            "interactions_page_by_customer_ids",
            ([cid], None, None, None, None, 5, None),
            Interaction,
        ),
        ("products_by_ids", ([pid],), Product),
    ]:
        record = await db.fetchrow(query(name), *args)
        names = [f.name for f in fields(cls)]
        assert list(record.keys())[: len(names)] == names, name
