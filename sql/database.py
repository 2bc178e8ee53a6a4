"""Connections: resolve the database URL (external or embedded) and open asyncpg pools."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolAcquireContext

from sql.embedded import ensure_database, start_embedded_server

# Sessions run in UTC so timestamps reach us, and are compared, as UTC.
_SESSION = {"timezone": "UTC", "application_name": "cdm"}
_log = logging.getLogger(__name__)

# Where a statement may run: the pool (a connection of its own) or a caller's connection
# (inside the caller's transaction).
Target = asyncpg.Pool | asyncpg.Connection


async def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The configured URL, or the embedded server's ``cdm`` database (started if needed)."""
    if database_url:
        return database_url
    return await ensure_database(start_embedded_server(data_dir))


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb as Python objects, decoded and encoded with orjson (fast, strict UTF-8).
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
    )


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset (a round trip per release).

    asyncpg still rolls back an open transaction. The service never changes session state on
    pooled connections (no SET, LISTEN, advisory locks or open cursors), so nothing else needs
    resetting; that default round trip cost a quarter of a simple request's CPU.
    """


class BoundedPool(asyncpg.Pool):
    """A pool where waiting is bounded by default: acquiring and closing.

    ``acquire()`` (which asyncpg's own ``fetch``/``fetchval``/``execute`` call internally)
    waits at most ``acquire_timeout`` for a free connection, connecting included, then raises
    ``TimeoutError``: a request never queues forever behind a busy pool or an unreachable
    server. ``close()`` waits at most ``close_timeout`` for connections to come back, then
    terminates them, so shutdown cannot hang on a connection that is never released.
    """

    __slots__ = ("_acquire_timeout", "_close_timeout")

    def __init__(
        self, *args: Any, acquire_timeout: float | None, close_timeout: float | None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout
        self._close_timeout = close_timeout

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        """A connection within ``timeout`` (default: the pool's acquire timeout)."""
        return _Acquire(self, timeout)

    def _timeout(self, timeout: float | None) -> float | None:
        """The acquire's bound: none needed when a connection is ready (ready_at_once)."""
        if timeout is None and not self.ready_at_once():
            return self._acquire_timeout
        return timeout

    def ready_at_once(self) -> bool:
        """Whether acquiring cannot wait: a free connection is open and current, so asyncpg
        hands it over without awaiting anything. A timeout then bounds nothing, and costs a
        task and a timer per acquire and a timer per release (about 8 % of a short read's
        CPU). Reads asyncpg's queue of free connections (0.32; tests/faults cover it)."""
        free = getattr(self._queue, "_queue", None)
        return bool(free) and any(
            h.is_connected() and h._generation == self._generation for h in free
        )

    def release_at_once(self, connection: Any) -> bool:
        """Return ``connection`` to the free queue synchronously, when nothing about it needs
        waiting for; False (nothing done) otherwise, for asyncpg's release.

        asyncpg releases in a task of its own (``asyncio.shield``, so that a cancelled caller
        still returns its connection): a task and two turns of the event loop per request,
        about a tenth of a short read's CPU. A connection whose last statement succeeded (the
        caller's job: ``_Acquire``), which is open, current, not cancelling and not in a
        transaction has nothing to reset (sessions are never changed: ``_keep_session``), so
        it goes back as asyncpg's release would end. Uses asyncpg's internals (0.32, pinned
        below 0.33; tests/faults/test_pool_release.py and test_restart.py cover them)."""
        holder = getattr(connection, "_holder", None)
        con = getattr(connection, "_con", None)
        if not (
            self._reset is _keep_session
            and holder is not None
            and holder._pool is self
            and con is not None
            and holder._con is con
            and not con.is_closed()
            and con._protocol.queries_count < holder._max_queries
            and holder._generation == self._generation
            and not con._protocol._is_cancelling()
            and not con._protocol.is_in_transaction()
            and con._top_xact is None
            and not con._listeners
            and not con._log_listeners
        ):
            return False
        con._on_release()
        holder._timeout = None
        holder._release()
        holder._setup_inactive_callback()
        return True

    async def close(self) -> None:
        """Close gracefully within the close timeout, else terminate what is left."""
        if self._close_timeout is None:
            await super().close()
            return
        try:
            await asyncio.wait_for(super().close(), self._close_timeout)
        except TimeoutError:  # asyncpg terminated the connections when it was cancelled
            _log.warning(
                "pool did not close within %.1f s; its connections were terminated",
                self._close_timeout,
            )


class _Acquire(PoolAcquireContext):
    """``async with pool.acquire()``: a connection whose block ended without an exception is
    released at once when it can be (BoundedPool.release_at_once); after an exception (a
    statement that failed may leave its connection mid-protocol, e.g. while the server shuts
    down) always through asyncpg's release, which checks and resets it."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        pool = self.pool
        assert isinstance(pool, BoundedPool)
        self.timeout = pool._timeout(self.timeout)  # decided now, when it is awaited
        return await super().__aenter__()

    def __await__(self) -> Any:
        pool = self.pool
        assert isinstance(pool, BoundedPool)
        self.timeout = pool._timeout(self.timeout)
        return super().__await__()

    async def __aexit__(self, exc_type: Any = None, *_exc: Any) -> None:
        self.done = True
        con, self.connection = self.connection, None
        pool = self.pool
        assert isinstance(pool, BoundedPool)
        if exc_type is None and pool.release_at_once(con):
            return
        await pool.release(con)


async def create_pool(
    url: str, *, min_size: int = 2, max_size: int = 10, statement_timeout_ms: int = 15_000,
    acquire_timeout: float | None = None, close_timeout: float | None = 5.0,
    generic_plans: bool = False,
) -> BoundedPool:  # fmt: skip
    """A pool whose sessions run in UTC, with jsonb mapped to Python values.

    Statements are bounded by the server (statement_timeout) rather than by a client-side
    timer per call, which costs a timer per statement and leaves the statement running.
    Waiting for a connection is bounded by ``acquire_timeout`` (None: unbounded) and closing
    by ``close_timeout``; see ``BoundedPool``. Connections the server dropped (a restart) are
    discarded and replaced by asyncpg on their next use, so the pool recovers by itself.

    ``generic_plans``: plan each prepared statement once (the compiled reads: one large
    statement per query shape, whose planning costs more than running it for one customer,
    and which PostgreSQL's own choice kept re-planning on every execution).
    """
    settings = {**_SESSION, "statement_timeout": str(statement_timeout_ms)}
    if generic_plans:
        settings["plan_cache_mode"] = "force_generic_plan"
    pool = BoundedPool(
        url,
        acquire_timeout=acquire_timeout,
        close_timeout=close_timeout,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        server_settings=settings,
        command_timeout=None,
    )
    await pool
    return pool


async def connect(url: str, *, statement_timeout_ms: int | None = None) -> asyncpg.Connection:
    """One connection configured like the pool's (for the CLI and migrations); statements
    unbounded unless ``statement_timeout_ms`` is given."""
    settings = dict(_SESSION)
    if statement_timeout_ms is not None:
        settings["statement_timeout"] = str(statement_timeout_ms)
    conn = await asyncpg.connect(url, server_settings=settings)
    await _init_connection(conn)
    return conn
