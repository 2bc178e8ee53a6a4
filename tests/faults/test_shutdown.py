"""SIGTERM on `cdm serve`: no new connections, in-flight requests finish within the grace
period, the pool is closed, and the process exits 0; a request stuck past the grace period
is cancelled (its write rolled back, its client told so in a JSON 503) instead of keeping
the process alive."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import api_key, bearer, fresh_database
from tests.factories import add_product
from tests.faults.conftest import cdm_backends, eventually, free_port, port_refuses
from tests.http_client import GRAPHQL_RESPONSE

UPDATE = """mutation { upsertProducts(items: [{sku: "S-1", name: "Drained", category: "faults",
  price: "3.00", currency: "EUR"}]) { ... on BatchWritten { inserted updated unchanged } } }"""


@dataclass
class Served:
    """A `cdm serve` process, its port, its database and a client with an admin key."""

    process: asyncio.subprocess.Process
    port: int
    url: str
    http: httpx.AsyncClient
    log: Path


@asynccontextmanager
async def cdm_serve(server_url: str, tmp_path: Path, grace: float) -> AsyncIterator[Served]:
    """`python -m cdm.cli serve` on a fresh database and a free port, ready to answer."""
    async with fresh_database(server_url, "cdm_faults") as url:
        key = await api_key(url)
        conn = await asyncpg.connect(url)
        try:
            await add_product(conn, "S-1", "faults", "1.00")  # type: ignore[arg-type]
        finally:
            await conn.close()
        port = free_port()
        env = {
            **os.environ, "CDM_DATABASE_URL": url, "CDM_DATA_DIR": str(tmp_path),
            "CDM_PORT": str(port), "CDM_SHUTDOWN_GRACE_SECONDS": str(grace),
            "CDM_LOG_LEVEL": "warning", "CDM_MODEL_REFRESH_SECONDS": "0",
        }  # fmt: skip
        log = tmp_path / "serve.log"
        with log.open("w") as err:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cdm.cli", "serve", env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=bearer(key), timeout=30
            ) as http:

                async def ready() -> bool:
                    assert process.returncode is None, log.read_text()
                    try:
                        return (await http.get("/readyz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await eventually(ready, within=90, every=0.2, what="cdm serve to be ready")
                yield Served(process, port, url, http, log)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _hold_row_and_send_update(
    served: Served, locker: asyncpg.Connection
) -> asyncio.Task[httpx.Response]:
    """Lock product S-1, send a mutation that must update it, return once it waits."""
    await locker.execute("BEGIN")
    await locker.execute("SELECT 1 FROM products WHERE sku = 'S-1' FOR UPDATE")
    in_flight = asyncio.create_task(
        served.http.post("/graphql", json={"query": UPDATE}, headers={"Accept": GRAPHQL_RESPONSE})
    )
    await eventually(
        lambda: cdm_backends(locker, waiting_on_lock=True), within=60,
        what="the mutation to wait on the row lock",
    )  # fmt: skip
    return in_flight


async def _no_backends(conn: asyncpg.Connection) -> bool:
    return await cdm_backends(conn) == 0


async def _price(conn: asyncpg.Connection) -> Decimal:
    return await conn.fetchval("SELECT price FROM products WHERE sku = 'S-1'")


async def test_sigterm_drains_in_flight_requests(server_url: str, tmp_path: Path) -> None:
    grace = 5.0
    async with cdm_serve(server_url, tmp_path, grace) as served:
        locker = await asyncpg.connect(served.url)
        try:
            in_flight = await _hold_row_and_send_update(served, locker)
            signalled = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            # New connections are refused at once, while the request is still in flight.
            await eventually(
                lambda: asyncio.to_thread(port_refuses, served.port), within=10,
                what="new connections to be refused",
            )  # fmt: skip
            assert not in_flight.done()
            await asyncio.sleep(max(0.0, signalled + 1.0 - time.monotonic()))
            assert served.process.returncode is None  # still draining
            await locker.execute("ROLLBACK")  # the lock goes: the request can finish

            response = await asyncio.wait_for(in_flight, timeout=30)
            assert response.status_code == 200, response.text
            assert response.json() == {
                "data": {"upsertProducts": {"inserted": 0, "updated": 1, "unchanged": 0}}
            }
            code = await asyncio.wait_for(served.process.wait(), grace + 30)
            took = time.monotonic() - signalled
            assert code == 0, served.log.read_text()
            assert took < grace  # it left as soon as the work was done
            assert await _price(locker) == Decimal("3.00")  # the acknowledged write is there
            # The pool was closed: none of the server's connections are left.
            await eventually(lambda: _no_backends(locker), within=10, what="the pool to be closed")
        finally:
            await locker.close()
    assert "Traceback" not in served.log.read_text()


@pytest.mark.parametrize("grace", [2.0])
async def test_a_request_stuck_past_the_grace_period_does_not_hold_the_exit(
    server_url: str, tmp_path: Path, grace: float
) -> None:
    async with cdm_serve(server_url, tmp_path, grace) as served:
        locker = await asyncpg.connect(served.url)
        try:
            in_flight = await _hold_row_and_send_update(served, locker)
            signalled = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(served.process.wait(), grace + 30)
            took = time.monotonic() - signalled
            assert code == 0, served.log.read_text()
            assert grace - 0.5 < took < grace + 4  # waited the grace period, then left
            # Cancelled, so never a success: a JSON 503 saying why, not uvicorn's plain 500.
            response = await asyncio.wait_for(in_flight, timeout=10)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
            assert response.headers["retry-after"] == "1"
            errors = response.json()["errors"]
            assert [e["extensions"]["code"] for e in errors] == ["SHUTTING_DOWN"]
            assert "shutting down" in errors[0]["message"]
            # The cancelled statement was rolled back: still waiting means not committed,
            # and once the lock goes the old price is what remains.
            await locker.execute("ROLLBACK")
            assert await _price(locker) == Decimal("1.00")
            await eventually(lambda: _no_backends(locker), within=10, what="the pool to be closed")
        finally:
            await locker.close()
