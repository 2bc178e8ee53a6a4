"""The database stops and comes back under traffic: the API answers every request with data
or one retryable 503, recovers without a restart of its own, and loses nothing it
acknowledged."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from api.app import create_app
from cdm.settings import Settings
from sql import migrate
from sql.database import connect
from sql.embedded import ensure_database
from tests.conftest import api_key, bearer
from tests.faults.conftest import Cluster, ServerThread, cdm_backends, eventually
from tests.http_client import GRAPHQL_RESPONSE

UPSERT = """mutation($items: [ProductInput!]!) { upsertProducts(items: $items) {
  __typename ... on BatchWritten { inserted updated unchanged } } }"""
READ = """query($sku: String!) { product(sku: $sku) { sku price }
  products(first: 3, category: "faults") { totalCount nodes { sku } } }"""
CLIENTS = 4


@dataclass
class Outcome:
    """One request as the client saw it."""

    kind: str  # "write" or "read"
    sku: str
    started: float
    ended: float
    status: int | None = None  # None: no HTTP answer (timeout, reset): never acceptable
    body: Any = None
    retry_after: str | None = None
    failure: str | None = None


class Traffic:
    """Clients that each upsert a new product, then read it back, until told to stop."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.outcomes: list[Outcome] = []
        self._stop = asyncio.Event()

    async def _send(self, kind: str, sku: str, query: str, variables: dict[str, Any]) -> Outcome:
        outcome = Outcome(kind, sku, time.monotonic(), 0.0)
        try:
            response = await self.http.post(
                "/graphql", json={"query": query, "variables": variables},
                headers={"Accept": GRAPHQL_RESPONSE},
            )  # fmt: skip
            outcome.status = response.status_code
            outcome.body = response.json()
            outcome.retry_after = response.headers.get("retry-after")
        except Exception as exc:  # a timeout or a dropped connection: recorded, then asserted
            outcome.failure = repr(exc)
        outcome.ended = time.monotonic()
        self.outcomes.append(outcome)
        return outcome

    async def _client(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            sku = f"R-{n}-{i}"
            item = {"sku": sku, "name": f"Restart {sku}", "category": "faults",
                    "price": "1.00", "currency": "EUR"}  # fmt: skip
            wrote = await self._send("write", sku, UPSERT, {"items": [item]})
            read = await self._send("read", sku, READ, {"sku": sku})
            if wrote.status != 200 or read.status != 200:
                await asyncio.sleep(0.05)  # a client honouring Retry-After, sped up

    async def run(self) -> None:
        await asyncio.gather(*(self._client(n) for n in range(CLIENTS)))

    def stop(self) -> None:
        self._stop.set()

    def count(self, status: int, *, kind: str | None = None, since: float = 0.0) -> int:
        return sum(
            1 for o in self.outcomes
            if o.status == status and o.started >= since and kind in (None, o.kind)
        )  # fmt: skip


def assert_unavailable(status: int | None, body: Any, retry_after: str | None) -> None:
    """A 503 carrying exactly one retryable DB_UNAVAILABLE error and a Retry-After."""
    assert status == 503, body
    assert retry_after == "1"
    assert set(body) == {"errors"}, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "DB_UNAVAILABLE", error


async def _update_waiting_on_a_lock(
    http: httpx.AsyncClient, url: str
) -> tuple[asyncpg.Connection, asyncio.Task[httpx.Response]]:
    """A request surely in flight when the database goes: its update of product R-0-1 waits
    on a row lock that the returned connection holds."""
    locker = await asyncpg.connect(url)
    await locker.execute("BEGIN")
    await locker.execute("SELECT 1 FROM products WHERE sku = 'R-0-1' FOR UPDATE")
    item = {"sku": "R-0-1", "name": "changed", "category": "faults", "price": "2.00",
            "currency": "EUR"}  # fmt: skip
    in_flight = asyncio.create_task(
        http.post("/graphql", json={"query": UPSERT, "variables": {"items": [item]}},
                  headers={"Accept": GRAPHQL_RESPONSE})
    )  # fmt: skip
    await eventually(
        lambda: cdm_backends(locker, waiting_on_lock=True), within=60,
        what="the update to wait on the lock",
    )  # fmt: skip
    return locker, in_flight


async def _ready(http: httpx.AsyncClient, status: int) -> bool:
    return (await http.get("/readyz")).status_code == status


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_restart_mid_traffic(cluster: Cluster, settings: Settings, mode: str) -> None:
    """``fast`` is an orderly restart, ``immediate`` a crash with WAL recovery."""
    url = await ensure_database(cluster.url)
    conn = await connect(url)
    try:
        await migrate.migrate(conn)
    finally:
        await conn.close()
    key = await api_key(url)
    app = create_app(settings, url)

    with ServerThread(app) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(key), timeout=15
        ) as http:
            traffic = Traffic(http)
            running = asyncio.create_task(traffic.run())
            try:
                await eventually(
                    lambda: (traffic.count(200, kind="write") >= 20), within=60,
                    what="20 writes before the restart",
                )  # fmt: skip

                locker, in_flight = await _update_waiting_on_a_lock(http, url)
                await asyncio.to_thread(cluster.stop, mode)
                down = time.monotonic()
                locker.terminate()  # the server has gone; nothing to close politely

                blocked = await asyncio.wait_for(in_flight, timeout=30)
                assert_unavailable(
                    blocked.status_code, blocked.json(), blocked.headers.get("retry-after")
                )
                readyz = await http.get("/readyz")
                assert readyz.status_code == 503
                assert readyz.json() == {"status": "unavailable", "database": "unreachable"}
                await eventually(
                    lambda: (traffic.count(503, since=down) >= 2 * CLIENTS), within=60,
                    what="requests refused while the database is down",
                )  # fmt: skip
                assert traffic.count(200, since=down) == 0
                assert (await http.get("/readyz")).status_code == 503

                await asyncio.to_thread(cluster.start)
                await eventually(lambda: _ready(http, 200), within=60, what="ready again")
                back = time.monotonic()
                await eventually(
                    lambda: (traffic.count(200, kind="write", since=back) >= 20), within=60,
                    what="20 writes after the restart",
                )  # fmt: skip
            finally:
                traffic.stop()
                await asyncio.wait_for(running, timeout=60)
    assert app.state.pool.is_closing()  # the lifespan closed the pool on the way out

    outcomes = traffic.outcomes
    assert [o.failure for o in outcomes if o.failure] == []  # every request was answered
    assert max(o.ended - o.started for o in outcomes) < 10  # and none waited long
    assert {o.status for o in outcomes} <= {200, 503}
    for o in outcomes:
        if o.status == 503:
            assert_unavailable(o.status, o.body, o.retry_after)
        else:
            assert "errors" not in o.body, o.body
    # The pool recovered by itself: once ready, nothing more was refused.
    assert [o for o in outcomes if o.started >= back and o.status != 200] == []

    acknowledged = {o.sku for o in outcomes if o.kind == "write" and o.status == 200}
    for o in outcomes:
        if o.kind == "write" and o.status == 200:
            assert o.body["data"]["upsertProducts"] == {
                "__typename": "BatchWritten", "inserted": 1, "updated": 0, "unchanged": 0,
            }  # fmt: skip
        if o.kind == "read" and o.status == 200 and o.sku in acknowledged:
            assert o.body["data"]["product"] == {"sku": o.sku, "price": "1.00"}
    check = await asyncpg.connect(url)
    try:
        stored = {r["sku"] for r in await check.fetch("SELECT sku FROM products")}
    finally:
        await check.close()
    assert acknowledged - stored == set()  # nothing acknowledged was lost
    assert len(acknowledged) >= 40
