"""Every connection busy: a request waits a bounded time for one, then gets a retryable 503;
it never hangs, and everything works again once a connection is free."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

import api.app
from cdm.settings import Settings
from sql.database import create_pool
from tests.conftest import serving
from tests.factories import add_product
from tests.faults.conftest import cdm_backends, eventually
from tests.http_client import GRAPHQL_RESPONSE, gql

READ = 'query { product(sku: "X-1") { sku price } }'
PYTHON_READ = "query { storedScoresSummary { customers } }"  # not compiled: the main pool
UPDATE = """mutation { upsertProducts(items: [{sku: "X-1", name: "Busy", category: "faults",
  price: "2.00", currency: "EUR"}]) { ... on BatchWritten { inserted updated unchanged } } }"""


async def test_pool_waits_only_its_acquire_timeout(database_url: str) -> None:
    """asyncpg's own shortcuts (fetchval, execute) acquire through ``acquire()`` too, so the
    default timeout bounds them; an explicit timeout still wins."""
    pool = await create_pool(database_url, min_size=1, max_size=1, acquire_timeout=0.3)
    try:
        async with pool.acquire() as held:
            assert await held.fetchval("SELECT 1") == 1
            for attempt in (
                lambda: pool.fetchval("SELECT 1"),
                lambda: pool.execute("SELECT 1"),
                lambda: pool.acquire(),
            ):
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(attempt(), timeout=10)
                assert 0.25 < time.monotonic() - started < 3
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.acquire(timeout=0.05)
            assert time.monotonic() - started < 0.25
        assert await pool.fetchval("SELECT 2") == 2  # free again: served at once
    finally:
        await pool.close()


async def test_pool_close_is_bounded(database_url: str) -> None:
    """A connection that is never given back cannot hold shutdown hostage: close() gives up
    after its timeout and terminates the connections."""
    pool = await create_pool(database_url, min_size=1, max_size=1, close_timeout=0.5)
    leaked = await pool.acquire()
    backend = leaked.get_server_pid()
    started = time.monotonic()
    await asyncio.wait_for(pool.close(), timeout=10)
    assert 0.4 < time.monotonic() - started < 3
    observer = await asyncpg.connect(database_url)
    try:
        await eventually(
            lambda: _gone(observer, backend), within=10, what="the leaked connection to end"
        )
    finally:
        await observer.close()


async def test_a_start_that_cannot_open_both_pools_closes_the_one_it_opened(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's two pools connect at the same time; when one cannot, the lifespan fails
    with its error and the other is closed, not left holding connections."""
    opened: list[asyncpg.Pool] = []

    async def reads_refused(url: str, **options: object) -> asyncpg.Pool:
        if options.get("generic_plans"):  # the compiled reads' pool
            raise ConnectionRefusedError("the reads' pool cannot connect")
        pool = await create_pool(url, **options)  # type: ignore[arg-type]
        opened.append(pool)
        return pool

    monkeypatch.setattr(api.app, "create_pool", reads_refused)
    app = api.app.create_app(Settings(), database_url)
    with pytest.raises(ConnectionRefusedError, match="reads' pool"):
        async with app.router.lifespan_context(app):
            pass
    assert len(opened) == 1
    assert opened[0].is_closing()


async def _gone(conn: asyncpg.Connection, pid: int) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


async def test_exhausted_pool_answers_503_within_the_timeout(
    db: asyncpg.Pool, database_url: str, settings: Settings
) -> None:
    """The app's only connection is taken by a mutation waiting on a row lock this test
    holds; a second request is refused with DB_UNAVAILABLE after about the acquire timeout.

    Needs ``api.app.create_app`` to pass ``acquire_timeout=settings.pool_acquire_timeout_seconds``
    to ``create_pool``."""
    await add_product(db, "X-1", "faults", "1.00")
    tight = settings.model_copy(
        update={"pool_min_size": 1, "pool_max_size": 1, "pool_acquire_timeout_seconds": 0.5}
    )
    locker = await asyncpg.connect(database_url)
    try:
        async with serving(database_url, tight) as http:
            # Served (and the caller's key cached) while the connection is free.
            warm = await gql(http, READ)
            assert warm == {"data": {"product": {"sku": "X-1", "price": "1.00"}}}

            await locker.execute("BEGIN")
            await locker.execute("SELECT 1 FROM products WHERE sku = 'X-1' FOR UPDATE")
            blocked = asyncio.create_task(gql(http, UPDATE))
            await eventually(
                lambda: cdm_backends(locker, waiting_on_lock=True), within=60,
                what="the mutation to wait on the lock with the only connection",
            )  # fmt: skip

            # Reads compiled to SQL have their own pool: writes holding every connection of
            # the main one do not stop them.
            assert await gql(http, READ) == warm
            started = time.monotonic()
            response = await asyncio.wait_for(
                http.post(
                    "/graphql", json={"query": PYTHON_READ}, headers={"Accept": GRAPHQL_RESPONSE}
                ),
                timeout=15,  # a hang fails here instead of stalling the suite
            )
            waited = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            (error,) = response.json()["errors"]
            assert error["extensions"]["code"] == "DB_UNAVAILABLE"
            assert 0.4 < waited < 3
            assert not blocked.done()  # the first request still holds its place

            await locker.execute("ROLLBACK")  # the lock goes: the mutation completes
            written = await asyncio.wait_for(blocked, timeout=15)
            assert written == {
                "data": {"upsertProducts": {"inserted": 0, "updated": 1, "unchanged": 0}}
            }
            after = await gql(http, READ)
            assert after == {"data": {"product": {"sku": "X-1", "price": "2.00"}}}
    finally:
        await locker.close()
