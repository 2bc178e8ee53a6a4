"""Saved segments: typed definitions in, members, statistics and sizes over time out."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

import sql.segments as store
from api.schema.audited import mutation
from api.schema.common import Connection, GraphQLInfo, connection, cursors_for, page_request
from api.schema.errors import ValidationFailed
from api.schema.predictions import RiskBandEnum
from api.schema.rfm import RfmSegmentEnum
from domain.errors import UserError
from domain.ids import parse_id
from domain.segments import InvalidDefinition, Segment, SegmentFilter, parse_filter, to_json
from domain.standardize import FieldError

if TYPE_CHECKING:
    from api.schema.customers import CustomerType

MEMBERS_ORDERING = "segment-members"  # the cursors of Segment.customers


@strawberry.input(description="Inclusive bounds; leave either open.")
class RangeInput:
    min: Decimal | None = None
    max: Decimal | None = None


@strawberry.input(description="Bought a product (by SKU) or anything of a category.")
class BoughtInput:
    sku: str | None = None
    category: str | None = None
    within_days: int | None = strawberry.field(default=None, description="Only recent buys.")


@strawberry.input(description="How many interactions of a kind, in the last days.")
class InteractionCountInput:
    kind: str
    channel: str | None = None
    within_days: int | None = None
    min: int | None = 1
    max: int | None = None


@strawberry.input(
    description="Who belongs. Every condition given must hold; `and`, `or` and `not` combine "
    "nested filters."
)
class SegmentFilterInput:
    and_: list[SegmentFilterInput] | None = strawberry.field(default=None, name="and")
    or_: list[SegmentFilterInput] | None = strawberry.field(default=None, name="or")
    not_: SegmentFilterInput | None = strawberry.field(default=None, name="not")
    country_in: list[str] | None = strawberry.field(default=None, description="Codes or names.")
    total_spend: RangeInput | None = None
    orders: RangeInput | None = None
    days_since_last_purchase: RangeInput | None = strawberry.field(
        default=None, description="Recency; customers who never bought never match."
    )
    rfm_segment_in: list[RfmSegmentEnum] | None = None  # type: ignore[valid-type]
    churn_band_in: list[RiskBandEnum] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="From the stored scores (`cdm score --all`)."
    )
    churn_probability: RangeInput | None = None
    purchase_probability_30d: RangeInput | None = None
    expected_purchases: RangeInput | None = None
    consented_to: str | None = strawberry.field(
        default=None, description="A purpose whose latest decision is a grant."
    )
    bought: BoughtInput | None = None
    interactions: InteractionCountInput | None = None

    def to_raw(self) -> dict[str, Any]:
        """The definition's JSON form (validated by ``domain.segments.parse_filter``)."""

        def bounds(r: RangeInput | None) -> dict[str, Any] | None:
            return None if r is None else {"min": r.min, "max": r.max}

        return {
            key: value for key, value in {
                "all_of": [c.to_raw() for c in self.and_ or ()],
                "any_of": [c.to_raw() for c in self.or_ or ()],
                "none_of": [self.not_.to_raw()] if self.not_ else [],
                "countries": self.country_in,
                "total_spend": bounds(self.total_spend),
                "orders": bounds(self.orders),
                "days_since_last_purchase": bounds(self.days_since_last_purchase),
                "rfm_segments": [s.value for s in self.rfm_segment_in or ()],
                "churn_bands": [b.value for b in self.churn_band_in or ()],
                "churn_probability": bounds(self.churn_probability),
                "purchase_probability_30d": bounds(self.purchase_probability_30d),
                "expected_purchases": bounds(self.expected_purchases),
                "consented_to": self.consented_to,
                "bought": asdict(self.bought) if self.bought else None,  # type: ignore[call-overload]
                "interactions": asdict(self.interactions) if self.interactions else None,  # type: ignore[call-overload]
            }.items() if value not in (None, [])
        }  # fmt: skip


def parse_input(definition: SegmentFilterInput, field: str = "definition") -> SegmentFilter:
    """The domain definition of an input, or a UserError naming the first problem."""
    try:
        return parse_filter(definition.to_raw(), field)
    except InvalidDefinition as exc:
        first = exc.errors[0]
        raise UserError(str(exc), field=first.field) from None


@strawberry.type(name="SegmentStats", description="Totals over a segment's members.")
class SegmentStatsType:
    customers: int
    total_spend: Decimal
    average_spend: Decimal | None
    purchases: int
    average_churn_probability: float | None = strawberry.field(
        description="Over the members with stored scores (`scored`)."
    )
    scored: int


@strawberry.type(name="SegmentSize", description="A segment's size at a time.")
class SegmentSizeType:
    at: datetime
    size: int


@strawberry.type(name="Segment", description="A saved segment.")
class SegmentType:
    id: strawberry.ID
    name: str
    description: str | None
    created_by: str
    created_at: datetime
    definition: JSON = strawberry.field(description="The definition, as stored.")
    segment: strawberry.Private[Segment]

    @classmethod
    def from_domain(cls, s: Segment) -> SegmentType:
        return cls(
            id=strawberry.ID(str(s.id)), name=s.name, description=s.description,
            created_by=s.created_by, created_at=s.created_at, definition=to_json(s.definition),
            segment=s,
        )  # fmt: skip

    @strawberry.field(description="How many customers belong now.")
    async def size(self, info: GraphQLInfo) -> int:
        settings = info.context.settings
        return await store.size(
            info.context.db.pool, self.segment.definition, datetime.now(UTC),
            settings.risk_bands,
        )  # fmt: skip

    @strawberry.field(description="The members, in id order.")
    async def customers(
        self, info: GraphQLInfo, first: int = 20, after: str | None = None
    ) -> Connection[Annotated[CustomerType, strawberry.lazy("api.schema.customers")]]:
        from api.schema.customers import CustomerType

        request = page_request(info, first, after, MEMBERS_ORDERING, 1)
        last = int(request.after[0]) if request.after else None  # type: ignore[arg-type]
        context = info.context
        ids = await store.member_ids(
            context.db.pool, self.segment.definition, datetime.now(UTC),
            context.settings.risk_bands, after=last, limit=first + 1,
        )  # fmt: skip
        page = ids[:first]
        found = await context.loaders.customer_by_id.load_many(page)
        nodes = [CustomerType.from_domain(c) for c in found if c is not None]

        async def count() -> int:
            return await self.size(info)

        keys = [(i,) for i in page]
        return connection(
            nodes, cursors_for(MEMBERS_ORDERING, keys), has_next=len(ids) > first,
            has_previous=after is not None, count=count,
        )  # fmt: skip

    @strawberry.field(description="Totals over the members.")
    async def stats(self, info: GraphQLInfo) -> SegmentStatsType:
        row = await store.stats(
            info.context.db.pool, self.segment.definition, datetime.now(UTC),
            info.context.settings.risk_bands,
        )  # fmt: skip
        return SegmentStatsType(
            customers=row["customers"], total_spend=row["total_spend"],
            average_spend=row["average_spend"], purchases=row["purchases"],
            average_churn_probability=row["average_churn_probability"], scored=row["scored"],
        )  # fmt: skip

    @strawberry.field(description="Sizes recorded over time (creation, exports, snapshots).")
    async def size_history(self, info: GraphQLInfo) -> list[SegmentSizeType]:
        found = await store.size_history(info.context.db.pool, self.segment.id)
        return [SegmentSizeType(at=at, size=size) for at, size in found]


CreateSegmentResult = Annotated[
    SegmentType | ValidationFailed, strawberry.union("CreateSegmentResult")
]


@strawberry.type
class SegmentQueries:
    @strawberry.field(description="A saved segment by id or by name (give one).")
    async def segment(
        self, info: GraphQLInfo, id: strawberry.ID | None = None, name: str | None = None
    ) -> SegmentType | None:
        if (id is None) == (name is None):
            raise UserError("give exactly one of `id` and `name`")
        pool = info.context.db.pool
        found = (
            await store.by_id(pool, parse_id(id)) if id is not None
            else await store.by_name(pool, name or "")
        )  # fmt: skip
        return SegmentType.from_domain(found) if found else None

    @strawberry.field(description="Every saved segment, by name.")
    async def segments(self, info: GraphQLInfo) -> list[SegmentType]:
        return [SegmentType.from_domain(s) for s in await store.all_segments(info.context.db.pool)]


@strawberry.type
class SegmentMutations:
    @mutation(description="Save a segment under a unique name; its size is recorded.")
    async def create_segment(
        self, info: GraphQLInfo, name: str, definition: SegmentFilterInput,
        description: str | None = None,
    ) -> CreateSegmentResult:  # fmt: skip
        name = name.strip()
        errors = []
        if not 1 <= len(name) <= 200:
            errors.append(FieldError("name", "length", "must be 1 to 200 characters"))
        if description is not None and len(description) > 2000:
            errors.append(FieldError("description", "length", "at most 2000 characters"))
        try:
            parsed = parse_filter(definition.to_raw())
        except InvalidDefinition as exc:
            errors += exc.errors
        if errors:
            return ValidationFailed.of(errors)
        context, scope = info.context, info.context.writing()
        created = await store.create(scope.conn, name, description, parsed, context.actor)
        if created is None:
            taken = FieldError("name", "taken", f"a segment named {name!r} exists")
            return ValidationFailed.of([taken])
        bands = context.settings.risk_bands
        size = await store.size(scope.conn, parsed, datetime.now(UTC), bands)
        await store.record_size(scope.conn, created.id, size)
        scope.details["segment"] = created.id
        return SegmentType.from_domain(created)

    @mutation(description="Delete a saved segment (its size history goes with it).")
    async def delete_segment(self, info: GraphQLInfo, id: strawberry.ID) -> bool:
        return await store.delete(info.context.writing().conn, parse_id(id))
