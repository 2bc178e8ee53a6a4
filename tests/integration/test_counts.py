"""The exact counters behind `totalCount` (migration 0012) against a real PostgreSQL.

After every kind of write the counters must equal what a scan counts: inserts, COPY-based
imports, erasure, merges and their undo, deletes, truncation, and concurrent writers (one
rolling back) that must not wait on each other.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from datetime import UTC, datetime

import asyncpg
import pytest

from domain.customer_queries import CustomerFilter
from domain.merging import Merged, MergeRequest, Unmerged
from domain.records import ParseOptions
from domain.survivorship import Policy, Rule
from ingestion.importer import ImportOptions, import_files
from sql import migrate
from sql.customer_list import customer_count_statement
from sql.database import connect
from sql.embedded import replace_database
from sql.gdpr import erase_customer
from sql.identity import merge_customers, unmerge_customers
from sql.queries import query
from tests.factories import add_customer, add_product

NOW = datetime(2025, 6, 1, tzinfo=UTC)
COUNTRIES = ("DE", "FR", "GB", "US")


async def counted(db: asyncpg.Pool | asyncpg.Connection, flt: CustomerFilter) -> int:
    sql, args = customer_count_statement(flt)
    assert "count_deltas" in sql  # these filters must read the counter, not scan
    return await db.fetchval(sql, *args)


async def assert_exact(db: asyncpg.Pool | asyncpg.Connection) -> int:
    """Every counter equals its scan; returns the number of customers counted."""
    truth = await db.fetchval("SELECT count(*) FROM customers WHERE erased_at IS NULL")
    assert await counted(db, CustomerFilter()) == truth
    by_country = dict(
        await db.fetch(
            "SELECT country::text, count(*) FROM customers"
            " WHERE erased_at IS NULL AND country IS NOT NULL GROUP BY country"
        )
    )
    for country in {*COUNTRIES, *by_country}:
        assert await counted(db, CustomerFilter(country=country.lower())) == by_country.get(
            country, 0
        ), country
    products = await db.fetchval("SELECT count(*) FROM products")
    assert await db.fetchval(query("products_count_all")) == products
    return truth


async def insert_customers(db: asyncpg.Pool | asyncpg.Connection, n: int, country: str) -> None:
    await db.execute(
        "INSERT INTO customers (first_name, country)"
        " SELECT 'N' || g, $2 FROM generate_series(1, $1) g",
        n, country,
    )  # fmt: skip


def test_statement_forms():
    sql, args = customer_count_statement(CustomerFilter())
    assert "count_deltas" in sql
    assert args == []
    sql, args = customer_count_statement(CustomerFilter(country="de"))
    assert "customers_by_country" in sql
    assert args == ["DE"]
    # Any other condition counts matching rows through the filter's index.
    sql, args = customer_count_statement(CustomerFilter(country="DE", search="anna"))
    assert sql.startswith("SELECT count(*) FROM customers c")
    sql, args = customer_count_statement(CustomerFilter(created_after=NOW))
    assert sql.startswith("SELECT count(*) FROM customers c")
    assert args == [NOW]


async def test_counter_statement_embeds_as_a_scalar_subquery(db):
    await insert_customers(db, 3, "DE")
    for flt, expected in ((CustomerFilter(), 3), (CustomerFilter(country="DE"), 3)):
        sql, args = customer_count_statement(flt)
        assert await db.fetchval(f"SELECT ({sql}) + 0", *args) == expected


async def test_inserts_updates_deletes_and_truncate(db):
    assert await assert_exact(db) == 0
    await add_customer(db, country="DE")
    await add_customer(db, country=None)
    await insert_customers(db, 40, "FR")  # more than the fold threshold of rows per key
    for _ in range(20):
        await add_customer(db, country="GB")
    assert await assert_exact(db) == 62
    assert await db.fetchval("SELECT count(*) FROM count_deltas WHERE key = 'GB'") < 20
    # An update that changes nothing counted writes no delta row (but moves the generation).
    counts = "SELECT count(*) FROM count_deltas WHERE counter <> 'customers_changes'"
    rows = await db.fetchval(counts)
    generation = await db.fetchval(query("customers_generation"))
    await db.execute("UPDATE customers SET first_name = 'X'")
    assert await db.fetchval(counts) == rows
    assert await db.fetchval(query("customers_generation")) == generation + 1
    # Moving country, then deleting.
    await db.execute("UPDATE customers SET country = 'US' WHERE country = 'FR' AND id % 2 = 0")
    await db.execute("UPDATE customers SET country = NULL WHERE country = 'GB' AND id % 3 = 0")
    await assert_exact(db)
    await db.execute("DELETE FROM customers WHERE country = 'US'")
    await db.execute("DELETE FROM customers WHERE country IS NULL")
    assert await assert_exact(db) > 0
    pid = await add_product(db, "SKU-1")
    await add_product(db, "SKU-2")
    await db.execute("DELETE FROM products WHERE id = $1", pid)
    assert await db.fetchval(query("products_count_all")) == 1
    generation = await db.fetchval(query("customers_generation"))
    await db.execute("TRUNCATE customers, products CASCADE")
    assert await assert_exact(db) == 0
    assert await db.fetchval(counts) == 0
    assert await db.fetchval(query("customers_generation")) == generation + 1  # never back


async def test_copy_based_imports(db, tmp_path):
    lines = ["external_id,first_name,email,country"]
    lines += [f"C-{i},Name{i},p{i}@example.com,{COUNTRIES[i % 4]}" for i in range(300)]
    lines += ["C-1,Again,p1@example.com,US"]  # an update that moves a customer's country
    path = tmp_path / "customers.csv"
    path.write_text("\n".join(lines) + "\n")
    parse = ParseOptions(source="crm", now=NOW, default_currency="EUR", phone_region="DE")
    async with db.acquire() as conn:
        summary = await import_files(
            conn, [path], ImportOptions("customers", parse, chunk_size=70), rejects=io.StringIO()
        )
    assert (summary.inserted, summary.updated) == (300, 1)
    assert await assert_exact(db) == 300
    # Purchases of unknown customers create minimal ones (an INSERT inside a CTE).
    await add_product(db, "SKU-1")
    purchases = tmp_path / "purchases.csv"
    purchases.write_text(
        "external_id,customer_external_id,product_sku,unit_price,purchased_at\n"
        + "".join(f"O-{i},NEW-{i},SKU-1,5.00,2025-01-0{1 + i % 9}\n" for i in range(25))
    )
    options = ImportOptions("purchases", parse, create_missing_customers=True)
    async with db.acquire() as conn:
        summary = await import_files(conn, [purchases], options, rejects=io.StringIO())
    assert summary.inserted == 25
    assert await assert_exact(db) == 325
    products = tmp_path / "products.csv"
    products.write_text("sku,name,category,price\nP-1,Mug,Kitchen,4.50\nP-2,Pan,Kitchen,30\n")
    async with db.acquire() as conn:
        options = ImportOptions("products", parse)
        await import_files(conn, [products], options, rejects=io.StringIO())
    assert await db.fetchval(query("products_count_all")) == 3
    await assert_exact(db)


async def test_erasure_is_not_counted(db):
    ada = await add_customer(db, country="DE", email="ada@example.com")
    await add_customer(db, country="DE")
    assert await assert_exact(db) == 2
    async with db.acquire() as conn:
        await erase_customer(conn, ada, "test", None)
        await erase_customer(conn, ada, "test", None)  # idempotent: counted out once
    assert await assert_exact(db) == 1
    assert await counted(db, CustomerFilter(country="DE")) == 1
    # The tombstone stays a row; deleting it later changes nothing counted.
    await db.execute("DELETE FROM erasures")
    await db.execute("DELETE FROM customers WHERE id = $1", ada)
    assert await assert_exact(db) == 1


async def test_merges_and_their_undo(db):
    survivor = await add_customer(db, country="DE", email="ann@example.com")
    fr = await add_customer(db, country="FR", email="ann@example.fr")
    us = await add_customer(db, country="US")
    await add_customer(db, country="GB")
    policy = Policy(Rule.MOST_RECENT)
    done = await merge_customers(db, MergeRequest(survivor, (fr, us)), policy, "test")
    assert isinstance(done, Merged)
    assert await assert_exact(db) == 2
    undone = await unmerge_customers(db, done.merge_id, "test")
    assert isinstance(undone, Unmerged)
    assert await assert_exact(db) == 4
    # A merge whose survivor is then erased.
    done = await merge_customers(db, MergeRequest(survivor, (fr,)), policy, "test")
    assert isinstance(done, Merged)
    async with db.acquire() as conn:
        await erase_customer(conn, survivor, "test", None)
    assert await assert_exact(db) == 2


async def test_concurrent_writers_neither_wait_nor_lose_counts(db, pool):
    for _ in range(20):
        await add_customer(db, country="DE")
    base = 20
    for commit_first in (True, False):
        # Enough delta rows that every writer below folds, some under the other's locks.
        await db.execute(
            "INSERT INTO count_deltas (counter, key, delta) SELECT c, k, 0"
            " FROM (VALUES ('customers', ''), ('customers_by_country', 'DE')) v(c, k),"
            " generate_series(1, 20)"
        )
        a, b = await pool.acquire(), await pool.acquire()
        try:
            # A writer that had to wait for the other fails here instead of hanging.
            for conn in (a, b):
                await conn.execute("SET lock_timeout = '2s'")
            ta, tb = a.transaction(), b.transaction()
            await ta.start()
            await tb.start()
            de = "SELECT id FROM count_deltas WHERE counter = 'customers_by_country' AND key = 'DE'"
            before = {r["id"] for r in await db.fetch(de)}
            await insert_customers(a, 100, "DE")  # folds every committed row, keeps them locked
            assert len(await a.fetch(de)) == 1
            await add_customer(db, country="DE")  # a third, committed writer: skips a's rows
            third = {r["id"] for r in await db.fetch(de)} - before
            assert len(third) == 1
            await insert_customers(b, 50, "DE")  # folds the third's row with its own
            await insert_customers(b, 7, "FR")
            await b.execute("DELETE FROM customers WHERE id = (SELECT min(id) FROM customers)")
            await insert_customers(a, 1, "FR")
            assert not third & {r["id"] for r in await b.fetch(de)}
            base += 1
            # Neither's changes show to another reader until committed.
            assert await assert_exact(db) == base
            if commit_first:
                await tb.commit()
                await ta.rollback()
            else:
                await ta.rollback()
                await tb.commit()
            base += 50 + 7 - 1  # b's, whichever order the two ended in
            assert await assert_exact(db) == base
        finally:
            for conn in (a, b):
                await conn.execute("RESET lock_timeout")
            await pool.release(a)
            await pool.release(b)


async def test_parallel_transactions_on_separate_connections(db, pool):
    async def writer(country: str, n: int, rollback: bool) -> None:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            for _ in range(n):
                await insert_customers(conn, 3, country)
                await asyncio.sleep(0)
            await (tx.rollback() if rollback else tx.commit())

    await asyncio.gather(writer("DE", 30, False), writer("DE", 30, True), writer("FR", 30, False))
    assert await assert_exact(db) == 180


async def test_a_repeatable_read_writer_counts_without_folding(db, pool):
    for _ in range(20):
        await add_customer(db, country="DE")
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await insert_customers(conn, 5, "DE")
    assert await assert_exact(db) == 25


@pytest.fixture
async def database_before_counters(server_url):
    name = f"cdm_counts_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield replace_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_migration_counts_the_rows_already_there(database_before_counters):
    conn = await connect(database_before_counters)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for m in migrate.available_migrations():
            if m.version < 12:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        m.version, m.name, m.checksum,
                    )  # fmt: skip
        await insert_customers(conn, 30, "DE")
        await insert_customers(conn, 12, "US")
        await conn.execute("INSERT INTO customers (first_name) VALUES ('nowhere')")
        await conn.execute("UPDATE customers SET erased_at = now() WHERE id <= 5")
        await conn.execute(
            "INSERT INTO products (sku, name, category, price, currency)"
            " VALUES ('A', 'A', 'x', 1, 'EUR'), ('B', 'B', 'x', 1, 'EUR')"
        )
        assert [m.version for m in await migrate.migrate(conn)] == [
            m.version for m in migrate.available_migrations() if m.version >= 12
        ]
        assert await assert_exact(conn) == 38
        assert await counted(conn, CustomerFilter(country="DE")) == 25
    finally:
        await conn.close()
