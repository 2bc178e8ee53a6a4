"""API load benchmark (issue: core). Not a test: run it, read it, put the figures in RESULTS.md.

    python bench/api_load.py [--customers 100000] [--workers 2] [--duration 10]

1. Makes sure a database holds --customers seeded customers (CDM_BENCH_DATABASE_URL, or a
   `cdm_bench` database on the embedded server in bench/out/data).
2. Starts `cdm serve` on loopback with --workers processes.
3. For each workload, asks once for its SQL statement count (X-SQL-Statements), then loads
   it with wrk (a bounded run of --duration seconds) at concurrency 1 and 32 and reports
   requests/s, p50 and p99.

W1: one customer by id (random per request) with its 10 latest purchases.
W2: a page of 50 customers, each with its 5 latest purchases and purchase summary.
W3: text search on name/e-mail (trigram index), first 20 matches and their total count.
Needs `wrk` (Debian package wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, bench_key, machine, seeded_database

from sql.database import connect

W1 = """query W1($id: ID!) { customer(id: $id) { id firstName lastName email country
  purchases(first: 10) { nodes { id amount currency purchasedAt quantity
    product { id sku name category } } } } }"""
W3 = """query W3 { customers(first: 20, filter: {search: "anna"}) { totalCount
  nodes { id firstName lastName email } } }"""
W2 = """query W2 { customers(first: 50) { nodes { id firstName lastName email country
  purchases(first: 5) { nodes { id amount currency purchasedAt } }
  purchaseSummary { purchaseCount totalSpend firstPurchaseAt lastPurchaseAt
                    averageOrderValue } } } }"""


async def bench_customers(customers: int, seed: int) -> tuple[str, list[int]]:
    """The seeded database, and a fixed sample of customers with purchases for W1."""
    url = await seeded_database(customers, seed)
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT customer_id FROM customer_purchase_stats"
            " ORDER BY md5(customer_id::text) LIMIT 2000"
        )
        return url, [r["customer_id"] for r in rows]
    finally:
        await conn.close()


KEY = ""  # the frontend's API key, made in main()


def post(port: int, query: str, variables: dict) -> tuple[dict, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body,
        headers={"Content-Type": "application/json", "Accept": "application/graphql-response+json",
                 "Authorization": f"Bearer {KEY}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), response.headers


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("server did not become ready")


LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/graphql-response+json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local ids = {%(ids)s}
local query = %(query)s
local counter = 0
request = function()
  local body
  if #ids > 0 then
    counter = counter + 1
    local id = ids[(counter * 7919) %% #ids + 1]
    body = '{"query":' .. query .. ',"variables":{"id":"' .. id .. '"}}'
  else
    body = '{"query":' .. query .. '}'
  end
  return wrk.format(nil, nil, nil, body)
end
"""


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(port: int, query: str, ids: list[int], connections: int, duration: int) -> dict:
    script = LUA % {
        "ids": ",".join(map(str, ids)), "query": json.dumps(json.dumps(query)), "key": KEY
    }  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", f.name,
         f"http://127.0.0.1:{port}/graphql"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out)[1])
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out)[1])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps, "p50_ms": p50, "p99_ms": p99,
        "non_2xx": int(non2xx[1]) if non2xx else 0, "socket_errors": errors[1] if errors else "",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    url, ids = asyncio.run(bench_customers(args.customers, args.seed))
    global KEY  # one key for the whole run, read by post() and the wrk script
    KEY = asyncio.run(bench_key(url, "app"))
    env = {
        **os.environ, "CDM_DATABASE_URL": url, "CDM_EXPOSE_STATEMENT_COUNT": "true",
        "CDM_LOG_LEVEL": "warning", "CDM_POOL_MAX_SIZE": "20",
    }  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "cdm.cli", "serve", "--port", str(args.port),
         "--workers", str(args.workers)], env=env, cwd=ROOT,
    )  # fmt: skip
    results = {}
    try:
        wait_ready(args.port)
        for name, query, workload_ids in (("W1", W1, ids), ("W2", W2, []), ("W3", W3, [])):
            variables = {"id": str(workload_ids[0])} if workload_ids else {}
            body, headers = post(args.port, query, variables)
            assert "errors" not in body, body
            statements = int(headers["X-SQL-Statements"])
            run_wrk(args.port, query, workload_ids, 32, 3)  # warm-up: caches, pools, JIT-free
            results[name] = {"statements": statements}
            for c in (1, 32):
                results[name][f"c{c}"] = run_wrk(args.port, query, workload_ids, c, args.duration)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"\nMachine: {machine()}; server workers: {args.workers}; {args.customers} customers\n")
    print("| workload | SQL/request | c=1 req/s | c=1 p50 ms | c=1 p99 ms "
          "| c=32 req/s | c=32 p50 ms | c=32 p99 ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        c1, c32 = r["c1"], r["c32"]
        print(f"| {name} | {r['statements']} | {c1['rps']:.0f} | {c1['p50_ms']:.2f} | "
              f"{c1['p99_ms']:.2f} | {c32['rps']:.0f} | {c32['p50_ms']:.2f} | "
              f"{c32['p99_ms']:.2f} |")  # fmt: skip
        for c in ("c1", "c32"):
            if r[c]["non_2xx"] or r[c]["socket_errors"]:
                bad = r[c]
                print(
                    f"  {name} {c}: {bad['non_2xx']} non-2xx, socket errors: {bad['socket_errors']}"
                )
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "api_load.json").write_text(json.dumps({"machine": machine(), **results}, indent=2))


if __name__ == "__main__":
    main()
