"""The audit log in the database (named statements in ``sql/queries/audit.sql``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from domain.audit import AuditEntry, AuditKind
from domain.times import check_time
from sql.database import Target
from sql.queries import query


def _values(e: AuditEntry) -> tuple[object, ...]:
    return (e.actor, e.role, e.kind.value, e.operation, list(e.customer_ids), e.request_id,
            dict(e.details))  # fmt: skip


async def record(conn: asyncpg.Connection, entry: AuditEntry) -> None:
    """Append one entry (inside the caller's transaction, so it commits with the change)."""
    await conn.execute(query("audit_insert"), *_values(entry))


async def record_many(pool: Target, entries: Sequence[AuditEntry]) -> None:
    """Append many entries in one statement (all or none)."""
    if not entries:
        return
    await pool.execute(
        query("audit_insert_many"),
        [e.actor for e in entries], [e.role for e in entries],
        [e.kind.value for e in entries], [e.operation for e in entries],
        ["{" + ",".join(map(str, e.customer_ids)) + "}" for e in entries],
        [e.request_id for e in entries],
        [orjson.dumps(dict(e.details)).decode() for e in entries],
    )  # fmt: skip


def _entry(r: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        actor=r["actor"], role=r["role"], kind=AuditKind(r["kind"]), operation=r["operation"],
        customer_ids=tuple(r["customer_ids"]), request_id=r["request_id"],
        details=r["details"], at=r["at"], id=r["id"],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to read; every field optional."""

    customer_id: int | None = None
    actor: str | None = None
    operation: str | None = None
    kind: AuditKind | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        check_time(self.since, "since")
        check_time(self.until, "until")

    def args(self) -> tuple[object, ...]:
        kind = self.kind.value if self.kind else None
        return (self.customer_id, self.actor, self.operation, kind, self.since, self.until)


async def page(
    pool: Target,
    flt: AuditFilter,
    *,
    after: tuple[datetime, int] | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Entries matching ``flt``, newest first, after the keyset ``after``."""
    rows = await pool.fetch(
        query("audit_page"), *flt.args(), after[0] if after else None,
        after[1] if after else None, limit,
    )  # fmt: skip
    return [_entry(r) for r in rows]


async def count(pool: Target, flt: AuditFilter) -> int:
    """How many entries match ``flt``."""
    return int(await pool.fetchval(query("audit_count"), *flt.args()))
