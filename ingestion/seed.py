"""``cdm seed``: bulk-load synthetic customers and their histories into PostgreSQL.

The data comes from :mod:`ingestion.synthetic`; this module only turns its columns into
COPY records and writes them.

* **Additive.** Seeding never deletes anything. New customer ids are reserved as one block
  after both the highest existing id and the identity sequence's position, so a seed can
  run on a database that already holds customers (the sequence is moved past the block,
  so later inserts do not collide). Products are matched by SKU: the fixed catalogue is
  inserted once and reused by later runs. Re-running with the same seed adds customers
  with the same behaviour again under new ids, e-mails and identities: use another seed
  for more varied data.
* **Chunked.** Customers are generated and written ``CHUNK_SIZE`` at a time, each chunk in
  its own transaction, so an interrupted seed leaves only whole chunks behind. The next
  chunk is generated in a worker thread while the database ingests the current one.
* **COPY only.** Every table is written with binary COPY. Interactions go through a temporary
  table holding an index into the property vocabulary and are moved into ``interactions``
  with one ``INSERT ... SELECT`` per chunk: the jsonb values are then parsed once per
  distinct value rather than once per row, and the path does not depend on the jsonb codec
  the caller's connection uses (a text-format codec cannot take part in binary COPY).
* ``customer_purchase_stats`` is maintained by the purchases statement-level trigger, which
  fires once per chunk's COPY (one set-based refresh for the chunk's customers).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import numpy as np

from ingestion.synthetic import (
    CHUNK_SIZE,
    CURRENCY,
    PURCHASE_SOURCE,
    Catalogue,
    ChunkColumns,
    World,
    build_world,
    generate_chunk,
)

_CUSTOMER_COLUMNS = (
    "id", "first_name", "last_name", "email", "phone", "country", "birth_date", "created_at",
    "updated_at",
)  # fmt: skip
_IDENTITY_COLUMNS = ("customer_id", "kind", "source", "value", "created_at")
_PURCHASE_COLUMNS = (
    "customer_id", "product_id", "order_ref", "quantity", "unit_price", "amount", "currency",
    "channel", "purchased_at", "source", "external_id", "recorded_at",
)  # fmt: skip
_CONSENT_COLUMNS = ("customer_id", "purpose", "granted", "source", "recorded_at")
_INTERACTION_COLUMNS = (
    "customer_id", "occurred_at", "channel", "kind", "property", "source", "external_id",
    "recorded_at",
)  # fmt: skip

# Session-local staging tables (TEMP): cdm_seed_properties, cdm_seed_interactions and
# cdm_seed_products. Their names are spelled out in the SQL below.

_CREATE_STAGING = """
CREATE TEMP TABLE cdm_seed_properties (idx integer PRIMARY KEY, value jsonb NOT NULL);
CREATE TEMP TABLE cdm_seed_interactions (
    customer_id bigint, occurred_at timestamptz, channel text, kind text, property integer,
    source text, external_id text, recorded_at timestamptz
) ON COMMIT DELETE ROWS;
"""
_MOVE_INTERACTIONS = """
INSERT INTO interactions (customer_id, occurred_at, channel, kind, properties, source,
                          external_id, recorded_at)
SELECT s.customer_id, s.occurred_at, s.channel, s.kind, p.value, s.source, s.external_id,
       s.recorded_at
  FROM cdm_seed_interactions s JOIN cdm_seed_properties p ON p.idx = s.property
"""
# Reserve ids after both the highest id and the sequence's position, and move the sequence
# past the block. The caller holds a lock that keeps other inserts out meanwhile.
_RESERVE_IDS = """
SELECT setval(seq, greatest(coalesce((SELECT max(id) FROM customers), 0),
                            coalesce(pg_sequence_last_value(seq), 0)) + $1::bigint)
  FROM (SELECT pg_get_serial_sequence('customers', 'id')::regclass AS seq) s
"""
_ANALYZE = (
    "ANALYZE customers, identities, products, purchases, interactions, consents, "
    "customer_purchase_stats"
)


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What a seed added: rows per table, the customer id range, and how long it took."""

    customers: int
    identities: int
    products: int  # newly inserted; 0 when the catalogue was already there
    purchases: int
    interactions: int
    consents: int
    first_customer_id: int
    last_customer_id: int
    elapsed_seconds: float


def default_now() -> datetime:
    """The default reference time: today 00:00 UTC (so a day's seeds agree)."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def seed_database(
    conn: asyncpg.Connection,
    *,
    customers: int,
    seed: int,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Add ``customers`` synthetic customers with their identities, purchases, interactions
    and consents (and the product catalogue if missing); return what was added.

    Deterministic for the same (customers, seed, now) on the same starting database.
    ``now`` (timezone-aware; default :func:`default_now`) is where the histories end:
    nothing is dated at or after it. ``progress`` gets the number of customers done after
    each committed chunk. Runs ``ANALYZE`` at the end.
    """
    if customers <= 0:
        raise ValueError("customers must be positive")
    if seed < 0:
        raise ValueError("seed must be non-negative")
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    started = time.perf_counter()
    world = build_world(now or default_now())

    products, product_ids = await _ensure_products(conn, world.catalogue)
    first_id = await _reserve_customer_ids(conn, customers)
    chunks = [
        (k, first_id + k * CHUNK_SIZE, min(CHUNK_SIZE, customers - k * CHUNK_SIZE))
        for k in range(-(-customers // CHUNK_SIZE))
    ]
    totals = dict.fromkeys(("identities", "purchases", "interactions", "consents"), 0)

    def prepare(chunk: int, first: int, n: int) -> _ChunkRecords:
        columns = generate_chunk(world, first, n, seed=seed, chunk=chunk)
        return _ChunkRecords.of(columns, product_ids)

    await conn.execute(_CREATE_STAGING)
    pending: asyncio.Future[_ChunkRecords] | None = None
    try:
        await _load_properties(conn, world)
        pending = asyncio.ensure_future(asyncio.to_thread(prepare, *chunks[0]))
        done = 0
        for i in range(len(chunks)):
            records = await pending
            # Generate the next chunk while the server ingests this one.
            pending = (
                asyncio.ensure_future(asyncio.to_thread(prepare, *chunks[i + 1]))
                if i + 1 < len(chunks)
                else None
            )
            await _write_chunk(conn, records)
            for table in totals:
                totals[table] += len(getattr(records, table))
            done += records.size
            if progress is not None:
                progress(done)
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await conn.execute("DROP TABLE IF EXISTS cdm_seed_interactions, cdm_seed_properties")
    await conn.execute(_ANALYZE)
    return SeedReport(
        customers=customers,
        products=products,
        first_customer_id=first_id,
        last_customer_id=first_id + customers - 1,
        elapsed_seconds=round(time.perf_counter() - started, 3),
        **totals,
    )


async def _ensure_products(
    conn: asyncpg.Connection, catalogue: Catalogue
) -> tuple[int, np.ndarray]:
    """Insert the catalogue's missing SKUs; return how many, and database ids by catalogue row."""
    records = zip(
        catalogue.sku.tolist(),
        catalogue.name.tolist(),
        catalogue.category.tolist(),
        _money(catalogue.price_cents),
        itertools.repeat(catalogue.currency),
        _timestamps(catalogue.created_at),
        strict=False,  # repeat() is endless
    )
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE cdm_seed_products (sku text, name text, category text, "
            "price numeric(12, 2), currency text, created_at timestamptz) ON COMMIT DROP"
        )
        await conn.copy_records_to_table("cdm_seed_products", records=records)
        status = await conn.execute(
            "INSERT INTO products (sku, name, category, price, currency, created_at) "
            "SELECT sku, name, category, price, currency, created_at FROM cdm_seed_products "
            "ORDER BY sku ON CONFLICT (sku) DO NOTHING"
        )
        rows = await conn.fetch(
            "SELECT id, sku FROM products WHERE sku = ANY($1::text[])", catalogue.sku.tolist()
        )
    by_sku = {r["sku"]: r["id"] for r in rows}
    ids = np.array([by_sku[s] for s in catalogue.sku.tolist()], dtype=np.int64)
    return int(status.split()[-1]), ids


async def _reserve_customer_ids(conn: asyncpg.Connection, n: int) -> int:
    """Reserve ``n`` consecutive customer ids; return the first."""
    async with conn.transaction():
        # Blocks concurrent inserts (which draw ids) until the sequence has moved on.
        await conn.execute("LOCK TABLE customers IN SHARE ROW EXCLUSIVE MODE")
        last = await conn.fetchval(_RESERVE_IDS, n)
    return int(last) - n + 1


async def _load_properties(conn: asyncpg.Connection, world: World) -> None:
    await conn.execute(
        "INSERT INTO cdm_seed_properties (idx, value) "
        "SELECT i - 1, v::jsonb FROM unnest($1::text[]) WITH ORDINALITY AS t(v, i)",
        list(world.properties),
    )
    await conn.execute("ANALYZE cdm_seed_properties")


async def _write_chunk(conn: asyncpg.Connection, records: _ChunkRecords) -> None:
    async with conn.transaction():
        # Customers first (foreign keys); COPY writes the reserved ids into the identity column.
        await conn.copy_records_to_table(
            "customers", records=records.customers, columns=_CUSTOMER_COLUMNS
        )
        await conn.copy_records_to_table(
            "identities", records=records.identities, columns=_IDENTITY_COLUMNS
        )
        await conn.copy_records_to_table(
            "consents", records=records.consents, columns=_CONSENT_COLUMNS
        )
        # One statement, so the stats trigger refreshes this chunk's customers once.
        await conn.copy_records_to_table(
            "purchases", records=records.purchases, columns=_PURCHASE_COLUMNS
        )
        await conn.copy_records_to_table(
            "cdm_seed_interactions", records=records.interactions, columns=_INTERACTION_COLUMNS
        )
        await conn.execute(_MOVE_INTERACTIONS)


@dataclass(frozen=True, slots=True)
class _ChunkRecords:
    """One chunk as COPY-ready lists of tuples (built off the event loop)."""

    size: int
    customers: list[tuple[object, ...]]
    identities: list[tuple[object, ...]]
    purchases: list[tuple[object, ...]]
    interactions: list[tuple[object, ...]]
    consents: list[tuple[object, ...]]

    @classmethod
    def of(cls, chunk: ChunkColumns, product_ids: np.ndarray) -> _ChunkRecords:
        c, i, p, x, s = (
            chunk.customers, chunk.identities, chunk.purchases, chunk.interactions,
            chunk.consents,
        )  # fmt: skip
        return cls(
            size=len(c),
            customers=_rows(
                c.id.tolist(),
                c.first_name.tolist(),
                c.last_name.tolist(),
                c.email.tolist(),
                c.phone.tolist(),
                c.country.tolist(),
                c.birth_date.tolist(),
                _timestamps(c.created_at),
                _timestamps(c.updated_at),
            ),
            identities=_rows(
                i.customer_id.tolist(),
                i.kind.tolist(),
                i.source.tolist(),
                i.value.tolist(),
                _timestamps(i.created_at),
            ),
            purchases=_rows(
                p.customer_id.tolist(),
                product_ids[p.product].tolist(),
                p.order_ref.tolist(),
                p.quantity.tolist(),
                _money(p.unit_price_cents),
                _money(p.amount_cents),
                itertools.repeat(CURRENCY),
                p.channel.tolist(),
                _timestamps(p.purchased_at),
                itertools.repeat(PURCHASE_SOURCE),
                p.external_id.tolist(),
                _timestamps(p.recorded_at),
            ),
            interactions=_rows(
                x.customer_id.tolist(),
                _timestamps(x.occurred_at),
                x.channel.tolist(),
                x.kind.tolist(),
                x.properties.tolist(),
                x.source.tolist(),
                x.external_id.tolist(),
                _timestamps(x.recorded_at),
            ),
            consents=_rows(
                s.customer_id.tolist(),
                s.purpose.tolist(),
                s.granted.tolist(),
                s.source.tolist(),
                _timestamps(s.recorded_at),
            ),
        )


def _rows(*columns: Iterable[object]) -> list[tuple[object, ...]]:
    # Constant columns are endless repeat()s: the lists decide the length.
    return list(zip(*columns, strict=False))


def _timestamps(values: np.ndarray) -> list[datetime]:
    """datetime64[us] holding UTC -> aware datetimes (asyncpg reads naive ones as local)."""
    return [d.replace(tzinfo=UTC) for d in values.astype("datetime64[us]").tolist()]


def _money(cents: np.ndarray) -> list[Decimal]:
    """Integer cents -> Decimals, built once per distinct amount (amounts repeat a lot)."""
    distinct, index = np.unique(cents, return_inverse=True)
    values = np.empty(len(distinct), dtype=object)
    values[:] = [Decimal(c).scaleb(-2) for c in distinct.tolist()]
    return values[index].tolist()
