"""Scoring benchmark (issue: scores in the API). Run it, read it, note the figures.

    python bench/scores.py [--customers 100000] [--requests 300] [--score-all-database cdm_bench_1m]

1. Makes sure `cdm_bench` (embedded server in bench/out/data, or CDM_BENCH_DATABASE_URL)
   holds --customers seeded customers, and that bench/out/scoring holds champion models
   trained on it (`cdm train all` as of the seed's last purchase, if missing).
2. Serves the API (`cdm serve`, one worker) over it and measures, from a client process:
   (a) one customer with churnRisk, nextPurchase and 5 recommendations: p50/p99 at
       concurrency 1 and 32 (random customers, scored as of the data's end);
   (b) `scores` for 1,000 random ids with the same fields.
3. (c) times `cdm score --all` on --score-all-database (1,000,000 customers), same models.

Targets on 2 cores: (a) p99 < 50 ms at concurrency 1; (b) < 300 ms; (c) < 3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, bench_key, machine, seeded_database

from sql.database import connect

DATA_DIR = ROOT / "bench" / "out" / "scoring"
ONE = """query($id: ID!, $at: DateTime) { customer(id: $id) { id
  churnRisk(asOf: $at) { probability band percentile factors { feature contribution } }
  nextPurchase(asOf: $at) { probability30d expectedPurchases expectedAt }
  recommendations(first: 5, asOf: $at) { score explanation product { id name } } } }"""
BATCH = """query($ids: [ID!], $at: DateTime) { scores(customerIds: $ids) { id
  churnRisk(asOf: $at) { probability band }
  nextPurchase(asOf: $at) { probability30d expectedPurchases expectedDays }
  recommendations(first: 5, asOf: $at) { product { id } } } }"""


def cdm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cdm.cli", *args], env={**os.environ, **env}, check=True,
        capture_output=True, text=True,
    )  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def worker(one, latencies: list[float], count: int) -> None:
    for _ in range(count):
        await one(latencies)


async def measure(url: str, port: int, ids: list[int], at: str, requests: int) -> dict:
    base = f"http://127.0.0.1:{port}/graphql"
    rng = np.random.default_rng(1)
    # The frontend's key for the customer view, a personalization engine's for the batch.
    app = {"Authorization": f"Bearer {await bench_key(url, 'app')}"}
    engine = {"Authorization": f"Bearer {await bench_key(url, 'personalization')}"}
    async with httpx.AsyncClient(timeout=60, headers=app) as http:
        for _ in range(20):  # warm up: parse caches, model pages, the day's item statistics
            await http.post(base, json={"query": ONE, "variables": {"id": str(ids[0]), "at": at}})

        async def one(latencies: list[float]) -> None:
            cid = str(int(rng.choice(ids)))
            started = time.perf_counter()
            r = await http.post(base, json={"query": ONE, "variables": {"id": cid, "at": at}})
            latencies.append((time.perf_counter() - started) * 1000)
            body = r.json()
            assert "errors" not in body, body["errors"]

        results = {}
        for concurrency in (1, 32):
            latencies: list[float] = []
            started = time.perf_counter()
            if concurrency == 1:
                for _ in range(requests):
                    await one(latencies)
            else:
                count = requests // concurrency
                await asyncio.gather(*(worker(one, latencies, count) for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            results[f"one_c{concurrency}"] = {
                "p50_ms": round(percentile(latencies, 50), 1),
                "p99_ms": round(percentile(latencies, 99), 1),
                "req_per_s": round(len(latencies) / elapsed, 1),
            }
            print(f"(a) c={concurrency}: {results[f'one_c{concurrency}']}", flush=True)

        # (b) as the engine sees it (customers without consent to personalization or
        # profiling are withheld, so less is scored), and as a frontend key sees it (all).
        for label, who in (("batch_1000", engine), ("batch_1000_all_scored", app)):
            batch = []
            withheld = 0
            for _ in range(15):
                chosen = [str(int(i)) for i in rng.choice(ids, size=1000, replace=False)]
                started = time.perf_counter()
                body = {"query": BATCH, "variables": {"ids": chosen, "at": at}}
                r = await http.post(base, json=body, headers=who)
                batch.append((time.perf_counter() - started) * 1000)
                body = r.json()
                assert "errors" not in body
                assert len(body["data"]["scores"]) == 1000
                withheld += sum(c["churnRisk"] is None for c in body["data"]["scores"])
            batch = batch[3:]  # the first ones warm up
            results[label] = {
                "median_ms": round(statistics.median(batch), 1),
                "p90_ms": round(percentile(batch, 90), 1),
                "withheld_share": round(withheld / 15_000, 2),
            }
            print(f"(b) 1,000 ids, {label}: {results[label]}", flush=True)
    return results


async def run(args: argparse.Namespace) -> dict:
    url = await seeded_database(args.customers, args.seed, "cdm_bench")
    conn = await connect(url)
    try:
        last = await conn.fetchval("SELECT max(last_purchase_at) FROM customer_purchase_stats")
        ids = [r["customer_id"] for r in await conn.fetch(
            "SELECT customer_id FROM customer_purchase_stats")]  # fmt: skip
    finally:
        await conn.close()
    at = last.isoformat()
    env = {"CDM_DATABASE_URL": url, "CDM_DATA_DIR": str(DATA_DIR), "CDM_LOG_LEVEL": "warning"}
    if not (DATA_DIR / "mlflow.db").exists():
        print(f"training all models on {args.customers:,} customers as of {at} ...", flush=True)
        cdm("train", "all", "--as-of", at, env=env)
    server = subprocess.Popen(
        [sys.executable, "-m", "cdm.cli", "serve", "--port", str(args.port)],
        env={**os.environ, **env, "CDM_MODEL_REFRESH_SECONDS": "0"},
    )
    try:
        for _ in range(600):  # ready, and every model compiled (the first start compiles)
            try:
                ready = httpx.get(f"http://127.0.0.1:{args.port}/readyz")
                models = ready.json().get("models", {}).values()
                if ready.status_code == 200 and models and all(m["compiled"] for m in models):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        results = await measure(url, args.port, ids, at, args.requests)
    finally:
        server.terminate()
        server.wait(30)

    if args.score_all_database:
        big = await seeded_database(1, args.seed, args.score_all_database)
        started = time.perf_counter()
        out = cdm("score", "--all", "--as-of", at,
                  env={**env, "CDM_DATABASE_URL": big})  # fmt: skip
        results["score_all_seconds"] = round(time.perf_counter() - started, 1)
        print(out.stdout[-400:])
        print(f"(c) cdm score --all on {args.score_all_database}: "
              f"{results['score_all_seconds']} s", flush=True)  # fmt: skip
    results["machine"] = machine()
    print(f"Machine: {results['machine']}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8811)
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--score-all-database", default="cdm_bench_1m")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    out = ROOT / "bench" / "out"
    (out / "scores.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
