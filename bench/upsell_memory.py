"""Memory and time of upsell training and `cdm score --all` (issue 15, "Memory").

    python bench/upsell_memory.py [--products 14000] [--customers 100000] [--database NAME]

1. Generates a synthetic catalogue and purchase log (seeded): --products products in
   categories of ~250, each customer with one to three favourite categories and a few
   orders over 2.5 years; later orders often hold the partner of an earlier product (a
   co-purchase signal for the ranker to find) or repeat it.
2. Loads it with COPY into a fresh database (--database on CDM_BENCH_DATABASE_URL's server,
   or on the embedded one in bench/out/data).
3. Runs, each in its own child process whose peak RSS is read with
   ``getrusage(RUSAGE_CHILDREN)`` by a wrapper process around it:
   * ``snapshot``: the market statistics and one cutoff's upsell candidates (what training
     builds per cutoff);
   * ``train``: ``cdm train upsell --as-of AS_OF`` (7 cutoffs, MLflow record, gate);
   * ``score``: ``cdm score --all --as-of AS_OF`` (every customer's recommendations,
     stored), with the ranker trained above made champion if the gate did not promote it.

Target: peak RSS under 2 GB at 50,000 products and 1,000,000 customers.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, fresh_database, machine

from sql.database import connect

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
SPAN_DAYS = 900
_CHUNK_CUSTOMERS = 100_000

# A wrapper process runs one command and reports its peak RSS (kB on Linux) and wall time.
_MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:])
print(json.dumps({"rc": done.returncode, "seconds": time.perf_counter() - started,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def catalogue(products: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Products sorted by category (so partners 2k and 2k+1 mostly share one), a skewed
    popularity weight each, prices."""
    n_categories = max(4, products // 250)
    category = np.sort(rng.integers(0, n_categories, products))
    weight = 1.0 / rng.permutation(np.arange(1, products + 1)) ** 0.9
    price = np.round(rng.lognormal(3.0, 0.8, products), 2)
    return {"category": category, "weight": weight, "price": price, "n": np.array(n_categories)}


def purchases(
    customers: int, first_id: int, items: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One chunk of customers' purchase lines: customer, product, order number, seconds
    before AS_OF, price."""
    n_categories = int(items["n"])
    products = len(items["category"])
    category_start = np.searchsorted(items["category"], np.arange(n_categories))
    # Within each category, a cumulative weight from c to c + 1: sample c + u, search it.
    share = (
        items["weight"] / np.bincount(items["category"], weights=items["weight"])[items["category"]]
    )
    cdf = (
        items["category"]
        + np.cumsum(share)
        - np.repeat(
            np.cumsum(np.bincount(items["category"], weights=share))
            - np.bincount(items["category"], weights=share),
            np.bincount(items["category"], minlength=n_categories),
        )
    )

    def pick(categories: np.ndarray) -> np.ndarray:
        at = np.searchsorted(cdf, categories + rng.random(len(categories)))
        return np.clip(at, category_start[categories], products - 1)

    favourites = rng.integers(0, n_categories, (customers, 3))
    n_favourite = rng.integers(1, 4, customers)
    created = rng.uniform(30, SPAN_DAYS, customers)  # days before AS_OF
    n_orders = 1 + rng.poisson(2.0, customers)
    order_customer = np.repeat(np.arange(customers), n_orders)
    order_no = np.arange(len(order_customer)) - np.repeat(np.cumsum(n_orders) - n_orders, n_orders)
    # Orders of a customer oldest first (most days before AS_OF): the first holds the anchor.
    order_days = created[order_customer] * _sorted_within(
        rng.uniform(0, 1, len(order_customer)), order_customer
    )
    n_items = 1 + rng.poisson(1.2, len(order_customer))
    line_order = np.repeat(np.arange(len(order_customer)), n_items)
    line_customer = order_customer[line_order]
    favourite = favourites[
        line_customer, rng.integers(0, 3, len(line_order)) % n_favourite[line_customer]
    ]
    anywhere = rng.integers(0, n_categories, len(line_order))
    category = np.where(rng.random(len(line_order)) < 0.8, favourite, anywhere)
    product = pick(category)
    # The first line of each customer's first order is their anchor: later orders often
    # take its partner (bought together by many: co-purchase) or repeat it.
    first_line = np.searchsorted(line_customer, np.arange(customers))
    anchor = product[first_line]
    later = order_no[line_order] > 0
    draw = rng.random(len(line_order))
    partner = np.minimum(anchor[line_customer] ^ 1, products - 1)
    product = np.where(later & (draw < 0.35), partner, product)
    product = np.where(later & (draw >= 0.35) & (draw < 0.5), anchor[line_customer], product)
    seconds = (order_days[line_order] * 86400).astype(np.int64)
    return {
        "customer": first_id + line_customer,
        "product": product,
        "order": order_no[line_order],
        "seconds": seconds,
        "price": items["price"][product],
        "created": (created * 86400).astype(np.int64),
    }


def _sorted_within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``values`` sorted descending within each run of equal ``groups`` (ascending): a
    customer's first order is the oldest (the most days before AS_OF)."""
    order = np.lexsort((-values, groups))
    return values[order]


def _csv(columns: list[np.ndarray]) -> bytes:
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack(columns), fmt="%d", delimiter=",")
    return buffer.getvalue().encode()


async def load(url: str, products: int, customers: int, seed: int) -> dict[str, int]:
    """Catalogue, customers and purchases into the fresh database at ``url``, by COPY."""
    rng = np.random.default_rng(seed)
    items = catalogue(products, rng)
    conn = await connect(url)
    lines = 0
    try:
        names = [f"cat-{c:04d}" for c in items["category"].tolist()]
        await conn.copy_records_to_table(
            "products",
            records=[
                (i + 1, f"SKU-{i + 1:06d}", f"Product {i + 1}", names[i], price, "EUR", AS_OF
                 - timedelta(days=SPAN_DAYS + 10))
                for i, price in enumerate(items["price"].tolist())
            ],
            columns=["id", "sku", "name", "category", "price", "currency", "created_at"],
        )  # fmt: skip
        await conn.execute(
            "CREATE UNLOGGED TABLE bench_lines (customer bigint, product bigint, order_no int,"
            " seconds bigint, cents bigint)"
        )
        await conn.execute("CREATE UNLOGGED TABLE bench_customers (id bigint, seconds bigint)")
        for first in range(0, customers, _CHUNK_CUSTOMERS):
            n = min(_CHUNK_CUSTOMERS, customers - first)
            chunk = purchases(n, first + 1, items, rng)
            await conn.execute("TRUNCATE bench_lines, bench_customers")
            await conn.copy_to_table(
                "bench_customers",
                source=io.BytesIO(_csv([np.arange(first + 1, first + n + 1), chunk["created"]])),
                format="csv",
            )
            await conn.copy_to_table(
                "bench_lines",
                source=io.BytesIO(
                    _csv(
                        [
                            chunk["customer"],
                            chunk["product"] + 1,
                            chunk["order"],
                            chunk["seconds"],
                            np.round(chunk["price"] * 100).astype(np.int64),
                        ]
                    )
                ),
                format="csv",
            )
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO customers (id, created_at, updated_at) OVERRIDING SYSTEM VALUE "
                    "SELECT id, $1::timestamptz - make_interval(secs => seconds), "
                    "$1::timestamptz - make_interval(secs => seconds) FROM bench_customers",
                    AS_OF,
                )
                await conn.execute(
                    "INSERT INTO purchases (customer_id, product_id, order_ref, quantity, "
                    "unit_price, amount, currency, channel, purchased_at, source, external_id) "
                    "SELECT customer, product, customer || '-' || order_no, 1, cents / 100.0, "
                    "cents / 100.0, 'EUR', 'web', $1::timestamptz - make_interval(secs => "
                    "seconds), 'bench', (row_number() OVER ())::text FROM bench_lines",
                    AS_OF,
                )
            lines += len(chunk["customer"])
            print(f"  loaded {first + n:,} customers, {lines:,} purchase lines", flush=True)
        await conn.execute("DROP TABLE bench_lines, bench_customers")
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('customers', 'id'), $1)", customers
        )
        await conn.execute("SELECT setval(pg_get_serial_sequence('products', 'id'), $1)", products)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return {"products": products, "customers": customers, "purchase_lines": lines}


async def snapshot_only(url: str) -> None:
    """What training builds per cutoff: market statistics, one cutoff's candidates."""
    from ml.recommendations import load_catalogue
    from ml.training.upsell import upsell_snapshot

    conn = await connect(url)
    try:
        catalogue = await load_catalogue(conn)
        snap = await upsell_snapshot(
            conn, catalogue, AS_OF - timedelta(days=90), timedelta(days=90),
            max_customers=100_000, seed=42,
        )  # fmt: skip
        print(json.dumps(snap.describe()), flush=True)
        print(f"co-occurrence pairs: {snap.basket.conditional.nnz:,}", flush=True)
    finally:
        await conn.close()


def measured(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``command`` in a wrapper process; its peak RSS (MB) and wall time (s)."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        env={**os.environ, **env}, stdout=subprocess.PIPE, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    for line in lines[:-1]:
        print("    " + line, flush=True)
    result = json.loads(lines[-1])
    if result["rc"]:
        raise SystemExit(f"{command} failed with exit code {result['rc']}")
    return {"peak_rss_mb": round(result["peak_rss_kb"] / 1024), "seconds": round(result["seconds"])}


def cdm(*args: str) -> list[str]:
    return [sys.executable, "-m", "cdm.cli", *args]


async def prepare(args: argparse.Namespace) -> str:
    url = await fresh_database(args.database)
    started = time.perf_counter()
    print(f"generating and loading {args.products:,} products, {args.customers:,} customers")
    counts = await load(url, args.products, args.customers, args.seed)
    print(f"loaded {counts} in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=14_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--database", default="cdm_bench_upsell")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-load", action="store_true", help="reuse --database as it is")
    parser.add_argument("--phases", nargs="+", default=["snapshot", "train", "score"])
    parser.add_argument("--snapshot-only", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.snapshot_only:  # the child process of the snapshot phase
        asyncio.run(snapshot_only(args.snapshot_only))
        return
    if args.skip_load:
        from sql.embedded import replace_database, start_embedded_server

        server = os.environ.get("CDM_BENCH_DATABASE_URL") or start_embedded_server(
            ROOT / "bench" / "out" / "data"
        )
        url = replace_database(server, args.database)
    else:
        url = asyncio.run(prepare(args))
    data_dir = ROOT / "bench" / "out" / f"upsell_{args.database}"  # a fresh MLflow store
    if "train" in args.phases:
        shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {"CDM_DATABASE_URL": url, "CDM_DATA_DIR": str(data_dir)}
    at = AS_OF.isoformat()
    results: dict[str, object] = {
        "products": args.products, "customers": args.customers, "machine": machine(),
    }  # fmt: skip
    for phase in args.phases:
        print(f"{phase} ...", flush=True)
        if phase == "snapshot":
            command = [sys.executable, __file__, "--snapshot-only", url]
        elif phase == "train":
            command = cdm("train", "upsell", "--as-of", at)
        else:
            command = cdm("score", "--all", "--as-of", at)
        results[phase] = measured(command, env)
        print(f"  {phase}: {results[phase]}", flush=True)
        if phase == "train":
            _make_champion(env)
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "out"
    (out / f"upsell_memory_{args.products}_{args.customers}.json").write_text(
        json.dumps(results, indent=2)
    )


def _make_champion(env: dict[str, str]) -> None:
    """Upsell version 1 (the store is fresh) as champion: the gate may keep a ranker of
    synthetic data as a challenger, and scoring serves champions only."""
    subprocess.run(cdm("models", "promote", "upsell", "1"), env={**os.environ, **env}, check=True)


if __name__ == "__main__":
    main()
