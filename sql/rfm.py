"""RFM snapshots in the database (``sql/queries/rfm.sql``; the rule in ``domain.rfm``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg

from domain.rfm import Rfm, RfmSegment, SegmentSize, segment_map
from sql.database import Target
from sql.queries import query


async def refresh(conn: asyncpg.Connection, as_of: datetime) -> int:
    """Replace the snapshot with everyone's RFM as of ``as_of``; how many customers it holds.

    One transaction: readers see the old snapshot until the new one is complete.
    """
    async with conn.transaction():
        await conn.execute(query("rfm_clear"))
        status = await conn.execute(query("rfm_compute"), as_of, *segment_map())
    return int(status.split()[-1])


def rfm_of(r: asyncpg.Record) -> Rfm:
    """The domain RFM of a `customer_rfm` row."""
    return Rfm(
        as_of=r["as_of"], recency_days=r["recency_days"], frequency=r["frequency"],
        monetary=r["monetary"], r=r["r"], f=r["f"], m=r["m"], segment=RfmSegment(r["segment"]),
    )  # fmt: skip


async def by_customer_ids(target: Target, ids: Sequence[int]) -> dict[int, Rfm]:
    """The stored RFM of these customers (absent: not in the snapshot)."""
    rows = await target.fetch(query("rfm_by_customer_ids"), list(ids))
    return {r["customer_id"]: rfm_of(r) for r in rows}


async def summary(target: Target) -> tuple[datetime | None, list[SegmentSize]]:
    """The snapshot's as-of time and the size and value of each segment (all eleven)."""
    rows = {r["segment"]: r for r in await target.fetch(query("rfm_summary"))}
    as_of = max((r["as_of"] for r in rows.values()), default=None)
    sizes = []
    for segment in RfmSegment:
        row = rows.get(segment.value)
        sizes.append(
            SegmentSize(segment, row["customers"], row["monetary"], row["average_recency_days"],
                        row["average_frequency"])
            if row else SegmentSize(segment, 0, Decimal(0), 0.0, 0.0)
        )  # fmt: skip
    return as_of, sizes
