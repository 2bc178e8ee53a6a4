"""Customer import benchmark: what one person per identity costs. Not a test: run it, read it.

    python bench/import_customers.py [--customers 100000] [--writers 2]

Writes a CSV of --customers people (external id, names, e-mail, phone), then times
`cdm import customers` as a separate process twice, each time into a fresh
`cdm_bench_customers` database (embedded server in bench/out/data, or
CDM_BENCH_DATABASE_URL's server): one import alone, then two imports of the same file at
once (the race that made duplicates before identity locking). Prints seconds, rows/s and the
customers each run left (one per person is right).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_database  # noqa: E402
from sql.database import connect  # noqa: E402

DB = "cdm_bench_customers"


async def customers_in(url: str) -> int:
    conn = await connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM customers")
    finally:
        await conn.close()


def write_csv(path: Path, people: int) -> None:
    with path.open("w") as f:
        f.write("Kundennr,Vorname,Nachname,E-Mail,Telefon\n")
        for i in range(people):
            f.write(f"K-{i:07d},Name{i % 997},Family{i % 1009},p{i}@example.com,+4930{i:08d}\n")


def run_imports(path: Path, url: str, copies: int, writers: int) -> float:
    command = [
        sys.executable, "-m", "cdm.cli", "import", "customers", str(path), "--source", "crm",
        "--writers", str(writers),
        "--map", "external_id=Kundennr,first_name=Vorname,last_name=Nachname,email=E-Mail,"
        "phone=Telefon",
    ]  # fmt: skip
    env = {**os.environ, "CDM_DATABASE_URL": url, "CDM_LOG_LEVEL": "warning"}
    started = time.perf_counter()
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(copies)
    ]
    for run in runs:
        _, err = run.communicate()
        if run.returncode != 0:
            raise SystemExit(f"import failed: {err.decode()}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=2)
    args = parser.parse_args()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"customers_{args.customers}.csv"
    write_csv(path, args.customers)
    for copies in (1, 2):
        url = asyncio.run(fresh_database(DB))
        seconds = run_imports(path, url, copies, args.writers)
        left = asyncio.run(customers_in(url))
        print(
            f"{copies} import(s) of {args.customers:,} people at once, {args.writers} writers "
            f"each: {seconds:.1f} s ({copies * args.customers / seconds:,.0f} rows/s), "
            f"{left:,} customers left",
            flush=True,
        )


if __name__ == "__main__":
    main()
