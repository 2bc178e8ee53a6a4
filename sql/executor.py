"""Runs statements on the pool, counting them (per request, so tests and benchmarks can see)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from sql.database import Target
from sql.queries import query


class Database:
    """A pool plus a statement counter; cheap to create per request.

    While a mutation runs, statements go to its transaction's connection instead (see
    :meth:`bind`), so what it reads back includes what it has just written. It also notes
    which customers' records were read (:attr:`customers_read`), for the audit of reads of
    personal data.
    """

    __slots__ = ("_conn", "customers_read", "pool", "statements")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements = 0
        self.customers_read: set[int] = set()
        self._conn: asyncpg.Connection | None = None

    def bind(self, conn: asyncpg.Connection | None) -> None:
        """Run statements on ``conn`` (a mutation's transaction) until bound to None."""
        self._conn = conn

    @property
    def _target(self) -> Target:
        return self._conn if self._conn is not None else self.pool

    def read_customers(self, ids: Iterable[int]) -> None:
        """Note that these customers' records were read."""
        self.customers_read.update(ids)

    async def fetch(self, name: str, *args: object) -> list[asyncpg.Record]:
        """Rows of the named statement."""
        self.statements += 1
        return await self._target.fetch(query(name), *args)

    async def fetchval(self, name: str, *args: object) -> object:
        """First column of the first row of the named statement."""
        self.statements += 1
        return await self._target.fetchval(query(name), *args)

    async def fetch_composed(self, sql: str, args: Sequence[object]) -> list[asyncpg.Record]:
        """Rows of a statement composed from fixed fragments in ``sql/`` (never from input)."""
        self.statements += 1
        return await self._target.fetch(sql, *args)

    async def fetchrow_composed(
        self, sql: str, args: Sequence[object], pool: asyncpg.Pool | None = None
    ) -> asyncpg.Record:
        """The one row of a statement composed from fixed fragments in ``sql/`` (on ``pool``
        rather than this request's, unless a transaction is bound)."""
        self.statements += 1
        target = self._conn if self._conn is not None else (pool or self.pool)
        return await target.fetchrow(sql, *args)

    async def fetchval_composed(self, sql: str, args: Sequence[object]) -> object:
        """First value of a statement composed from fixed fragments in ``sql/``."""
        self.statements += 1
        return await self._target.fetchval(sql, *args)
