"""The parity check of the SQL compiler: both paths on one snapshot, compared (issue 14).

With ``CDM_VERIFY_SQL_READS`` on (the test suite turns it on for every test), a query the SQL
compiler answers is also executed by graphql-core, inside the same REPEATABLE READ read-only
transaction, so concurrent writers cannot make the two differ. Any difference in data, or an
error graphql-core reports where the SQL path answered, fails the request with a 500 and is
kept in :data:`MISMATCHES` for the test suite to fail the test that sent it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from graphql import ExecutionResult

from api.compiled import from_database
from api.context import Context
from sql.database import connect

_log = logging.getLogger("cdm.api.parity")

MISMATCHES: list[str] = []


class ParityMismatch(Exception):
    """The SQL path and graphql-core answered the same query differently."""


class _Serialized:
    """One connection shared by a request's concurrent loaders, one statement at a time."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn: asyncpg.Connection | None = conn
        self._lock = asyncio.Lock()

    def _open(self) -> asyncpg.Connection:
        if self._conn is None:  # a loader task outliving its request: not on a pooled conn
            raise RuntimeError("the parity check's connection is closed")
        return self._conn

    async def close(self) -> None:
        """Wait for the statement in flight, then refuse any more."""
        async with self._lock:
            self._conn = None

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with self._lock:
            return await self._open().fetch(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> object:
        async with self._lock:
            return await self._open().fetchval(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        async with self._lock:
            return await self._open().fetchrow(sql, *args)


async def answer_checked(
    pool: asyncpg.Pool, url: str, context: Context, sql: str, params: list[object],
    reference: Callable[[Context], Awaitable[ExecutionResult]],
    masked: Callable[[Any], Any], query: str,
    complete: Callable[[bytes], Awaitable[bytes | None]],
) -> tuple[bytes, asyncpg.Record] | None:  # fmt: skip
    """The SQL path's data (the row's JSON as ``complete`` finishes it: None to fall back)
    and row, after checking graphql-core answers the same on its snapshot (``reference``
    executes the query in a context; ``masked`` masks its data for the role)."""
    # A connection of its own, closed after: after an error graphql-core cancels the sibling
    # fields' tasks, possibly in the middle of a statement on it, so it must never be pooled.
    conn = await connect(url, statement_timeout_ms=context.settings.statement_timeout_ms)
    try:
        transaction = conn.transaction(isolation="repeatable_read", readonly=True)
        await transaction.start()
        shared = _Serialized(conn)
        try:
            context.db.bind(shared)  # type: ignore[arg-type]
            row = await context.db.fetchrow_composed(sql, params)
            answer = await complete(row[0])
            if answer is None:  # a Python field failed: its siblings may have been cancelled
                return None
            other = Context.for_request(pool, context.settings, context.scorer, context.caller)
            other.db.bind(shared)  # type: ignore[arg-type]
            result = await reference(other)
        finally:
            context.db.bind(None)
            await shared.close()
    finally:
        conn.terminate()  # read only: nothing to commit
    for error in result.errors or ():
        cause = error.original_error
        if cause is not None and from_database(cause):
            raise cause  # the database failed the reference (a restart ...): answered as such
    data = orjson.loads(answer)
    expected = masked(result.data)
    if result.errors or not _same(data, expected):
        problem = (
            f"SQL and graphql-core differ for {query!r}:\n  sql:          {data!r}\n"
            f"  graphql-core: {expected!r}\n  errors: {result.errors!r}"
        )
        _log.error(problem)
        MISMATCHES.append(problem)
        raise ParityMismatch(problem)
    return answer, row


def _same(data: Any, expected: Any) -> bool:
    """Equal as the client reads them: as JSON text too, where ``1`` is not ``1.0`` (they are
    equal as Python values)."""
    return data == expected and orjson.dumps(data) == orjson.dumps(expected)
