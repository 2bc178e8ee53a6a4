"""Connections go back to the pool at once when nothing needs resetting, and through
asyncpg's own release otherwise (sql/database.py, BoundedPool.release)."""

from __future__ import annotations

import asyncio
from unittest import mock

import asyncpg
import pytest

from sql.database import create_pool
from tests.faults.conftest import eventually


@pytest.fixture
async def pool(database_url: str):
    pool = await create_pool(database_url, min_size=2, max_size=2, acquire_timeout=5)
    yield pool
    await pool.close()


def asyncpg_releases() -> mock._patch:
    """Counts the releases that take asyncpg's path."""
    return mock.patch.object(asyncpg.Pool, "release", autospec=True, side_effect=RELEASE)


RELEASE = asyncpg.Pool.release


async def test_an_idle_connection_is_taken_and_released_at_once_and_reused(pool) -> None:
    pids = set()
    timed = mock.patch.object(asyncpg.compat, "wait_for", side_effect=asyncpg.compat.wait_for)
    with asyncpg_releases() as slow, timed as waits:
        for _ in range(20):
            pids.add(await pool.fetchval("SELECT pg_backend_pid()"))
            assert pool.get_idle_size() == 2  # back in the queue when the call returns
        results = await asyncio.gather(*(pool.fetchval("SELECT 1") for _ in range(10)))
    assert results == [1] * 10
    assert slow.call_count == 0
    # Only the ten at once found no open connection free (2 for 10): they waited, bounded.
    assert 0 < waits.call_count <= 10
    assert len(pids) == 1  # the most recently used connection is taken again
    assert pool.get_idle_size() == 2


async def test_a_connection_left_in_a_transaction_is_rolled_back_by_asyncpg(pool) -> None:
    with asyncpg_releases() as slow:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_behind (x int)")
            pid = await conn.fetchval("SELECT pg_backend_pid()")
    assert slow.call_count == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") == pid
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None


async def test_a_connection_whose_statement_failed_goes_through_asyncpg(pool) -> None:
    """A failed statement may leave its connection mid-protocol (a server shutting down
    sends its error, then closes): asyncpg's release checks it before anyone reuses it."""
    with asyncpg_releases() as slow, pytest.raises(asyncpg.DivisionByZeroError):
        await pool.fetchval("SELECT 1 / 0")
    assert slow.call_count == 1
    assert await pool.fetchval("SELECT 2") == 2


async def test_a_cancelled_query_returns_its_connection_through_asyncpg(pool) -> None:
    with asyncpg_releases() as slow:
        task = asyncio.create_task(pool.fetchval("SELECT pg_sleep(30)"))
        await eventually(lambda: pool.get_idle_size() < 2, within=60, what="statement running")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert slow.call_count == 1
    # The pool is whole again and answers; the cancelled statement is not running.
    assert await asyncio.gather(pool.fetchval("SELECT 1"), pool.fetchval("SELECT 2")) == [1, 2]
    async with pool.acquire() as conn:
        running = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
            "AND state = 'active'"
        )
    assert running == 0


async def test_a_pool_whose_connections_came_back_at_once_closes_at_once(database_url) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2, close_timeout=30)
    await asyncio.gather(*(pool.fetchval("SELECT 1") for _ in range(4)))
    await asyncio.wait_for(pool.close(), 10)  # nothing left "in use" for close to wait on
    assert pool.is_closing()


async def test_waiting_for_a_busy_pool_stays_bounded_either_way(database_url) -> None:
    """Whether entered with `async with` or awaited, an acquire that has to wait is bounded by
    the pool's acquire timeout (decided when it is awaited, not when it was made)."""
    pool = await create_pool(database_url, min_size=1, max_size=1, acquire_timeout=0.2)
    try:
        waiting = pool.acquire()  # made while the connection is free...
        held = await pool.acquire()  # ...awaited after it was taken

        async def awaited() -> object:
            return await pool.acquire()

        for attempt in (waiting.__aenter__(), awaited()):
            task = asyncio.ensure_future(attempt)
            await asyncio.wait({task}, timeout=60)  # a generous bound: not a timing test
            assert task.done(), "the acquire waited unbounded"
            assert isinstance(task.exception(), TimeoutError)
        await pool.release(held)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
