"""totalCount benchmark: counting from the counters (migration 0012) against a scan, and what
keeping the counters costs writers. Not a test: run it, read it.

    python bench/counts.py [--customers 1000000] [--import-rows 100000] [--reps 5]

Into a fresh `cdm_bench_counts` database (CDM_BENCH_DATABASE_URL's server, or the embedded
one in bench/out/data), migrated, it inserts --customers customers with one generate_series
INSERT (customers only: the count does not read histories), erases 1 % of them, and then:

1. times `customer_count_statement` with no filter and with only a country, and the products
   count, each as the statement it is now (the counter) and as it was (the scan), medians of
   warm runs; again after 1,000 single-row inserts left unfolded delta rows and dead tuples;
2. times writing --import-rows customers with the count triggers and without them, runs
   interleaved, each in a transaction rolled back: a binary COPY, an INSERT ... SELECT, and an
   UPDATE of that many rows that changes nothing counted (an import's re-run); and the
   triggers' own time in those statements as EXPLAIN ANALYZE reports it;
3. runs `cdm import customers` of an --import-rows CSV into a fresh database with the
   triggers and without them, interleaved, --cli-imports pairs (0 to skip: 25 s+ a run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench.common import fresh_database, machine  # noqa: E402
from bench.import_customers import run_imports, write_csv  # noqa: E402
from domain.customer_queries import CustomerFilter  # noqa: E402
from sql import json_read as j  # noqa: E402
from sql.customer_list import customer_count_statement  # noqa: E402
from sql.database import connect  # noqa: E402
from sql.queries import query  # noqa: E402

DB = "cdm_bench_counts"
COUNTRIES = "ARRAY['DE','FR','GB','US','IT','ES','NL','PL','SE','AT','CH','BE','DK','IE','PT']"
TRIGGERS = (
    "customers_count_ins", "customers_count_upd", "customers_count_del",
    # The customers' generation (migration 0015), by which a search's count is reused.
    "customers_changes_ins", "customers_changes_upd", "customers_changes_del",
)  # fmt: skip
# The statements as they were before the counters (sql/customer_list.py, products.sql).
SCAN_ALL = "SELECT count(*) FROM customers c WHERE c.erased_at IS NULL"
SCAN_COUNTRY = "SELECT count(*) FROM customers c WHERE c.erased_at IS NULL AND c.country = $1"
SCAN_PRODUCTS = (
    "SELECT count(*) FROM products WHERE ($1::text IS NULL OR category = $1)"
    " AND ($2::text IS NULL OR lower(name) LIKE $2 OR lower(sku) LIKE $2)"
)


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def median_ms(conn: asyncpg.Connection, sql: str, args: list[object], runs: int) -> str:
    stmt = await conn.prepare(sql)
    await stmt.fetchval(*args)  # warm
    times = [await timed(lambda: stmt.fetchval(*args)) for _ in range(runs)]
    return f"{statistics.median(times) * 1000:.3f}"


async def reads(conn: asyncpg.Connection, label: str) -> None:
    print(f"\n{label}: median ms (scan = the statement before the counters)")
    print("| count | scan | counter |\n|---|---|---|")
    forms = (
        ("customers, no filter", SCAN_ALL, [], CustomerFilter()),
        ("customers, country = DE", SCAN_COUNTRY, ["DE"], CustomerFilter(country="DE")),
    )
    for name, scan, scan_args, flt in forms:
        sql, args = customer_count_statement(flt)
        assert await conn.fetchval(sql, *args) == await conn.fetchval(scan, *scan_args)
        print(
            f"| {name} | {await median_ms(conn, scan, scan_args, 7)} "
            f"| {await median_ms(conn, sql, args, 200)} |",
            flush=True,
        )
    # A search: counted by its trigram index each time, or reused at the same generation (the
    # compiled statement's form, api/remembered_counts.py), with the generation read each time.
    for search in ("first12", "12345"):
        flt = CustomerFilter(search=search)
        sql, args = customer_count_statement(flt)
        st = j.Statement()
        remembered, params = st.finish(
            f"SELECT n FROM ({j.remembered_count(st, f'({st.embed(sql, args)})')}) r"
        )
        count = await conn.fetchval(sql, *args)
        generation = await conn.fetchval(query("customers_generation"))
        known = [*params[:-2], generation, count]
        assert await conn.fetchval(remembered, *known) == count
        assert await conn.fetchval(remembered, *params[:-2], None, None) == count
        print(
            f"| customers, search {search!r} ({count:,}): count / reused at its generation "
            f"| {await median_ms(conn, sql, args, 7)} "
            f"| {await median_ms(conn, remembered, known, 200)} |",
            flush=True,
        )
    counter = query("products_count_all")
    assert await conn.fetchval(counter) == await conn.fetchval(SCAN_PRODUCTS, None, None)
    print(
        f"| products ({await conn.fetchval(counter)}) "
        f"| {await median_ms(conn, SCAN_PRODUCTS, [None, None], 50)} "
        f"| {await median_ms(conn, counter, [], 200)} |"
    )


async def set_triggers(conn: asyncpg.Connection, on: bool) -> None:
    for name in TRIGGERS:
        verb = "ENABLE" if on else "DISABLE"
        await conn.execute(f"ALTER TABLE customers {verb} TRIGGER {name}")


async def writes(conn: asyncpg.Connection, rows: int, reps: int) -> None:
    now = datetime.now(UTC)
    records = [
        (f"F{i}", f"L{i}", f"w{i}@example.com", ("DE", "FR", "GB", "US")[i % 4], now, now)
        for i in range(rows)
    ]
    columns = ["first_name", "last_name", "email", "country", "created_at", "updated_at"]
    insert = (
        f"INSERT INTO customers (first_name, country) SELECT 'W' || g, "
        f"({COUNTRIES})[1 + g % 15] FROM generate_series(1, {rows}) g"
    )
    update = (
        f"UPDATE customers SET updated_at = updated_at + interval '1 second' WHERE id <= {rows}"
    )
    work = {
        "COPY": lambda c: c.copy_records_to_table("customers", records=records, columns=columns),
        "INSERT ... SELECT": lambda c: c.execute(insert),
        "UPDATE (nothing counted changes)": lambda c: c.execute(update),
    }
    print(f"\nwriting {rows:,} customers, median of {reps} (rolled back), seconds")
    print("| statement | without triggers | with triggers | added |\n|---|---|---|---|")
    for name, fn in work.items():
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(reps):
            for on in (False, True):
                await set_triggers(conn, on)
                tx = conn.transaction()
                await tx.start()
                times[on].append(await timed(lambda fn=fn: fn(conn)))
                await tx.rollback()
        await set_triggers(conn, True)
        off, on_ = statistics.median(times[False]), statistics.median(times[True])
        print(
            f"| {name} | {off:.3f} | {on_:.3f} | {on_ - off:+.3f} "
            f"({(on_ / off - 1) * 100:+.0f} %) |",
            flush=True,
        )
    # The trigger's own time as PostgreSQL reports it: steadier than differences of wall
    # times on a shared machine (it leaves out filling the transition tables).
    print("\ncount trigger time inside the statement (EXPLAIN ANALYZE), ms, each rep")
    for name, sql in (("INSERT ... SELECT", insert), ("UPDATE (nothing counted changes)", update)):
        spent = []
        for _ in range(reps):
            tx = conn.transaction()
            await tx.start()
            plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))
            await tx.rollback()
            triggers = plan[0].get("Triggers", [])
            spent.append(sum(t["Time"] for t in triggers if t["Trigger Name"] in TRIGGERS))
        print(f"{name}: " + ", ".join(f"{t:.1f}" for t in spent), flush=True)


async def import_run(path: Path, rows: int, on: bool) -> float:
    url = await fresh_database(f"{DB}_import")
    conn = await connect(url)
    await set_triggers(conn, on)
    await conn.close()
    seconds = await asyncio.to_thread(run_imports, path, url, 1, 1)
    conn = await connect(url)
    try:
        sql, args = customer_count_statement(CustomerFilter())
        assert (await conn.fetchval(sql, *args) == rows) == on
    finally:
        await conn.close()
    return seconds


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cli-imports", type=int, default=2, help="pairs of `cdm import` runs")
    args = parser.parse_args()
    print(machine(), datetime.now(UTC).date().isoformat())
    url = await fresh_database(DB)
    conn = await connect(url)
    try:
        print(await conn.fetchval("SHOW server_version"), flush=True)
        seconds = await timed(
            lambda: conn.execute(
                f"INSERT INTO customers (first_name, last_name, email, country, created_at)"
                f" SELECT 'First' || g, 'Last' || g, 'c' || g || '@example.com',"
                f" ({COUNTRIES})[1 + g % 15], now() - g * interval '1 minute'"
                f" FROM generate_series(1, {args.customers}) g"
            )
        )
        await conn.execute("UPDATE customers SET erased_at = now() WHERE id % 100 = 0")
        await conn.execute(
            "INSERT INTO products (sku, name, category, price, currency)"
            " SELECT 'SKU-' || g, 'Product ' || g, 'cat' || g % 20, 9.99, 'EUR'"
            " FROM generate_series(1, 2000) g"
        )
        await conn.execute("VACUUM ANALYZE customers")
        await conn.execute("VACUUM ANALYZE products")
        await conn.execute("VACUUM ANALYZE count_deltas")
        print(f"inserted {args.customers:,} customers in {seconds:.1f} s (triggers on)")
        await reads(conn, f"{args.customers:,} customers, counters folded")
        for i in range(1000):
            await conn.execute(
                "INSERT INTO customers (first_name, country) VALUES ($1, 'DE')", f"One{i}"
            )
        rows = await conn.fetchval("SELECT count(*) FROM count_deltas")
        await reads(conn, f"after 1,000 single-row inserts ({rows} delta rows, not vacuumed)")
        await writes(conn, args.import_rows, args.reps)
    finally:
        await conn.close()
    if args.import_rows and args.cli_imports:
        path = ROOT / "bench" / "out" / f"customers_{args.import_rows}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(path, args.import_rows)
        print(f"\n`cdm import customers` of {args.import_rows:,} people, fresh database, s")
        for on in (False, True) * args.cli_imports:
            seconds = await import_run(path, args.import_rows, on)
            print(f"triggers {'on ' if on else 'off'}: {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
