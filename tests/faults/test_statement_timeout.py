"""A statement stopped by CDM_STATEMENT_TIMEOUT_MS is answered once, as what it is: a 504
with a `TIMEOUT` code and Retry-After, after one run (never run again, never a 500, never
reported as the database being unavailable).

The statements wait on a lock the test holds, so they always outlive the timeout, however
loaded the machine is; whether a read ran twice is read from pg_stat_activity (a second run
would have started later than the one the test saw waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

import asyncpg
import httpx
import pytest

from cdm.settings import Settings
from tests.conftest import serving
from tests.factories import add_customer, add_product
from tests.faults.conftest import eventually
from tests.http_client import GRAPHQL_RESPONSE

TIMEOUT_MS = 1_000
LIST = "{ customers(first: 5) { nodes { id } } }"
UPDATE = """mutation { upsertProducts(items: [{sku: "S-1", name: "Late", category: "faults",
  price: "3.00", currency: "EUR"}]) { ... on BatchWritten { updated } } }"""


@pytest.fixture
async def http(db, database_url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    quick = settings.model_copy(update={"statement_timeout_ms": TIMEOUT_MS})
    async with serving(database_url, quick) as client:
        yield client


async def _waiting(observer: asyncpg.Connection) -> list[asyncpg.Record]:
    """CDM's statements waiting on a lock: (pid, query, query_start)."""
    await observer.execute("SELECT pg_stat_clear_snapshot()")
    return await observer.fetch(
        "SELECT pid, query, query_start FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'cdm' AND wait_event_type = 'Lock'"
    )


async def _runs_since(observer: asyncpg.Connection, query: str, first: datetime) -> int:
    """CDM sessions whose latest statement is ``query`` started after ``first`` (a re-run)."""
    await observer.execute("SELECT pg_stat_clear_snapshot()")
    return await observer.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'cdm' AND query = $1 AND query_start > $2",
        query, first,
    )  # fmt: skip


def _assert_timeout(response: httpx.Response) -> None:
    assert response.status_code == 504, response.text
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["TIMEOUT"]
    assert "longer than this server allows" in body["errors"][0]["message"]
    assert "data" not in body or body["data"] is None


async def _send_while_locked(
    http: httpx.AsyncClient, db: asyncpg.Pool, lock: str, document: str
) -> tuple[httpx.Response, asyncpg.Record]:
    """Hold ``lock``, send ``document``, note the statement waiting on it; the response and
    the statement seen waiting (the lock is held until the response has come)."""
    locker = await db.acquire()
    observer = await db.acquire()
    try:
        await locker.execute("BEGIN")
        await locker.execute(lock)
        request = http.post(
            "/graphql", json={"query": document}, headers={"Accept": GRAPHQL_RESPONSE}
        )
        sent = asyncio.create_task(request)
        seen: list[asyncpg.Record] = []

        async def waits() -> bool:
            seen[:] = await _waiting(observer)
            return bool(seen) or sent.done()

        await eventually(waits, within=60, every=0.02, what="the statement to wait on the lock")
        response = await sent
        assert len(seen) == 1, seen
        return response, seen[0]
    finally:
        await locker.execute("ROLLBACK")
        await db.release(locker)
        await db.release(observer)


async def test_a_read_over_the_statement_timeout_runs_once_and_answers_timeout(db, http):
    await add_customer(db, first_name="Ann")
    for _ in range(3):  # the same answer every time, one run each time
        response, waited = await _send_while_locked(
            http, db, "LOCK TABLE customers IN ACCESS EXCLUSIVE MODE", LIST
        )
        _assert_timeout(response)
        async with db.acquire() as observer:
            assert await _runs_since(observer, waited["query"], waited["query_start"]) == 0
    # Once the lock is gone, the same read works (nothing was left broken).
    ok = await http.post("/graphql", json={"query": LIST}, headers={"Accept": GRAPHQL_RESPONSE})
    assert ok.status_code == 200
    assert len(ok.json()["data"]["customers"]["nodes"]) == 1


async def test_a_write_over_the_statement_timeout_answers_timeout_and_writes_nothing(db, http):
    await add_product(db, "S-1", "faults", "1.00")
    response, _ = await _send_while_locked(
        http, db, "SELECT 1 FROM products WHERE sku = 'S-1' FOR UPDATE", UPDATE
    )
    _assert_timeout(response)
    assert await db.fetchval("SELECT price FROM products WHERE sku = 'S-1'") == Decimal("1.00")
