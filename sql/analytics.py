"""Analytics in the database: revenue over time, cohorts, top sellers, score distributions and
group-by aggregates over customers (statements in ``sql/queries/analytics.sql``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import asyncpg

from domain.predictions import RiskBands
from domain.segments import SegmentFilter
from sql.database import Target
from sql.queries import query
from sql.segments import ORDERS, Compiled, member_condition, members_clause

_SEGMENT = "/*segment*/ true"


class Granularity(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class RevenuePoint:
    period: datetime
    revenue: Decimal
    orders: int
    active_customers: int

    @property
    def average_order_value(self) -> Decimal | None:
        return (self.revenue / self.orders).quantize(Decimal("0.01")) if self.orders else None


@dataclass(frozen=True, slots=True)
class RevenueFilter:
    country: str | None = None
    channel: str | None = None
    category: str | None = None
    segment: SegmentFilter | None = None


async def revenue(
    target: Target, granularity: Granularity, start: datetime, end: datetime,
    flt: RevenueFilter, bands: RiskBands, as_of: datetime,
) -> list[RevenuePoint]:  # fmt: skip
    """Revenue, orders and active customers per period in [start, end), empty periods too."""
    sql, extra = query("analytics_revenue"), []
    if flt.segment is not None:
        condition, extra = member_condition(flt.segment, as_of, bands, offset=6)
        sql = sql.replace(_SEGMENT, condition)
    rows = await target.fetch(
        sql, granularity.value, start, end, flt.country, flt.channel, flt.category, *extra
    )
    return [
        RevenuePoint(r["period"], r["revenue"], r["orders"], r["active_customers"]) for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Cohort:
    month: datetime
    size: int
    retention: list[float | None]  # share still buying N months later; None: not yet known


async def cohorts(
    target: Target, start: datetime, end: datetime, months: int, now: datetime
) -> list[Cohort]:
    """First-purchase-month cohorts in [start, end) and their retention over ``months``."""
    rows = await target.fetch(query("analytics_cohorts"), start, end)
    active: dict[datetime, dict[int, int]] = {}
    for r in rows:
        active.setdefault(r["cohort"], {})[r["month_offset"]] = r["customers"]
    current = now.year * 12 + now.month
    found = []
    for month in sorted(active):
        counts = active[month]
        size = counts.get(0, 0)  # everyone buys in their own first month
        observable = current - (month.year * 12 + month.month)
        found.append(Cohort(month, size, [
            (counts.get(k, 0) / size if size else 0.0) if k <= observable else None
            for k in range(months + 1)
        ]))  # fmt: skip
    return found


async def top_products(
    target: Target, start: datetime, end: datetime, category: str | None, first: int
) -> list[asyncpg.Record]:
    return await target.fetch(query("analytics_top_products"), start, end, category, first)


async def top_categories(
    target: Target, start: datetime, end: datetime, first: int
) -> list[asyncpg.Record]:
    return await target.fetch(query("analytics_top_categories"), start, end, first)


async def churn_histogram(target: Target, bins: int) -> list[int]:
    """Customers per bin of stored churn probability (``bins`` equal bins over [0, 1])."""
    counts = [0] * bins
    for r in await target.fetch(query("analytics_churn_histogram"), bins):
        counts[r["bin"] - 1] = r["customers"]
    return counts


async def time_range(target: Target) -> tuple[datetime | None, datetime | None]:
    """The first and last purchase on record (None, None when there is none)."""
    row = await target.fetchrow(query("analytics_time_range"))
    return row["first"], row["last"]


async def kpis(target: Target, start: datetime, end: datetime) -> asyncpg.Record:
    return await target.fetchrow(query("analytics_kpis"), start, end)


class Dimension(StrEnum):
    COUNTRY = "country"
    RFM_SEGMENT = "rfm_segment"
    CHURN_BAND = "churn_band"


class Metric(StrEnum):
    SPEND = "spend"
    ORDERS = "orders"
    PURCHASES = "purchases"
    CHURN_PROBABILITY = "churn_probability"
    DAYS_SINCE_LAST_PURCHASE = "days_since_last_purchase"


def aggregate_statement(
    flt: SegmentFilter | None, group_by: list[Dimension], bands: RiskBands, as_of: datetime,
    limit: int, *, orders: bool = False,
) -> tuple[str, list[object]]:  # fmt: skip
    """The statement of :func:`aggregate` and its parameters (the last one: ``limit``). Every
    dimension has its column, null when not grouped by; rows come in the grouping's order."""
    out = Compiled()
    at = out.bind(as_of)
    metrics = {
        Metric.SPEND: "coalesce(s.total_spend, 0)::float8",
        **({Metric.ORDERS: f"{ORDERS}::float8"} if orders else {}),
        Metric.PURCHASES: "coalesce(s.purchase_count, 0)::float8",
        Metric.CHURN_PROBABILITY: "cs.churn_probability",
        Metric.DAYS_SINCE_LAST_PURCHASE: f"extract(epoch FROM {at}::timestamptz"
        " - s.last_purchase_at)::float8 / 86400",
    }
    keys = []
    for dimension in group_by:
        if dimension is Dimension.COUNTRY:
            expression = "c.country::text"
        elif dimension is Dimension.RFM_SEGMENT:
            expression = "rfm.segment"
        else:
            expression = (
                "CASE WHEN cs.churn_probability IS NULL THEN NULL"
                f" WHEN cs.churn_probability >= {out.bind(bands.high)} THEN 'high'"
                f" WHEN cs.churn_probability >= {out.bind(bands.medium)} THEN 'medium'"
                " ELSE 'low' END"
            )
        keys.append(f"{expression} AS {dimension.value}")
    absent = [f"NULL::text AS {d.value}" for d in Dimension if d not in group_by]
    # Sums and averages over numeric, exact: a float8 sum depends on the order the plan
    # feeds the rows in (two plans of one query differed in the last digits).
    selected = [
        f"{fn}(({sql})::numeric)::float8 AS {metric.value}_{fn}" if fn in ("sum", "avg")
        else f"{fn}({sql}) AS {metric.value}_{fn}"
        for metric, sql in metrics.items() for fn in ("sum", "avg", "min", "max")
    ]  # fmt: skip
    members, extra = members_clause(flt or SegmentFilter(), as_of, bands, len(out.params))
    out.params += extra
    positions = ", ".join(str(i + 1) for i in range(len(keys)))
    grouping = f" GROUP BY {positions} ORDER BY {positions}" if keys else ""
    sql = (
        f"SELECT {', '.join([*keys, *absent, 'count(*) AS count', *selected])} {members}"
        f"{grouping} LIMIT {out.bind(limit)}"
    )
    return sql, out.params


async def aggregate(
    target: Target, flt: SegmentFilter | None, group_by: list[Dimension], bands: RiskBands,
    as_of: datetime, limit: int, *, orders: bool = False,
) -> list[dict[str, object]]:  # fmt: skip
    """Count, sum, average, min and max of every metric per group of customers; orders only
    when asked for (they are counted per customer from the purchases, the costly one)."""
    sql, params = aggregate_statement(flt, group_by, bands, as_of, limit, orders=orders)
    return [dict(r) for r in await target.fetch(sql, *params)]
