"""Runs statements on the pool, counting them (per request, so tests and benchmarks can see)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from sql.queries import query


class Database:
    """A pool plus a statement counter; cheap to create per request."""

    __slots__ = ("pool", "statements")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements = 0

    async def fetch(self, name: str, *args: object) -> list[asyncpg.Record]:
        """Rows of the named statement."""
        self.statements += 1
        return await self.pool.fetch(query(name), *args)

    async def fetchval(self, name: str, *args: object) -> object:
        """First column of the first row of the named statement."""
        self.statements += 1
        return await self.pool.fetchval(query(name), *args)

    async def fetch_composed(self, sql: str, args: Sequence[object]) -> list[asyncpg.Record]:
        """Rows of a statement composed from fixed fragments in ``sql/`` (never from input)."""
        self.statements += 1
        return await self.pool.fetch(sql, *args)

    async def fetchval_composed(self, sql: str, args: Sequence[object]) -> object:
        """First value of a statement composed from fixed fragments in ``sql/``."""
        self.statements += 1
        return await self.pool.fetchval(sql, *args)
