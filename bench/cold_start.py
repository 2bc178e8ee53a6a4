"""Cold-start benchmark (issue 14). Not a test: run it, read it, put the figures in RESULTS.md.

    python bench/cold_start.py [--customers 2000] [--workers 2] [--runs 5] [--data-dir D]

1. Makes sure a migrated database holds --customers seeded customers (CDM_BENCH_DATABASE_URL,
   or a `cdm_bench` database on the embedded server in bench/out/data) and makes an API key.
2. Starts `cdm serve --workers N` on loopback, --runs times (after one warm-up start that is
   not counted, so every counted start finds the operating system's file cache warm, as a
   restart does), and for each start measures:
   - seconds from launching the process to the first successful GraphQL answer (a query
     that needs no model, polled every 20 ms);
   - each worker's resident memory (VmRSS from /proc) after a few more queries; and again
     once /readyz no longer reports a model as ``loading`` (models load in the background),
     which is what a worker holds from then on.
3. Prints the median of each over the runs.

With --trees A B (source checkouts, e.g. main and a branch), each run starts the server of
every tree back to back (the same run, so the same load on a shared machine), and the medians
are given per tree: a before/after comparison.

The server's data directory (models, MLflow store) is --data-dir, default a fresh one kept in
bench/out/cold-data for all runs: no trained model. Point it at a data directory with
champions (e.g. the demo's `.cdm`) to measure a start that loads models too.
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
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, bench_key, machine, seeded_database

QUERY = "{ customers(first: 5) { nodes { id firstName lastName email } } }"
POLL_SECONDS = 0.02


def post(port: int, key: str, query: str) -> dict | None:
    """The decoded answer, or None while the server does not answer yet."""
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body,
        headers={"Content-Type": "application/json", "Accept": "application/graphql-response+json",
                 "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except (OSError, urllib.error.HTTPError):
        return None


def models_loading(port: int) -> bool:
    """Whether /readyz still reports a model as loading (or does not answer yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            models = json.loads(r.read()).get("models", {})
    except (OSError, ValueError):
        return True
    return any(m.get("state") == "loading" for m in models.values())


def workers_of(pid: int) -> list[int]:
    """The uvicorn worker processes of the server ``pid`` (its spawned children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and "spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_start(
    args: argparse.Namespace, env: dict[str, str], key: str, tree: Path
) -> dict[str, object]:
    """Start the server of source ``tree`` once; the time to its first answer and its
    workers' memory."""
    env = {**env, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "cdm.cli", "serve", "--port", str(args.port),
         "--workers", str(args.workers)], env=env, cwd=tree,
    )  # fmt: skip
    try:
        deadline = started + args.timeout
        while True:
            answer = post(args.port, key, QUERY)
            if answer is not None and "errors" not in answer and answer.get("data"):
                first = time.perf_counter() - started
                break
            if server.poll() is not None or time.perf_counter() > deadline:
                raise SystemExit(f"the server gave no answer (exit {server.returncode})")
            time.sleep(POLL_SECONDS)
        for _ in range(20):  # every worker has answered a few (requests spread over them)
            post(args.port, key, QUERY)
        workers = workers_of(server.pid)
        after_queries = [rss_mb(w) for w in workers]
        while models_loading(args.port) and time.perf_counter() < deadline:
            time.sleep(0.2)
        settled_at = time.perf_counter() - started
        time.sleep(1.0)  # what loading left behind, not a peak in the middle of it
        for _ in range(20):
            post(args.port, key, QUERY)
        settled = [rss_mb(w) for w in workers]
        return {
            "first_answer_s": first, "workers": len(workers), "rss_mb": after_queries,
            "settled_s": settled_at, "settled_rss_mb": settled,
        }  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench" / "out" / "cold-data")
    parser.add_argument("--trees", type=Path, nargs="+", default=[ROOT])
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]

    url = asyncio.run(seeded_database(args.customers, args.seed))
    key = asyncio.run(bench_key(url, "app"))
    args.data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ, "CDM_DATABASE_URL": url, "CDM_DATA_DIR": str(args.data_dir.resolve()),
        "CDM_LOG_LEVEL": "warning",
    }  # fmt: skip
    for tree in trees:  # warm-up: file cache, the MLflow store's first creation
        one_start(args, env, key, tree)
    runs: dict[Path, list[dict[str, object]]] = {tree: [] for tree in trees}
    for i in range(args.runs):
        for tree in trees:
            run = one_start(args, env, key, tree)
            runs[tree].append(run)
            rss = ", ".join(f"{m:.0f}" for m in run["rss_mb"])  # type: ignore[attr-defined]
            settled = ", ".join(f"{m:.0f}" for m in run["settled_rss_mb"])  # type: ignore[attr-defined]
            print(
                f"run {i + 1} {tree}: first answer {run['first_answer_s']:.2f} s; worker RSS "
                f"{rss} MiB; models settled at {run['settled_s']:.1f} s, RSS then {settled} MiB",
                flush=True,
            )

    print(f"\nMachine: {machine()}; server workers: {args.workers}; {args.runs} runs (median)\n")
    print("| tree | first answer s | RSS per worker MiB (after 20 queries) "
          "| RSS per worker MiB (models settled) |")  # fmt: skip
    print("|---|---|---|---|")
    for tree, done in runs.items():

        def median(name: str, done: list[dict[str, object]] = done) -> float:
            return statistics.median(x for r in done for x in r[name])  # type: ignore[attr-defined]

        first = statistics.median(r["first_answer_s"] for r in done)  # type: ignore[misc]
        print(f"| {tree} | {first:.2f} | {median('rss_mb'):.0f} | {median('settled_rss_mb'):.0f} |")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine(), "runs": {str(t): r for t, r in runs.items()}}
    (out / "cold_start.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
