"""Saved segments in the database, and their definitions compiled to SQL.

A definition (``domain.segments.SegmentFilter``) becomes one boolean condition over the
customer `c`, its purchase totals `s`, stored scores `cs` and RFM `rfm`. Every value goes in
as a bind parameter; the SQL text is assembled only from the fixed fragments below, so no
input can change a statement's shape beyond choosing among them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import asyncpg

from domain.predictions import RiskBand, RiskBands
from domain.segments import (
    ANALYTICS_PURPOSE,
    Range,
    Segment,
    SegmentFilter,
    parse_filter,
    to_json,
)
from sql.database import Target
from sql.queries import query

# Everything a condition may refer to; erased customers (tombstones) are never members.
FROM = """FROM customers c
  LEFT JOIN customer_purchase_stats s ON s.customer_id = c.id
  LEFT JOIN customer_scores cs ON cs.customer_id = c.id
  LEFT JOIN customer_rfm rfm ON rfm.customer_id = c.id"""
_PLACEHOLDER = re.compile(r"\$(\d+)")
# A customer's orders: distinct order references (a line without one is an order by itself).
ORDERS = (
    "(SELECT count(DISTINCT coalesce(p.order_ref, p.external_id)) FROM purchases p"
    " WHERE p.customer_id = c.id)"
)


@dataclass
class Compiled:
    """A condition and its bind values (``$1`` onwards, after ``offset`` earlier ones)."""

    params: list[object] = field(default_factory=list)
    offset: int = 0

    def bind(self, value: object) -> str:
        self.params.append(value)
        return f"${self.offset + len(self.params)}"


def compile_filter(
    node: SegmentFilter, as_of: datetime, bands: RiskBands, *, offset: int = 0
) -> tuple[str, list[object]]:
    """The SQL condition for ``node`` (time windows end at ``as_of``) and its parameters."""
    out = Compiled(offset=offset)
    condition = _node(node, as_of, bands, out)
    used = {int(n) for n in _PLACEHOLDER.findall(condition)}
    if used != set(range(offset + 1, offset + len(out.params) + 1)):
        # A value bound but not referred to (or the reverse): PostgreSQL would refuse the
        # statement. Our bug, caught here rather than as a database error.
        raise RuntimeError(f"segment condition uses {sorted(used)}, binds {len(out.params)}")
    return condition, out.params


def _between(
    expression: str | Callable[[], str], bounds: Range | None, out: Compiled, cast: str
) -> list[str]:
    """``expression`` within ``bounds`` (open ends: no condition). An expression that binds
    values of its own is given as a function, called only when a bound uses it: a value
    bound but never referred to makes PostgreSQL refuse the statement."""
    if bounds is None or (bounds.min is None and bounds.max is None):
        return []
    text = expression() if callable(expression) else expression
    parts = []
    if bounds.min is not None:
        parts.append(f"{text} >= {out.bind(_number(bounds.min, cast, ROUND_CEILING))}::{cast}")
    if bounds.max is not None:
        parts.append(f"{text} <= {out.bind(_number(bounds.max, cast, ROUND_FLOOR))}::{cast}")
    return parts


def _number(value: Decimal, cast: str, rounding: str) -> object:
    if cast == "bigint":  # a count: `orders >= 2.5` means at least 3
        return int(value.to_integral_value(rounding))
    return float(value) if cast == "float8" else value


def _latest_decision(purpose: str) -> str:
    """The customer's latest consent decision for ``purpose`` (a placeholder), NULL when
    never asked."""
    return (
        "(SELECT k.granted FROM consents k WHERE k.customer_id = c.id"
        f" AND k.purpose = {purpose} ORDER BY k.recorded_at DESC, k.id DESC LIMIT 1)"
    )


def _window(column: str, within_days: int | None, as_of: datetime, out: Compiled) -> list[str]:
    """``column`` before ``as_of`` and, with ``within_days``, no earlier than that many days
    before it."""
    conditions = []
    if within_days is not None:
        conditions.append(f"{column} >= {out.bind(as_of - timedelta(days=within_days))}")
    conditions.append(f"{column} < {out.bind(as_of)}")
    return conditions


def _node(node: SegmentFilter, as_of: datetime, bands: RiskBands, out: Compiled) -> str:
    parts: list[str] = []
    if node.countries:
        parts.append(f"c.country = ANY ({out.bind(list(node.countries))}::text[])")
    parts += _between("coalesce(s.total_spend, 0)", node.total_spend, out, "numeric")
    parts += _between(ORDERS, node.orders, out, "bigint")
    if node.days_since_last_purchase is not None:
        # Customers who never bought have no recency: they match no recency condition.
        def days() -> str:
            at = out.bind(as_of)
            return f"(extract(epoch FROM {at}::timestamptz - s.last_purchase_at) / 86400)"

        parts.append("s.last_purchase_at IS NOT NULL")
        parts += _between(days, node.days_since_last_purchase, out, "numeric")
    if node.rfm_segments:
        segments = [s.value for s in node.rfm_segments]
        parts.append(f"rfm.segment = ANY ({out.bind(segments)}::text[])")
    if node.churn_bands:
        ors = []
        for band in node.churn_bands:
            if band is RiskBand.HIGH:
                ors.append(f"cs.churn_probability >= {out.bind(bands.high)}")
            elif band is RiskBand.MEDIUM:
                ors.append(
                    f"(cs.churn_probability >= {out.bind(bands.medium)}"
                    f" AND cs.churn_probability < {out.bind(bands.high)})"
                )
            else:
                ors.append(f"cs.churn_probability < {out.bind(bands.medium)}")
        parts.append("(" + " OR ".join(ors) + ")")
    parts += _between("cs.churn_probability", node.churn_probability, out, "float8")
    parts += _between("cs.purchase_30d_probability", node.purchase_probability_30d, out, "float8")
    parts += _between("cs.expected_purchases", node.expected_purchases, out, "float8")
    if node.consented_to is not None:
        parts.append(f"{_latest_decision(out.bind(node.consented_to))} IS TRUE")
    if node.bought is not None:
        b = node.bought
        conditions = ["p.customer_id = c.id"]
        if b.sku is not None:
            conditions.append(f"pr.sku = {out.bind(b.sku)}")
        if b.category is not None:
            conditions.append(f"pr.category = {out.bind(b.category)}")
        conditions += _window("p.purchased_at", b.within_days, as_of, out)
        parts.append(
            "EXISTS (SELECT 1 FROM purchases p JOIN products pr ON pr.id = p.product_id"
            f" WHERE {' AND '.join(conditions)})"
        )
    if node.interactions is not None:
        n = node.interactions

        def count() -> str:
            conditions = ["i.customer_id = c.id", f"i.kind = {out.bind(n.kind)}"]
            if n.channel is not None:
                conditions.append(f"i.channel = {out.bind(n.channel)}")
            conditions += _window("i.occurred_at", n.within_days, as_of, out)
            return f"(SELECT count(*) FROM interactions i WHERE {' AND '.join(conditions)})"

        parts += _between(count, Range(_dec(n.min), _dec(n.max)), out, "bigint")
    for child in node.all_of:
        parts.append(_node(child, as_of, bands, out))
    if node.any_of:
        parts.append("(" + " OR ".join(_node(c, as_of, bands, out) for c in node.any_of) + ")")
    for child in node.none_of:
        parts.append(f"NOT coalesce({_node(child, as_of, bands, out)}, false)")
    return "(" + " AND ".join(parts) + ")" if parts else "true"


def _dec(value: int | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _segment(r: asyncpg.Record) -> Segment:
    return Segment(
        id=r["id"], name=r["name"], description=r["description"],
        definition=parse_filter(r["definition"]), created_by=r["created_by"],
        created_at=r["created_at"], updated_at=r["updated_at"],
    )  # fmt: skip


def segment_of(r: asyncpg.Record) -> Segment:
    """The domain segment of a row of the `segments` table (segment_by_id ...)."""
    return _segment(r)


async def create(
    conn: asyncpg.Connection, name: str, description: str | None, definition: SegmentFilter,
    created_by: str,
) -> Segment | None:  # fmt: skip
    """Store a new segment; None when the name is taken."""
    row = await conn.fetchrow(
        query("segment_insert"), name, description, to_json(definition), created_by
    )
    return _segment(row) if row else None


async def by_id(target: Target, segment_id: int) -> Segment | None:
    row = await target.fetchrow(query("segment_by_id"), segment_id)
    return _segment(row) if row else None


async def by_name(target: Target, name: str) -> Segment | None:
    row = await target.fetchrow(query("segment_by_name"), name)
    return _segment(row) if row else None


async def all_segments(target: Target) -> list[Segment]:
    return [_segment(r) for r in await target.fetch(query("segments_all"))]


async def delete(conn: asyncpg.Connection, segment_id: int) -> bool:
    return await conn.fetchval(query("segment_delete"), segment_id) is not None


def members_clause(
    node: SegmentFilter, as_of: datetime, bands: RiskBands, offset: int = 0
) -> tuple[str, list[object]]:
    """``FROM … WHERE`` the definition's members (tombstones never are), and its values."""
    condition, params = compile_filter(node, as_of, bands, offset=offset)
    return f"{FROM} WHERE c.erased_at IS NULL AND {condition}", params


async def size(target: Target, node: SegmentFilter, as_of: datetime, bands: RiskBands) -> int:
    """How many customers the definition holds now."""
    members, params = members_clause(node, as_of, bands)
    return int(await target.fetchval(f"SELECT count(*) {members}", *params))


async def record_size(target: Target, segment_id: int, count: int) -> None:
    await target.execute(query("segment_size_insert"), segment_id, count)


async def size_history(
    target: Target, segment_id: int, limit: int = 365
) -> list[tuple[datetime, int]]:
    rows = await target.fetch(query("segment_sizes"), segment_id, limit)
    return [(r["at"], r["size"]) for r in rows]


async def member_ids(
    target: Target, node: SegmentFilter, as_of: datetime, bands: RiskBands, *,
    after: int | None, limit: int,
) -> list[int]:  # fmt: skip
    """A page of member ids, in id order after ``after``."""
    members, params = members_clause(node, as_of, bands, offset=2)
    sql = f"SELECT c.id {members} AND c.id > $1 ORDER BY c.id LIMIT $2"
    rows = await target.fetch(sql, after or 0, limit, *params)
    return [r["id"] for r in rows]


async def stats(
    target: Target, node: SegmentFilter, as_of: datetime, bands: RiskBands
) -> dict[str, Any]:
    """Totals over the members: size, spend, purchases, churn probability."""
    members, params = members_clause(node, as_of, bands)
    return dict(await target.fetchrow(f"{query('segment_stats_select')} {members}", *params))


async def member_contacts(
    conn: asyncpg.Connection, node: SegmentFilter, as_of: datetime, bands: RiskBands,
    purpose: str,
) -> list[asyncpg.Record]:  # fmt: skip
    """Members with their contact fields, only those whose latest decision for ``purpose``
    is a grant: what an export for a channel may carry."""
    # the segment's own consent condition, added to its definition
    node = SegmentFilter(all_of=(node, SegmentFilter(consented_to=purpose)))
    members, params = members_clause(node, as_of, bands)
    return await conn.fetch(f"{query('segment_export_select')} {members} ORDER BY c.id", *params)


async def member_attributes(
    conn: asyncpg.Connection, node: SegmentFilter, as_of: datetime, bands: RiskBands
) -> list[asyncpg.Record]:
    """Members by id with their non-contact attributes (an analytics export), leaving out
    those whose latest decision for analytics is a refusal (no decision is not a refusal)."""
    members, params = members_clause(node, as_of, bands, offset=1)
    not_refused = f"{_latest_decision('$1')} IS NOT FALSE"
    sql = f"{query('segment_attributes_select')} {members} AND {not_refused} ORDER BY c.id"
    return await conn.fetch(sql, ANALYTICS_PURPOSE, *params)


def member_condition(
    node: SegmentFilter, as_of: datetime, bands: RiskBands, offset: int
) -> tuple[str, list[object]]:
    """``c.id IN (members)`` for other statements (analytics filtered by a segment)."""
    members, params = members_clause(node, as_of, bands, offset=offset)
    return f"c.id IN (SELECT c.id {members})", params


async def segments_of(
    target: Target, customer_id: int, as_of: datetime, bands: RiskBands
) -> list[Segment]:
    """The saved segments ``customer_id`` belongs to now (for data-subject exports)."""
    found = []
    for segment in await all_segments(target):
        condition, params = compile_filter(segment.definition, as_of, bands, offset=1)
        sql = f"SELECT EXISTS (SELECT 1 {FROM} WHERE c.id = $1 AND {condition})"
        if await target.fetchval(sql, customer_id, *params):
            found.append(segment)
    return found
