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


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose sessions run in UTC, with jsonb mapped to Python values."""
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings=_SESSION,
        command_timeout=60,
    )


async def connect(url: str) -> asyncpg.Connection:
    """One connection configured like the pool's (for the CLI and migrations)."""
    conn = await asyncpg.connect(url, server_settings=_SESSION)
    await _init_connection(conn)
    return conn
