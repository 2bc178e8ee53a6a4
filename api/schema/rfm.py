"""RFM and lifetime value of a customer (fields of `Customer`), and the RFM summary."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import strawberry

import sql.rfm
from api.schema.audited import mutation
from api.schema.common import GraphQLInfo
from api.schema.predictions import scores_withheld
from domain.lifetime_value import lifetime_value
from domain.predictions import ModelUnavailable
from domain.rfm import Rfm, RfmSegment
from domain.times import check_time

if TYPE_CHECKING:
    from api.schema.customers import CustomerType

RfmSegmentEnum = strawberry.enum(
    RfmSegment, name="RfmSegment", description="The named RFM segments."
)


@strawberry.type(name="Rfm", description="Recency, frequency, monetary value and their scores.")
class RfmType:
    as_of: datetime = strawberry.field(description="The snapshot's as-of time (`cdm rfm`).")
    recency_days: int = strawberry.field(description="Whole days since the last purchase.")
    frequency: int = strawberry.field(description="Orders before the as-of time.")
    monetary: Decimal = strawberry.field(description="Spent before the as-of time.")
    r: int = strawberry.field(description="Recency score, 1 to 5 (5: most recent).")
    f: int = strawberry.field(description="Frequency score, 1 to 5.")
    m: int = strawberry.field(description="Monetary score, 1 to 5.")
    code: str = strawberry.field(description="The three scores, e.g. `545`.")
    segment: RfmSegmentEnum  # type: ignore[valid-type]

    @classmethod
    def from_domain(cls, x: Rfm) -> RfmType:
        return cls(
            as_of=x.as_of, recency_days=x.recency_days, frequency=x.frequency,
            monetary=x.monetary, r=x.r, f=x.f, m=x.m, code=x.code, segment=x.segment,
        )  # fmt: skip


async def customer_rfm(root: CustomerType, info: GraphQLInfo) -> RfmType | None:
    found = await info.context.loaders.rfm_by_customer.load(root.pk)
    return RfmType.from_domain(found) if found else None


@strawberry.type(
    name="LifetimeValue",
    description="Spent so far, and expected in the next 12 months: the next-purchase model's "
    "expected purchases carried over a year, times the customer's average order value.",
)
class LifetimeValueType:
    historic: Decimal
    expected_order_value: Decimal | None
    expected_purchases_12_months: float | None
    predicted_12_months: Decimal | None


async def customer_lifetime_value(root: CustomerType, info: GraphQLInfo) -> LifetimeValueType:
    summary = await info.context.loaders.purchase_summary_by_customer.load(root.pk)
    prediction = None
    if not await scores_withheld(root, info):
        try:
            prediction = await info.context.scores().next_purchase.load(root.pk)
        except ModelUnavailable:
            prediction = None  # historic value still answers
    value = lifetime_value(summary, prediction)
    return LifetimeValueType(
        historic=value.historic, expected_order_value=value.expected_order_value,
        expected_purchases_12_months=value.expected_purchases_12_months,
        predicted_12_months=value.predicted_12_months,
    )  # fmt: skip


@strawberry.type(name="RfmSegmentSize", description="One RFM segment's size and value.")
class RfmSegmentSizeType:
    segment: RfmSegmentEnum  # type: ignore[valid-type]
    customers: int
    share: float = strawberry.field(description="Of the customers in the snapshot.")
    monetary: Decimal
    average_recency_days: float
    average_frequency: float


@strawberry.type(name="RfmSummary", description="The RFM snapshot: every segment's size.")
class RfmSummaryType:
    as_of: datetime | None
    customers: int
    segments: list[RfmSegmentSizeType]


@strawberry.type
class RfmQueries:
    @strawberry.field(description="Sizes and value of the RFM segments (`cdm rfm` snapshot).")
    async def rfm_summary(self, info: GraphQLInfo) -> RfmSummaryType:
        return await _summary(info.context.db.pool)


async def _summary(target: sql.rfm.Target) -> RfmSummaryType:
    as_of, sizes = await sql.rfm.summary(target)
    total = sum(s.customers for s in sizes)
    return RfmSummaryType(
        as_of=as_of, customers=total,
        segments=[
            RfmSegmentSizeType(
                segment=s.segment, customers=s.customers,
                share=s.customers / total if total else 0.0, monetary=s.monetary,
                average_recency_days=s.average_recency_days,
                average_frequency=s.average_frequency,
            )
            for s in sizes
        ],
    )  # fmt: skip


@strawberry.type
class RfmMutations:
    @mutation(
        description="Recompute everyone's RFM as of `asOf` (default: now) and replace the "
        "snapshot; `cdm rfm` does the same from the command line (better for millions)."
    )
    async def refresh_rfm(self, info: GraphQLInfo, as_of: datetime | None = None) -> RfmSummaryType:
        if as_of is not None:
            check_time(as_of, "asOf")
        conn = info.context.writing().conn
        await sql.rfm.refresh(conn, as_of or datetime.now(UTC))
        return await _summary(conn)  # in the mutation's transaction: the new snapshot
