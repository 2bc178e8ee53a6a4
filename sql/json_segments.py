"""JSON fragments of saved segments and RFM, for the query compiler (issue 14).

Like ``sql/json_read.py`` (whose conventions these follow): views map a domain attribute
name to the SQL expression that renders it exactly as the Python path serializes it, over
the rows of the named statements of ``sql/queries``. A segment's membership is the one
condition ``sql/segments.py`` compiles from its definition, embedded with its values bound.
"""

from __future__ import annotations

from datetime import datetime

from domain.predictions import RiskBands
from domain.rfm import RfmSegment
from domain.segments import SegmentFilter
from sql.json_read import TIME, Raw, Statement, integer, json_list, key, python_float
from sql.queries import query
from sql.segments import members_clause

SEGMENT = {
    "id": "{a}.id::text",
    "name": "{a}.name",
    "description": "{a}.description",
    "created_by": "{a}.created_by",
    "created_at": TIME.format("{a}.created_at"),
}
SEGMENT_SIZE = {"at": TIME.format("{a}.at"), "size": "{a}.size"}
# Over a row of segment_stats_select.
SEGMENT_STATS = {
    "customers": "{a}.customers",
    "total_spend": "{a}.total_spend::text",
    "average_spend": "{a}.average_spend::text",
    "purchases": "{a}.purchases",
    "average_churn_probability": python_float("{a}.average_churn_probability"),
    "scored": "{a}.scored",
}
RFM = {
    "as_of": TIME.format("{a}.as_of"),
    "recency_days": "{a}.recency_days",
    "frequency": "{a}.frequency",
    "monetary": "{a}.monetary::text",
    "r": "{a}.r",
    "f": "{a}.f",
    "m": "{a}.m",
    "code": "({a}.r::text || {a}.f::text || {a}.m::text)",  # Rfm.code
    "segment": "upper({a}.segment)",  # the GraphQL enum's member name
}
# Over the row of rfm_summary_total (below).
RFM_SUMMARY = {"as_of": TIME.format("{a}.as_of"), "customers": "{a}.customers"}
# Over a row of rfm_segment_sizes (below).
RFM_SEGMENT_SIZE = {
    "segment": "upper({a}.segment)",
    "customers": "{a}.customers",
    "share": python_float("{a}.share"),
    "monetary": "{a}.monetary::text",
    "average_recency_days": python_float("{a}.average_recency_days"),
    "average_frequency": python_float("{a}.average_frequency"),
}


def members(st: Statement, definition: SegmentFilter, as_of: datetime, bands: RiskBands) -> str:
    """``FROM … WHERE`` the definition's members (as ``c``), its values bound in ``st``."""
    return st.embed(*members_clause(definition, as_of, bands))


def member_page(st: Statement, members_sql: str, after: int | None, limit: int) -> str:
    """The members' customer rows in id order after ``after``, ``limit`` at most."""
    where = "" if after is None else f" AND c.id > {st.bind(after, 'bigint')}"
    return f"SELECT c.* {members_sql}{where} ORDER BY c.id LIMIT {integer(limit).sql}"


def member_count(members_sql: str) -> str:
    """How many members (Segment.size)."""
    return f"(SELECT count(*) {members_sql})"


def member_stats(obj: str, members_sql: str) -> str:
    """``obj`` over the members' totals (segment_stats_select, as ``x``)."""
    return f"(SELECT {obj} FROM ({query('segment_stats_select')} {members_sql}) x)"


def segment_list(objects: list[str]) -> str:
    """The JSON array of ``objects`` (each a segment's object or null: deleted since it was
    looked up), in the given order."""
    if not objects:
        return "'[]'::json"
    values = ", ".join(f"({o}, {n})" for n, o in enumerate(objects))
    return (
        "(SELECT coalesce(json_agg(v.o ORDER BY v.n), '[]'::json)"
        f" FROM (VALUES {values}) v(o, n) WHERE v.o IS NOT NULL)"
    )


def rfm_summary(st: Statement, obj: str) -> str:
    """``obj`` over the snapshot's as-of time and size (as ``t``)."""
    rows = st.named("rfm_summary")
    return (
        f"(SELECT {obj} FROM (SELECT max(q.as_of) AS as_of,"
        f" coalesce(sum(q.customers), 0) AS customers FROM ({rows}) q) t)"
    )


def rfm_segment_sizes(st: Statement, obj: str, summary: str) -> str:
    """The JSON array of ``obj`` over every RFM segment (as ``q``), in the enum's order, an
    absent one with zeros (sql.rfm.summary); ``summary`` is the alias of the snapshot's row
    (its total gives the shares, as a Python float division: 0.0 of nobody)."""
    rows = st.named("rfm_summary")
    names = ", ".join(key(s.value) for s in RfmSegment)  # our enum's values: literals
    return (
        f"(SELECT coalesce(json_agg({obj} ORDER BY q.o), '[]'::json) FROM ("
        "SELECT e.segment, e.o, coalesce(x.customers, 0) AS customers,"
        " coalesce(x.monetary, 0) AS monetary,"
        " coalesce(x.average_recency_days, 0) AS average_recency_days,"
        " coalesce(x.average_frequency, 0) AS average_frequency,"
        f" CASE WHEN {summary}.customers = 0 THEN 0::float8"
        f" ELSE coalesce(x.customers, 0)::float8 / {summary}.customers::float8 END AS share"
        f" FROM unnest(ARRAY[{names}]::text[]) WITH ORDINALITY e(segment, o)"
        f" LEFT JOIN ({rows}) x ON x.segment = e.segment) q)"
    )


def rfm_of_customer(st: Statement, customer: str, obj: str) -> str:
    """``obj`` over the customer's row of the RFM snapshot (as ``rf``); null if none."""
    rows = st.named("rfm_by_customer_ids", Raw(f"ARRAY[{customer}.id]"))
    return f"(SELECT {obj} FROM ({rows}) rf)"


def sizes(st: Statement, segment: str, obj: str) -> str:
    """The segment's recorded sizes, oldest first, the newest 365 (SegmentType.size_history)."""
    rows = st.named("segment_sizes", Raw(f"{segment}.id"), integer(365))
    return json_list(obj, rows, "z", "z.at")
