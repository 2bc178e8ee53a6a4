"""Seeding writes whole, consistent data through COPY, and is reproducible."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingestion.seed import seed_database

NOW = datetime(2025, 6, 1, tzinfo=UTC)


async def test_seed_writes_what_it_reports(db):
    async with db.acquire() as conn:
        report = await seed_database(conn, customers=300, seed=5, now=NOW)
    counts = {
        t: await db.fetchval(f"SELECT count(*) FROM {t}")
        for t in ("customers", "identities", "products", "purchases", "interactions", "consents")
    }
    assert counts == {
        "customers": 300, "identities": report.identities, "products": report.products,
        "purchases": report.purchases, "interactions": report.interactions,
        "consents": report.consents,
    }  # fmt: skip
    assert report.purchases > 300
    assert await db.fetchval("SELECT max(purchased_at) FROM purchases") < NOW
    # The stats the API reads agree with the purchases.
    mismatches = await db.fetchval(
        """SELECT count(*) FROM customer_purchase_stats s
            JOIN (SELECT customer_id, count(*) n, sum(amount) total FROM purchases
                   GROUP BY customer_id) p USING (customer_id)
           WHERE s.purchase_count <> p.n OR s.total_spend <> p.total"""
    )
    assert mismatches == 0


async def test_seed_is_additive_and_reproducible(db):
    async with db.acquire() as conn:
        first = await seed_database(conn, customers=150, seed=9, now=NOW)
        second = await seed_database(conn, customers=150, seed=9, now=NOW)
    assert second.first_customer_id > first.last_customer_id
    assert second.products == 0  # the catalogue is shared
    sums = await db.fetch(
        """SELECT c.id > $1 AS later, sum(p.amount) AS total, count(*) AS n
             FROM purchases p JOIN customers c ON c.id = p.customer_id
            GROUP BY 1 ORDER BY 1""",
        first.last_customer_id,
    )
    assert sums[0]["total"] == sums[1]["total"]
    assert sums[0]["n"] == sums[1]["n"]


async def test_seed_refuses_nonsense(db):
    async with db.acquire() as conn:
        with pytest.raises(ValueError, match="positive"):
            await seed_database(conn, customers=0, seed=1)
        with pytest.raises(ValueError, match="timezone"):
            await seed_database(conn, customers=5, seed=1, now=datetime(2025, 1, 1))
