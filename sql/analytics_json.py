"""The analytics root fields as JSON built in the database (issue 14).

The views and row sources the SQL compiler (``api/sql_analytics.py``) renders the analytics
fields with. The rows are those of the named statements of ``sql/queries/analytics.sql`` that
``sql/analytics.py`` runs for the Python path; what that path computes in Python over them
(average order values, empty histogram bins, cohort retention shares) is stated here in SQL,
rendered exactly as the Python path serializes it (``cdm_json_float``: migration 0014).
"""

from __future__ import annotations

from sql.json_read import TIME, python_float

FLOAT = python_float("{}")  # a template: FLOAT.format(expression)
# The average order value: sql.analytics.RevenuePoint's and the kpis' quantize to the cent.
_PER_ORDER = "cdm_per_order({a}.revenue, {a}.orders)::text"

REVENUE_POINT = {
    "period": TIME.format("{a}.period"),
    "revenue": "{a}.revenue::text",
    "orders": "{a}.orders",
    "active_customers": "{a}.active_customers",
    "average_order_value": _PER_ORDER,
}
KPIS = {
    "customers": "{a}.customers",
    "revenue": "{a}.revenue::text",
    "orders": "{a}.orders",
    "active_customers": "{a}.active_customers",
    "average_order_value": _PER_ORDER,
}
TIME_RANGE = {"first": TIME.format("{a}.first"), "last": TIME.format("{a}.last")}
PRODUCT_SALES = {
    "revenue": "{a}.revenue::text",
    "units": "{a}.units",
    "customers": "{a}.customers",
}
CATEGORY_SALES = {"category": "{a}.category", **PRODUCT_SALES}
HISTOGRAM_BIN = {
    "from_": FLOAT.format("{a}.lower"),
    "to": FLOAT.format("{a}.upper"),
    "customers": "{a}.customers",
}
COHORT = {"month": TIME.format("{a}.cohort"), "size": "{a}.size", "retention": "{a}.retention"}
# customersAggregate over the rows of sql.analytics.aggregate_statement: its key (the RFM
# segment as the GraphQL enum's member name, each the upper-cased value), its count, and the
# statistics of each metric, whose columns are named "<metric>_<fn>": a Stats object is
# rendered with the alias "<rows>.<metric>".
AGGREGATE_KEY = {
    "country": "{a}.country",
    "rfm_segment": "upper({a}.rfm_segment)",
    "churn_band": "{a}.churn_band",
}
CUSTOMER_AGGREGATE = {"count": "{a}.count"}
STATS = {fn: FLOAT.format("{a}_" + fn) for fn in ("sum", "avg", "min", "max")}


def ranked(rows: str, alias: str, obj: str, joins: str = "") -> str:
    """The JSON array of ``obj`` over ``rows`` (a top list, ranked by its column ``n``)."""
    return (
        f"(SELECT coalesce(json_agg({obj} ORDER BY {alias}.n), '[]'::json)"
        f" FROM ({rows}) {alias}{joins})"
    )


TOP_PRODUCT_JOIN = " JOIN products pr ON pr.id = {a}.id"


def histogram(counts: str, bins: str) -> str:
    """Every bin of analytics_churn_histogram's ``counts`` (``bins`` of them, the empty ones
    too), with its bounds i / bins and (i + 1) / bins: sql.analytics.churn_histogram and
    the resolver's bounds, IEEE divisions both."""
    return (
        f"SELECT g.i, g.i::float8 / {bins} AS lower, (g.i + 1)::float8 / {bins} AS upper,"
        f" coalesce(h.customers, 0) AS customers"
        f" FROM generate_series(0, {bins} - 1) g(i) LEFT JOIN ({counts}) h ON h.bin = g.i + 1"
    )


def _month_number(t: str) -> str:
    """year * 12 + month of the timestamp ``t`` in UTC (as Python counts months)."""
    utc = f"{t} AT TIME ZONE 'UTC'"
    return f"(extract(year FROM {utc}) * 12 + extract(month FROM {utc}))"


def cohorts(rows: str, months: str, now: str) -> str:
    """One row per cohort of analytics_cohorts' ``rows`` (a CTE's name), as sql.analytics.cohorts
    makes it: its size (buyers in its own month), and its retention over ``months`` later
    months, the share of the size buying then (0.0 for an empty cohort), null for a month
    that has not come yet at ``now``."""
    share = "CASE WHEN k.size <> 0 THEN coalesce(a.customers, 0)::float8 / k.size ELSE 0.0 END"
    retention = (
        f"(SELECT json_agg(CASE WHEN g.m <= k.observable THEN {FLOAT.format(share)} END"
        f" ORDER BY g.m) FROM generate_series(0, {months}) g(m)"
        f" LEFT JOIN {rows} a ON a.cohort = k.cohort AND a.month_offset = g.m)"
    )
    return (
        f"SELECT k.cohort, k.size, {retention} AS retention FROM ("
        f"SELECT r.cohort, coalesce(max(r.customers) FILTER (WHERE r.month_offset = 0), 0) AS size,"
        f" {_month_number(now)} - {_month_number('r.cohort')} AS observable"
        f" FROM {rows} r GROUP BY r.cohort) k"
    )
