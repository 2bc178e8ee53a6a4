"""Bulk import benchmark (issue: data collection). Not a test: run it, read it.

    python bench/import_purchases.py [--rows 1000000] [--customers 100000]

Seeds --customers customers into a fresh `cdm_bench_import` database (embedded server in
bench/out/data, or CDM_BENCH_DATABASE_URL's server), writes a CSV of --rows purchase lines
that name their customer by CRM id, then times `cdm import purchases` on it as a separate
process and reports rows/s and peak memory (RSS) of that process.
Target: 1,000,000 rows in at most 60 s with peak memory under 500 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestion.seed import seed_database  # noqa: E402
from sql import migrate  # noqa: E402
from sql.database import connect  # noqa: E402
from sql.embedded import ensure_database, replace_database, start_embedded_server  # noqa: E402

NOW = datetime(2025, 6, 1, tzinfo=UTC)
DB = "cdm_bench_import"


async def fresh_database(customers: int) -> tuple[str, list[str]]:
    server = os.environ.get("CDM_BENCH_DATABASE_URL") or start_embedded_server(
        ROOT / "bench" / "out" / "data"
    )
    admin = await connect(server)
    await admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    await admin.close()
    url = await ensure_database(server, DB) if "CDM_BENCH" not in os.environ else None
    url = url or replace_database(server, DB)
    conn = await connect(url)
    try:
        await migrate.migrate(conn)
        started = time.perf_counter()
        await seed_database(conn, customers=customers, seed=3, now=NOW)
        print(f"seeded {customers} customers in {time.perf_counter() - started:.1f} s", flush=True)
        # Measure the import on a settled database, not against autovacuum of the fresh seed.
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
        rows = await conn.fetch(
            "SELECT value FROM identities WHERE kind = 'external_id' AND source = 'crm'"
        )
        skus = await conn.fetch("SELECT sku FROM products")
        return url, [r["value"] for r in rows], [r["sku"] for r in skus]
    finally:
        await conn.close()


def write_csv(path: Path, rows: int, crm_ids: list[str], skus: list[str]) -> None:
    rng = np.random.default_rng(1)
    customers = rng.integers(0, len(crm_ids), rows)
    products = rng.integers(0, len(skus), rows)
    quantity = rng.choice([1, 1, 1, 2, 3], rows)
    cents = rng.integers(199, 19999, rows)
    seconds = rng.integers(0, 365 * 86400, rows)
    start = NOW - timedelta(days=400)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["Order Line", "CRM", "Article", "Qty", "Price", "Currency", "Date"])
        for i in range(rows):
            at = start + timedelta(seconds=int(seconds[i]))
            out.writerow([
                f"OL-{i:08d}", crm_ids[customers[i]], skus[products[i]], int(quantity[i]),
                f"{cents[i] / 100:.2f}", "EUR", at.strftime("%Y-%m-%d %H:%M:%S"),
            ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    url, crm_ids, skus = asyncio.run(fresh_database(args.customers))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"purchases_{args.rows}.csv"
    write_csv(path, args.rows, crm_ids, skus)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
    command = [
        sys.executable, "-m", "cdm.cli", "import", "purchases", str(path), "--source", "pos",
        "--map", "external_id=Order Line,customer_external_id=CRM,product_sku=Article,"
        "quantity=Qty,unit_price=Price,currency=Currency,purchased_at=Date",
        "--time-format", "%Y-%m-%d %H:%M:%S", "--customer-source", "crm",
    ]  # fmt: skip
    env = {**os.environ, "CDM_DATABASE_URL": url, "CDM_LOG_LEVEL": "warning"}
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT)
    # Sample the import process's own resident memory (children of this script include the
    # embedded server's tools, so rusage would not isolate it).
    watched, peak = psutil.Process(child.pid), 0.0
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, watched.memory_info().rss / 2**20)
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    if child.returncode:
        raise SystemExit(f"import failed with exit code {child.returncode}")
    print(f"\n{args.rows:,} rows in {elapsed:.1f} s = {args.rows / elapsed:,.0f} rows/s; "
          f"peak RSS of the import process {peak:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
