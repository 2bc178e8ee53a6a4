"""The analytics root fields compiled into the one statement of api/sql_compiler.py.

Each root field renders as a JSON-building subquery over the rows of the same named
statement its resolver runs (``sql/queries/analytics.sql``); what the Python path computes
over those rows is stated in SQL by ``sql/analytics_json.py``. The arguments are checked by
the resolvers' own checks (``api/schema/analytics.py``) before anything is rendered: when
one would refuse them, the request falls back so that the Python path words the error.

Left to the Python path: ``revenue`` filtered by a saved segment (its definition is read
before its condition is composed), and ``customersAggregate`` when it selects
``daysSinceLastPurchase``: measured from the moment each path runs, it differs between them
by that much, which the parity check would rightly report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from api.schema.analytics import (
    RevenueFilterInput,
    aggregate_arguments,
    category_argument,
    check_bins,
    check_cohorts,
    check_revenue,
    check_top,
    check_window,
    revenue_filter,
)
from api.selection import Fallback
from domain.errors import UserError
from sql import analytics_json as a
from sql import json_read as j
from sql.analytics import Granularity, Metric, aggregate_statement

if TYPE_CHECKING:
    from api.sql_compiler import Env, Sel

T = TypeVar("T")


def _checked(check: Callable[..., T], *args: object) -> T:
    """``check(*args)``, or a fallback when it refuses them (graphql-core words it)."""
    try:
        return check(*args)
    except UserError as error:
        raise Fallback("analytics arguments to refuse") from error


def _time_range(env: Env, sel: Sel, _alias: str) -> str:
    rows = env.st.named("analytics_time_range")
    return j.one(env.object(sel.children, "TimeRange", "t"), f"({rows})", "t")


def _revenue(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    granularity, start, end = Granularity(args["granularity"]), args["from_"], args["to"]
    _checked(check_revenue, granularity, start, end)
    flt = args.get("filter") or RevenueFilterInput()
    if flt.segment_id is not None:
        raise Fallback("revenue of a segment")  # the segment is read before it is composed
    country, channel, category = _checked(revenue_filter, flt)
    rows = env.st.named(
        "analytics_revenue", granularity.value, start, end, country, channel, category
    )
    return j.json_list(env.object(sel.children, "RevenuePoint", "r"), rows, "r", "r.period")


def _cohort_retention(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    start, end, months = args["from_"], args["to"], args["months"]
    _checked(check_cohorts, start, end, months)
    st = env.st
    rows = env.cte(st.named("analytics_cohorts", start, end))
    # The resolver's "now", taken as it would take it, when the request is answered.
    source = a.cohorts(rows, j.integer(months).sql, st.bind(datetime.now(UTC), "timestamptz"))
    return j.json_list(env.object(sel.children, "Cohort", "k"), source, "k", "k.cohort")


def _top_products(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    start, end, first = args["from_"], args["to"], args["first"]
    _checked(check_top, start, end, first)
    category = _checked(category_argument, args.get("category"))
    rows = env.st.named("analytics_top_products", start, end, category, j.integer(first))
    obj = env.object(sel.children, "ProductSales", "t")
    return a.ranked(rows, "t", obj, a.TOP_PRODUCT_JOIN.format(a="t"))


def _sold_product(env: Env, sel: Sel, _alias: str) -> str:
    return env.object(sel.children, "Product", "pr")  # joined by TOP_PRODUCT_JOIN


def _top_categories(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    start, end, first = args["from_"], args["to"], args["first"]
    _checked(check_top, start, end, first)
    rows = env.st.named("analytics_top_categories", start, end, j.integer(first))
    return a.ranked(rows, "t", env.object(sel.children, "CategorySales", "t"))


def _churn_risk_distribution(env: Env, sel: Sel, _alias: str) -> str:
    bins = env.args(sel)["bins"]
    _checked(check_bins, bins)
    size = j.integer(bins)  # 1 .. 100, written in
    source = a.histogram(env.st.named("analytics_churn_histogram", size), size.sql)
    return j.json_list(env.object(sel.children, "HistogramBin", "h"), source, "h", "h.i")


def _kpis(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    _checked(check_window, args["from_"], args["to"])
    rows = env.st.named("analytics_kpis", args["from_"], args["to"])
    return j.one(env.object(sel.children, "Kpis", "k"), f"({rows})", "k")


def _customers_aggregate(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    first = args["first"]
    flt, dimensions = _checked(aggregate_arguments, args.get("filter"), args.get("group_by"), first)
    sql, params = aggregate_statement(
        flt, dimensions, env.settings.risk_bands, datetime.now(UTC), first,
        orders=sel.selects("orders"),
    )  # fmt: skip
    assert params[-1] == first  # its LIMIT, written in (1 .. 1000)
    rows = env.st.embed(sql, [*params[:-1], j.integer(first)])
    order = ", ".join(f"g.{d.value}" for d in dimensions) or "g.count"  # the statement's
    return j.json_list(env.object(sel.children, "CustomerAggregate", "g"), rows, "g", order)


def _aggregate_key(env: Env, sel: Sel, alias: str) -> str:
    return env.object(sel.children, "AggregateKey", alias)


def _stats(metric: Metric) -> Callable[[Env, Sel, str], str]:
    def render(env: Env, sel: Sel, alias: str) -> str:
        return env.object(sel.children, "Stats", f"{alias}.{metric.value}")

    return render


# The compiler's tables (api/sql_compiler.py): views by GraphQL type, nested fields by type
# (Python attribute names), the Query fields compiled here, and their renderers.
SCALARS = {
    "TimeRange": a.TIME_RANGE,
    "RevenuePoint": a.REVENUE_POINT,
    "Cohort": a.COHORT,
    "ProductSales": a.PRODUCT_SALES,
    "CategorySales": a.CATEGORY_SALES,
    "HistogramBin": a.HISTOGRAM_BIN,
    "Kpis": a.KPIS,
    "CustomerAggregate": a.CUSTOMER_AGGREGATE,
    "AggregateKey": a.AGGREGATE_KEY,
    "Stats": a.STATS,
}
_METRICS = (Metric.SPEND, Metric.ORDERS, Metric.PURCHASES, Metric.CHURN_PROBABILITY)
NESTED = {
    "ProductSales": {"product"},
    "CustomerAggregate": {"key", *(m.value for m in _METRICS)},  # not days_since_last_purchase
}
RENDERERS: dict[tuple[str, str], Callable[[Env, Sel, str], str]] = {
    ("Query", "purchase_time_range"): _time_range,
    ("Query", "revenue"): _revenue,
    ("Query", "cohort_retention"): _cohort_retention,
    ("Query", "top_products"): _top_products,
    ("ProductSales", "product"): _sold_product,
    ("Query", "top_categories"): _top_categories,
    ("Query", "churn_risk_distribution"): _churn_risk_distribution,
    ("Query", "kpis"): _kpis,
    ("Query", "customers_aggregate"): _customers_aggregate,
    ("CustomerAggregate", "key"): _aggregate_key,
    **{("CustomerAggregate", m.value): _stats(m) for m in _METRICS},
}
# The analytics root fields: the Query fields above (each one scans many rows).
ROOTS = frozenset(attr for parent, attr in RENDERERS if parent == "Query")
