"""Reads the data-quality report (statements in ``sql/queries/quality.sql``).

Every statement runs in one read-only, repeatable-read transaction on one connection: the
checks see one snapshot (the purchase-stats comparison cannot be fooled by a purchase landing
between two statements) and one ``now()``, which is the report's ``generated_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache

import asyncpg
import pycountry

from domain.quality import (
    Check,
    DuplicateCandidates,
    DuplicateKind,
    FieldQuality,
    QualityReport,
    SourceFreshness,
    TableQuality,
    hours_between,
)
from sql.executor import Database
from sql.queries import query

# Tables in report order, each with its statement.
_TABLES = ("customers", "identities", "purchases", "interactions", "consents")
# Statements one report runs (the snapshot time, one per table, duplicates, consistency).
STATEMENTS_PER_REPORT = 1 + len(_TABLES) + 2


@cache
def _country_codes() -> list[str]:
    # The database checks only the shape of a code; the list is the one domain/standardize.py
    # accepts on the way in.
    return sorted(c.alpha_2 for c in pycountry.countries)


@cache
def _currency_codes() -> list[str]:
    return sorted(c.alpha_3 for c in pycountry.currencies)


def _table_args(table: str) -> tuple[object, ...]:
    if table == "customers":
        return (_country_codes(),)
    if table == "purchases":
        return (_currency_codes(),)
    return ()


def _table(
    table: str, rows: Sequence[asyncpg.Record], generated_at: datetime
) -> tuple[TableQuality, list[SourceFreshness]]:
    """One table's fields (from its whole-table rows) and its sources' freshness."""
    total = 0
    fields: dict[str, tuple[int, int, list[Check]]] = {}
    freshness: list[SourceFreshness] = []
    for r in rows:
        if not r["whole_table"]:
            freshness.append(
                SourceFreshness(
                    table=table, source=r["source"], rows=r["row_count"],
                    last_record_at=r["last_record_at"], last_event_at=r["last_event_at"],
                    age_hours=hours_between(r["last_record_at"], generated_at),
                )
            )  # fmt: skip
            continue
        total = r["row_count"]
        _filled, _invalid, checks = fields.setdefault(r["field"], (r["filled"], r["invalid"], []))
        if r["rule"] is not None:
            checks.append(
                Check(f"{table}.{r['field']}.{r['rule']}", r["description"], r["count"],
                      r["filled"])
            )  # fmt: skip
    return (
        TableQuality(
            table=table,
            rows=total,
            fields=tuple(
                FieldQuality(field=name, rows=total, filled=filled, invalid=invalid,
                             checks=tuple(checks))
                for name, (filled, invalid, checks) in fields.items()
            ),
        ),
        freshness,
    )  # fmt: skip


async def read_quality_report(conn: asyncpg.Connection) -> QualityReport:
    """The data-quality report, read on `conn` in one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        generated_at: datetime = await conn.fetchval(query("quality_snapshot_time"))
        tables: list[TableQuality] = []
        freshness: list[SourceFreshness] = []
        for table in _TABLES:
            rows = await conn.fetch(query(f"quality_{table}"), *_table_args(table))
            quality, sources = _table(table, rows, generated_at)
            tables.append(quality)
            freshness.extend(sources)
        duplicates = await conn.fetch(query("quality_duplicates"))
        consistency = await conn.fetch(query("quality_consistency"))
    customers = tables[0].rows
    return QualityReport(
        generated_at=generated_at,
        tables=tuple(tables),
        duplicates=tuple(
            DuplicateCandidates(DuplicateKind(r["kind"]), r["description"], r["customers"],
                                r["groups"], customers)
            for r in duplicates
        ),
        consistency=tuple(
            Check(r["name"], r["description"], r["count"], r["population"]) for r in consistency
        ),
        freshness=tuple(freshness),
    )  # fmt: skip


class QualityRepository:
    """The data-quality report over a request's database handle."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    async def report(self) -> QualityReport:
        """The report, read on one pooled connection (counted as its statements)."""
        async with self.db.pool.acquire() as conn:
            report = await read_quality_report(conn)
        # The statements ran on a connection of their own rather than through Database's
        # helpers (which take any free connection, so no snapshot); count them all the same.
        self.db.statements += STATEMENTS_PER_REPORT
        return report
