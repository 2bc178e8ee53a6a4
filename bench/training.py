"""Model training benchmark (issue: predictive models). Run it, read it, note the figures.

    python bench/training.py [--customers 1000000] [--database cdm_bench_1m] [--tasks churn ...]

1. Makes sure a database holds --customers seeded customers (CDM_BENCH_DATABASE_URL, or the
   --database on the embedded server in bench/out/data), seeding more if it holds fewer.
2. For each task, runs what `cdm train TASK` runs with its default plan (as of --as-of,
   default now: 6 training cutoffs 60 days apart plus the evaluation cutoff, horizon 90 days,
   up to 100,000 sampled customers per cutoff): point-in-time features and labels, LightGBM
   fits, the baselines, the evaluation; then records the run in a fresh local MLflow store
   (bench/out/mlflow). Times each phase (from the pipeline's progress messages) and prints
   the comparison table.

Target on 2 cores: churn training (end to end) under 3 minutes at 1,000,000 customers.
Features for every customer at one as-of time: bench/features.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine, seeded_database

from ml.registry import ModelRegistry, default_tracking_uri
from ml.training import pipeline
from ml.training.plan import TrainingPlan
from sql.database import connect


async def train_one(url: str, task: str, plan: TrainingPlan, registry: ModelRegistry) -> dict:
    phases: list[tuple[str, float]] = []
    started = last = time.perf_counter()

    def progress(message: str) -> None:
        nonlocal last
        now = time.perf_counter()
        if phases:
            phases[-1] = (phases[-1][0], now - last)
        phases.append((message, 0.0))
        last = now
        print(f"  {now - started:7.1f} s  {message}", flush=True)

    conn = await connect(url)
    try:
        run = await pipeline.train(conn, [task], plan, progress=progress)
        (trained,), plan = run.trained, run.plan
    finally:
        await conn.close()
    fitted = time.perf_counter()
    phases[-1] = (phases[-1][0], fitted - last)

    recorded = registry.record(trained, plan.describe())
    done = time.perf_counter()
    data_seconds = sum(s for m, s in phases if not m.startswith("training"))
    return {
        "task": task,
        "total_seconds": round(done - started, 1),
        "data_seconds": round(data_seconds, 1),
        "fit_and_evaluate_seconds": round(fitted - started - data_seconds, 1),
        "mlflow_record_seconds": round(done - fitted, 1),
        "phases": [(m, round(s, 1)) for m, s in phases],
        "training_rows": sum(int(t["customers"]) for t in trained.data["training"]),
        "comparison": trained.comparison,
        "gate": recorded.decision.reason,
    }


async def run(args: argparse.Namespace) -> list[dict]:
    url = await seeded_database(args.customers, args.seed, args.database)
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC)
    plan = TrainingPlan(as_of=as_of, max_customers=args.max_customers)
    store = ROOT / "bench" / "out" / "mlflow"  # fresh for every run
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    registry = ModelRegistry(default_tracking_uri(store), store / "artifacts")
    results = []
    for task in args.tasks:
        print(f"\n{task}: as of {as_of:%Y-%m-%d}", flush=True)
        result = await train_one(url, task, plan, registry)
        print(
            f"{task}: {result['total_seconds']} s end to end (data {result['data_seconds']} s, "
            f"fit + evaluation {result['fit_and_evaluate_seconds']} s, MLflow "
            f"{result['mlflow_record_seconds']} s), {result['training_rows']:,} training rows"
        )
        for model, row in result["comparison"].items():
            print(f"  {model:16s} " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
        results.append(result)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:,.0f} MB; Machine: {machine()}")
    for r in results:
        r["machine"] = machine()
        r["peak_rss_mb"] = round(peak)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database", default="cdm_bench_1m", help="embedded server's database")
    parser.add_argument("--as-of", help="ISO time with a zone (default: now)")
    parser.add_argument("--max-customers", type=int, default=100_000, help="sampled per cutoff")
    parser.add_argument("--tasks", nargs="+", default=list(pipeline.TASKS), choices=pipeline.TASKS)
    args = parser.parse_args()
    if args.as_of and datetime.fromisoformat(args.as_of).tzinfo is None:
        raise SystemExit("--as-of needs a time zone, e.g. 2026-11-01T00:00:00Z")
    results = asyncio.run(run(args))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"training_{args.customers}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
