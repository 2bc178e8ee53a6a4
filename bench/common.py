"""What the benchmarks share: a seeded database to run on, and a line describing the machine."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sql import migrate  # noqa: E402
from sql.database import connect  # noqa: E402
from sql.embedded import ensure_database, replace_database, start_embedded_server  # noqa: E402


async def seeded_database(customers: int, seed: int, database: str = "cdm_bench") -> str:
    """URL of a migrated database holding at least `customers` seeded customers
    (CDM_BENCH_DATABASE_URL, or `database` on the embedded server in bench/out/data)."""
    url = os.environ.get("CDM_BENCH_DATABASE_URL")
    if not url:
        data_dir = ROOT / "bench" / "out" / "data"
        url = await ensure_database(start_embedded_server(data_dir), database)
    conn = await connect(url)
    try:
        await migrate.migrate(conn)
        have = await conn.fetchval("SELECT count(*) FROM customers")
        if have < customers:
            from ingestion.seed import seed_database

            print(f"seeding {customers - have} customers ...", flush=True)
            started = time.perf_counter()
            await seed_database(conn, customers=customers - have, seed=seed)
            print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)
        return url
    finally:
        await conn.close()


async def fresh_database(name: str) -> str:
    """URL of database ``name``, dropped, made again and migrated, on the
    CDM_BENCH_DATABASE_URL server or the embedded one in bench/out/data."""
    server = os.environ.get("CDM_BENCH_DATABASE_URL") or start_embedded_server(
        ROOT / "bench" / "out" / "data"
    )
    admin = await connect(server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = replace_database(server, name)
    conn = await connect(url)
    try:
        await migrate.migrate(conn)
    finally:
        await conn.close()
    return url


async def bench_key(url: str, role: str) -> str:
    """A new API key of ``role`` for a benchmark's client."""
    from domain.access import Role
    from domain.api_keys import new_key
    from sql.api_keys import insert_key

    key, prefix, secret_hash = new_key()
    conn = await connect(url)
    try:
        await insert_key(conn, f"bench {role}", Role(role), prefix, secret_hash, None)
    finally:
        await conn.close()
    return key


def machine() -> str:
    """Cores, CPU model, memory and Python version of this machine."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}"
