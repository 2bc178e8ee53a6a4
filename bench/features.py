"""Feature computation benchmark (issue: predictive models). Run it, read it, note the figures.

    python bench/features.py [--customers 100000] [--as-of 2026-11-01T00:00:00Z] [--repeat 3]

1. Makes sure a database holds --customers seeded customers (CDM_BENCH_DATABASE_URL, or the
   --database, default `cdm_bench`, on the embedded server in bench/out/data), seeding more
   if it holds fewer.
2. Computes every feature of every customer created before --as-of (default: now) with
   ml.features.compute_features, --repeat times, on one connection (no statement timeout),
   and prints the time and rows of each run: the training path.
3. Times --serving-batches frames of --batch random customers each: the serving path.

Target: 1,000,000 customers in under 60 s on 2 cores (PostgreSQL and Python together).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine, seeded_database

from ml.features import FEATURES, compute_features, feature_definition_hash
from sql.database import connect


async def run(args: argparse.Namespace) -> dict:
    url = await seeded_database(args.customers, args.seed, args.database)
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC)
    conn = await connect(url)
    try:
        counts = {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("customers", "purchases", "interactions", "consents")
        }
        version = await conn.fetchval("SHOW server_version")
        print(f"PostgreSQL {version}; " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
        print(f"as of {as_of.isoformat()}; {len(FEATURES)} features")

        full_runs = []
        for i in range(args.repeat):
            started = time.perf_counter()
            frame = await compute_features(conn, as_of)
            elapsed = time.perf_counter() - started
            full_runs.append(elapsed)
            print(
                f"run {i + 1}: {len(frame):,} customers x {len(FEATURES)} features in "
                f"{elapsed:.2f} s ({len(frame) / elapsed:,.0f} customers/s)",
                flush=True,
            )
        nan_share = float(np.isnan(frame.matrix).mean())

        rng = np.random.default_rng(1)
        serving = []
        for _ in range(args.serving_batches):
            ids = rng.choice(frame.customer_ids, size=min(args.batch, len(frame)), replace=False)
            started = time.perf_counter()
            await compute_features(conn, as_of, ids.tolist())
            serving.append((time.perf_counter() - started) * 1000)
    finally:
        await conn.close()

    result = {
        "machine": machine(),
        "postgres": version,
        "tables": counts,
        "as_of": as_of.isoformat(),
        "features": len(FEATURES),
        "feature_definition_hash": feature_definition_hash(),
        "rows": len(frame),
        "full_seconds": [round(s, 3) for s in full_runs],
        "nan_share": round(nan_share, 4),
        "serving_batch": args.batch,
        "serving_ms_median": round(statistics.median(serving), 2) if serving else None,
        "serving_ms_p90": round(float(np.percentile(serving, 90)), 2) if serving else None,
    }
    print(
        f"\nfull frame: best {min(full_runs):.2f} s, median {statistics.median(full_runs):.2f} s "
        f"for {len(frame):,} customers; NaN share {nan_share:.1%}"
    )
    if serving:
        print(
            f"serving: {args.batch} customers per frame, median {result['serving_ms_median']} ms, "
            f"p90 {result['serving_ms_p90']} ms over {len(serving)} frames"
        )
    print(f"Machine: {result['machine']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default="cdm_bench", help="embedded server's database")
    parser.add_argument("--as-of", help="ISO time with a zone (default: now)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50, help="customers per serving frame")
    parser.add_argument("--serving-batches", type=int, default=20)
    args = parser.parse_args()
    if args.as_of and datetime.fromisoformat(args.as_of).tzinfo is None:
        raise SystemExit("--as-of needs a time zone, e.g. 2026-11-01T00:00:00Z")
    result = asyncio.run(run(args))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"features_{result['rows']}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
