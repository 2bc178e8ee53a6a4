"""Connections: resolve the database URL (external or embedded) and open asyncpg pools."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import orjson

from sql.embedded import ensure_database, start_embedded_server

# Sessions run in UTC so timestamps reach us, and are compared, as UTC.
_SESSION = {"timezone": "UTC", "application_name": "cdm"}


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


async def create_pool(
    url: str, *, min_size: int = 2, max_size: int = 10, statement_timeout_ms: int = 15_000
) -> asyncpg.Pool:
    """A pool whose sessions run in UTC, with jsonb mapped to Python values.

    Statements are bounded by the server (statement_timeout) rather than by a client-side
    timer per call, which costs a timer per statement and leaves the statement running.
    """
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={**_SESSION, "statement_timeout": str(statement_timeout_ms)},
        command_timeout=None,
    )


async def connect(url: str) -> asyncpg.Connection:
    """One connection configured like the pool's (for the CLI and migrations)."""
    conn = await asyncpg.connect(url, server_settings=_SESSION)
    await _init_connection(conn)
    return conn
