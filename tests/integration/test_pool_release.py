"""A pooled connection never carries a transaction into the next request."""

from __future__ import annotations

from sql.database import create_pool


async def test_a_connection_released_inside_a_transaction_comes_back_clean(database_url):
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        conn = await pool.acquire()
        await conn.execute("BEGIN")  # as a request cancelled inside its transaction leaves it
        await conn.execute("CREATE TEMP TABLE left_behind (x int)")
        await pool.release(conn)
        async with pool.acquire() as again:  # max_size 1: the same connection
            assert not again.is_in_transaction()
            # The next request can start its own transaction, at any isolation level.
            async with again.transaction(isolation="repeatable_read", readonly=True):
                assert await again.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None
    finally:
        await pool.close()
