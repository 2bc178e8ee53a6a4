"""Small hand-made data for tests, written with plain SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

T0 = datetime(2025, 1, 1, tzinfo=UTC)


async def add_customer(db: asyncpg.Pool, **fields: Any) -> int:
    values = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": None,
        "phone": None,
        "country": "GB",
        "created_at": T0,
        **fields,
    }
    values.setdefault("updated_at", values["created_at"])
    cols = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return await db.fetchval(
        f"INSERT INTO customers ({cols}) VALUES ({params}) RETURNING id", *values.values()
    )


async def add_product(
    db: asyncpg.Pool, sku: str, category: str = "books", price: str = "10.00"
) -> int:
    return await db.fetchval(
        "INSERT INTO products (sku, name, category, price, currency) "
        "VALUES ($1, $2, $3, $4, 'EUR') RETURNING id",
        sku, f"Product {sku}", category, Decimal(price),
    )  # fmt: skip


async def add_purchase(
    db: asyncpg.Pool,
    customer_id: int,
    at: datetime,
    amount: str = "10.00",
    *,
    product_id: int | None = None,
    order_ref: str | None = None,
    external_id: str | None = None,
    quantity: int = 1,
) -> int:
    return await db.fetchval(
        "INSERT INTO purchases (customer_id, product_id, order_ref, quantity, amount, currency,"
        " channel, purchased_at, source, external_id)"
        " VALUES ($1, $2, $3, $4, $5, 'EUR', 'web', $6, 'shop', $7) RETURNING id",
        customer_id, product_id, order_ref, quantity, Decimal(amount), at,
        external_id or f"p-{customer_id}-{at.timestamp()}-{amount}",
    )  # fmt: skip


async def add_interaction(
    db: asyncpg.Pool,
    customer_id: int,
    at: datetime,
    kind: str = "page_view",
    channel: str = "web",
    properties: dict | None = None,
) -> int:
    return await db.fetchval(
        "INSERT INTO interactions (customer_id, occurred_at, channel, kind, properties, source,"
        " external_id) VALUES ($1, $2, $3, $4, $5, 'web', $6) RETURNING id",
        customer_id, at, channel, kind, properties or {}, f"i-{customer_id}-{at.timestamp()}",
    )  # fmt: skip


async def add_identity(
    db: asyncpg.Pool, customer_id: int, kind: str, source: str, value: str
) -> None:
    await db.execute(
        "INSERT INTO identities (customer_id, kind, source, value) VALUES ($1, $2, $3, $4)",
        customer_id, kind, source, value,
    )  # fmt: skip


async def add_consent(
    db: asyncpg.Pool, customer_id: int, purpose: str, granted: bool, at: datetime
) -> None:
    await db.execute(
        "INSERT INTO consents (customer_id, purpose, granted, source, recorded_at)"
        " VALUES ($1, $2, $3, 'web', $4)",
        customer_id, purpose, granted, at,
    )  # fmt: skip


def days(n: float) -> timedelta:
    return timedelta(days=n)
