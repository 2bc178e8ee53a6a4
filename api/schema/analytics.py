"""Analytics: revenue over time, cohort retention, top sellers, churn-risk distribution, KPIs
and group-by aggregates over customers. Every number is one set-based statement."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated

import strawberry

import sql.analytics as store
import sql.segments as segments_store
from api.schema.commerce import ProductType
from api.schema.common import GraphQLInfo, selects
from api.schema.rfm import RfmSegmentEnum
from api.schema.segments import SegmentFilterInput, parse_input
from domain import standardize as std
from domain.errors import UserError
from domain.ids import parse_id
from domain.segments import SegmentFilter
from domain.standardize import FieldError
from domain.times import check_time
from sql.analytics import Dimension, Granularity, Metric

GranularityEnum = strawberry.enum(Granularity, name="Granularity")
DimensionEnum = strawberry.enum(
    Dimension, name="CustomerDimension", description="What `customersAggregate` groups by."
)
# Bounds on what one call may ask for, checked before anything runs: a series of periods is
# generated whole (empty periods included), so its length is the cost.
MAX_PERIODS = 1_100  # three years of days
MAX_COHORT_CELLS = 10_000  # cohorts x (months + 1)


def check_window(start: datetime, end: datetime) -> None:
    """Refuses a window [start, end) that is out of range or empty (UserError)."""
    check_time(start, "from")
    check_time(end, "to")
    if start >= end:
        raise UserError("`from` must be before `to`", field="from")


def _dates(start: datetime, end: datetime) -> tuple[date, date]:
    """The first and last UTC dates [start, end) touches."""
    last = end - timedelta(microseconds=1)
    return start.astimezone(UTC).date(), last.astimezone(UTC).date()


def _months(start: datetime, end: datetime) -> int:
    """Calendar months (UTC) that [start, end) touches."""
    first, last = _dates(start, end)
    return (last.year - first.year) * 12 + last.month - first.month + 1


def periods(granularity: Granularity, start: datetime, end: datetime) -> int:
    """How many periods (UTC days, ISO weeks or months) [start, end) touches: the rows of
    its revenue series."""
    if granularity is Granularity.MONTH:
        return _months(start, end)
    first, last = _dates(start, end)
    if granularity is Granularity.DAY:
        return (last - first).days + 1
    mondays = (last - timedelta(days=last.weekday())) - (first - timedelta(days=first.weekday()))
    return mondays.days // 7 + 1


def _between_1_and(value: int, maximum: int, field: str) -> None:
    if not 1 <= value <= maximum:
        raise UserError(f"`{field}` must be between 1 and {maximum}", field=field)


def _code(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        return std.code(value, field)
    except FieldError as error:
        raise UserError(error.message, field=field) from None


def category_argument(value: str | None) -> str | None:
    """A category as stored (free text, lower-case); UserError when it is not text."""
    if value is None:
        return None
    problem = std.text_problem(value, "category")
    if problem is not None:
        raise UserError(problem.message, field="category")
    return value.strip().lower()


@strawberry.type(name="RevenuePoint", description="One period's revenue, orders and buyers.")
class RevenuePointType:
    period: datetime = strawberry.field(description="The period's start (UTC).")
    revenue: Decimal
    orders: int
    active_customers: int = strawberry.field(description="Customers who bought in the period.")
    average_order_value: Decimal | None


@strawberry.input(description="Which purchases count; every condition given must hold.")
class RevenueFilterInput:
    country: str | None = None
    channel: str | None = None
    category: str | None = None
    segment_id: strawberry.ID | None = None


# The checks of each field's arguments, in the order its resolver makes them; the SQL
# compiler (api/sql_analytics.py) runs the same ones before rendering a statement.


def check_revenue(granularity: Granularity, start: datetime, end: datetime) -> None:
    """Refuses a bad window, or a series of more than MAX_PERIODS periods."""
    check_window(start, end)
    count = periods(granularity, start, end)
    if count > MAX_PERIODS:
        raise UserError(
            f"[from, to) holds {count:,} {granularity.value}s; at most "
            f"{MAX_PERIODS:,} periods per call: narrow the range or use a coarser "
            "granularity", field="to",
        )  # fmt: skip


def revenue_filter(flt: RevenueFilterInput) -> tuple[str | None, str | None, str | None]:
    """The filter's country, channel and category as stored (its segment aside)."""
    country = None
    if flt.country is not None:
        try:
            country = std.country(flt.country)
        except FieldError as error:
            raise UserError(error.message, field="country") from None
    return country, _code(flt.channel, "channel"), category_argument(flt.category)


def check_cohorts(start: datetime, end: datetime, months: int) -> None:
    """Refuses a bad window or month count, or more than MAX_COHORT_CELLS values."""
    check_window(start, end)
    if not 0 <= months <= 60:
        raise UserError("`months` must be between 0 and 60", field="months")
    cells = _months(start, end) * (months + 1)
    if cells > MAX_COHORT_CELLS:
        raise UserError(
            f"{_months(start, end):,} monthly cohorts over {months + 1} months are {cells:,} "
            f"values; at most {MAX_COHORT_CELLS:,} per call: narrow the range or ask for "
            "fewer months", field="to",
        )  # fmt: skip


def check_top(start: datetime, end: datetime, first: int) -> None:
    """Refuses a bad window or a list size outside 1..100 (top products, categories)."""
    check_window(start, end)
    _between_1_and(first, 100, "first")


def check_bins(bins: int) -> None:
    """Refuses a histogram size outside 1..100."""
    _between_1_and(bins, 100, "bins")


def aggregate_arguments(
    filter: SegmentFilterInput | None, group_by: list[Dimension] | None, first: int
) -> tuple[SegmentFilter | None, list[Dimension]]:
    """customersAggregate's filter and dimensions (each once, in order); UserError when the
    group count is outside 1..1000 or the filter is not a valid definition."""
    _between_1_and(first, 1000, "first")
    dimensions = list(dict.fromkeys(Dimension(d) for d in group_by or ()))
    return (parse_input(filter, "filter") if filter else None), dimensions


@strawberry.type(name="Cohort", description="Customers who first bought in one month.")
class CohortType:
    month: datetime
    size: int
    retention: list[float | None] = strawberry.field(
        description="Share of the cohort buying 0, 1, 2… months after its first month (null: "
        "that month has not come yet)."
    )


@strawberry.type(name="ProductSales", description="A product's sales in a window.")
class ProductSalesType:
    product: ProductType
    revenue: Decimal
    units: int
    customers: int


@strawberry.type(name="CategorySales", description="A category's sales in a window.")
class CategorySalesType:
    category: str
    revenue: Decimal
    units: int
    customers: int


@strawberry.type(name="HistogramBin", description="Customers whose value falls in [from, to).")
class HistogramBinType:
    from_: float = strawberry.field(name="from")
    to: float
    customers: int


@strawberry.type(name="Kpis", description="Headline numbers over a window.")
class KpisType:
    customers: int = strawberry.field(description="Customers on record (now).")
    revenue: Decimal
    orders: int
    active_customers: int
    average_order_value: Decimal | None


@strawberry.type(name="Stats", description="Sum, average, minimum and maximum of a metric.")
class StatsType:
    sum: float | None
    avg: float | None
    min: float | None
    max: float | None


@strawberry.type(name="AggregateKey", description="The group's values (null: not grouped).")
class AggregateKeyType:
    country: str | None = None
    rfm_segment: RfmSegmentEnum | None = None  # type: ignore[valid-type]
    churn_band: str | None = None


@strawberry.type(name="CustomerAggregate", description="One group of customers.")
class CustomerAggregateType:
    key: AggregateKeyType
    count: int
    spend: StatsType
    orders: StatsType | None = strawberry.field(
        description="Orders per customer (distinct order references); computed when selected."
    )
    purchases: StatsType = strawberry.field(description="Purchase lines per customer.")
    churn_probability: StatsType
    days_since_last_purchase: StatsType


def _stats(row: dict[str, object], metric: Metric) -> StatsType:
    def value(fn: str) -> float | None:
        found = row[f"{metric.value}_{fn}"]
        return None if found is None else float(found)  # type: ignore[arg-type]

    return StatsType(sum=value("sum"), avg=value("avg"), min=value("min"), max=value("max"))


@strawberry.type(name="TimeRange", description="When the first and last purchase happened.")
class TimeRangeType:
    first: datetime | None
    last: datetime | None


@strawberry.type
class AnalyticsQueries:
    @strawberry.field(description="The span of the purchase history (to choose windows by).")
    async def purchase_time_range(self, info: GraphQLInfo) -> TimeRangeType:
        first, last = await store.time_range(info.context.db.pool)
        return TimeRangeType(first=first, last=last)

    @strawberry.field(description="Revenue, orders, active customers and average order value "
                      "per day, week or month in [from, to), empty periods included.")  # fmt: skip
    async def revenue(
        self, info: GraphQLInfo, granularity: GranularityEnum,  # type: ignore[valid-type]
        from_: Annotated[datetime, strawberry.argument(name="from")], to: datetime,
        filter: RevenueFilterInput | None = None,
    ) -> list[RevenuePointType]:  # fmt: skip
        check_revenue(Granularity(granularity), from_, to)
        flt = filter or RevenueFilterInput()
        segment = None
        if flt.segment_id is not None:
            found = await segments_store.by_id(
                info.context.db.pool, parse_id(flt.segment_id, field="segmentId")
            )
            if found is None:
                raise UserError(f"no segment with id {flt.segment_id}", field="segmentId")
            segment = found.definition
        country, channel, category = revenue_filter(flt)
        settings = info.context.settings
        points = await store.revenue(
            info.context.db.pool, Granularity(granularity), from_, to,
            store.RevenueFilter(country, channel, category, segment),
            settings.risk_bands, datetime.now(UTC),
        )  # fmt: skip
        return [
            RevenuePointType(
                period=p.period, revenue=p.revenue, orders=p.orders,
                active_customers=p.active_customers, average_order_value=p.average_order_value,
            )
            for p in points
        ]  # fmt: skip

    @strawberry.field(description="Retention of first-purchase-month cohorts starting in "
                      "[from, to): the share still buying N months later.")  # fmt: skip
    async def cohort_retention(
        self, info: GraphQLInfo, from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime, months: int = 12,
    ) -> list[CohortType]:  # fmt: skip
        check_cohorts(from_, to, months)
        found = await store.cohorts(info.context.db.pool, from_, to, months, datetime.now(UTC))
        return [CohortType(month=c.month, size=c.size, retention=c.retention) for c in found]

    @strawberry.field(description="Best-selling products by revenue in [from, to).")
    async def top_products(
        self, info: GraphQLInfo, from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime, first: int = 10, category: str | None = None,
    ) -> list[ProductSalesType]:  # fmt: skip
        check_top(from_, to, first)
        rows = await store.top_products(
            info.context.db.pool, from_, to, category_argument(category), first
        )
        products = await info.context.loaders.product_by_id.load_many([r["id"] for r in rows])
        return [
            ProductSalesType(product=ProductType.from_domain(p), revenue=r["revenue"],
                             units=r["units"], customers=r["customers"])
            for r, p in zip(rows, products, strict=True) if p is not None
        ]  # fmt: skip

    @strawberry.field(description="Best-selling categories by revenue in [from, to).")
    async def top_categories(
        self, info: GraphQLInfo, from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime, first: int = 10,
    ) -> list[CategorySalesType]:  # fmt: skip
        check_top(from_, to, first)
        rows = await store.top_categories(info.context.db.pool, from_, to, first)
        return [
            CategorySalesType(category=r["category"], revenue=r["revenue"], units=r["units"],
                              customers=r["customers"])
            for r in rows
        ]  # fmt: skip

    @strawberry.field(description="Customers per bin of stored churn probability.")
    async def churn_risk_distribution(
        self, info: GraphQLInfo, bins: int = 10
    ) -> list[HistogramBinType]:
        check_bins(bins)
        counts = await store.churn_histogram(info.context.db.pool, bins)
        return [
            HistogramBinType(from_=i / bins, to=(i + 1) / bins, customers=n)
            for i, n in enumerate(counts)
        ]

    @strawberry.field(description="Customers, revenue, orders, buyers and average order value "
                      "over [from, to).")  # fmt: skip
    async def kpis(
        self,
        info: GraphQLInfo,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
    ) -> KpisType:
        check_window(from_, to)
        row = await store.kpis(info.context.db.pool, from_, to)
        orders = row["orders"]
        return KpisType(
            customers=row["customers"], revenue=row["revenue"], orders=orders,
            active_customers=row["active_customers"],
            average_order_value=(row["revenue"] / orders).quantize(Decimal("0.01"))
            if orders else None,
        )  # fmt: skip

    @strawberry.field(description="Count, sum, average, min and max of spend, purchases, churn "
                      "probability and recency per group of the customers the filter selects "
                      "(all when none).")  # fmt: skip
    async def customers_aggregate(
        self, info: GraphQLInfo, filter: SegmentFilterInput | None = None,
        group_by: list[DimensionEnum] | None = None,  # type: ignore[valid-type]
        first: int = 100,
    ) -> list[CustomerAggregateType]:  # fmt: skip
        flt, dimensions = aggregate_arguments(filter, group_by, first)
        rows = await store.aggregate(
            info.context.db.pool, flt, dimensions,
            info.context.settings.risk_bands, datetime.now(UTC), first,
            orders=selects(info, ("orders",)),
        )  # fmt: skip
        return [
            CustomerAggregateType(
                key=AggregateKeyType(
                    country=row.get("country"),  # type: ignore[arg-type]
                    rfm_segment=row.get("rfm_segment"),
                    churn_band=row.get("churn_band"),  # type: ignore[arg-type]
                ),
                count=row["count"],  # type: ignore[arg-type]
                spend=_stats(row, Metric.SPEND), purchases=_stats(row, Metric.PURCHASES),
                orders=_stats(row, Metric.ORDERS) if "orders_sum" in row else None,
                churn_probability=_stats(row, Metric.CHURN_PROBABILITY),
                days_since_last_purchase=_stats(row, Metric.DAYS_SINCE_LAST_PURCHASE),
            )
            for row in rows
        ]  # fmt: skip
