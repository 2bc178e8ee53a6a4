"""GraphQL views of customers, their identities, consents and histories, and the queries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, cast

import strawberry
from strawberry.utils.str_converters import to_camel_case

from api.schema import predictions
from api.schema import rfm as rfm_fields
from api.schema.commerce import PurchaseSummaryType, PurchaseType
from api.schema.common import (
    Connection,
    GraphQLInfo,
    connection,
    cursors_for,
    page_request,
    selects,
)
from api.schema.interactions import InteractionType
from domain import customers
from domain.commerce import Purchase
from domain.customer_queries import (
    CustomerFilter,
    CustomerOrder,
    CustomerSortField,
    SortDirection,
    TimeWindow,
)
from domain.errors import AmbiguousLookup, UserError
from domain.ids import parse_id
from domain.interactions import Interaction
from domain.survivorship import FieldSource

IdentityKindEnum = strawberry.enum(customers.IdentityKind, name="IdentityKind")


@strawberry.type(name="Identity", description="One way one source knows a customer.")
class IdentityType:
    kind: IdentityKindEnum  # type: ignore[valid-type]
    source: str
    value: str
    created_at: datetime


@strawberry.type(name="ProfileFieldSource", description="Where a profile field's value came from.")
class FieldSourceType:
    field: str = strawberry.field(description="The profile field, e.g. email or lastName.")
    source: str
    at: datetime = strawberry.field(description="When the source observed the value.")


@strawberry.type(name="Consent", description="The current decision for one purpose.")
class ConsentType:
    purpose: str
    granted: bool
    source: str
    recorded_at: datetime


def _purchase_key(p: Purchase) -> tuple[datetime, int]:
    return (p.purchased_at, p.id)


def _interaction_key(i: Interaction) -> tuple[datetime, int]:
    return (i.occurred_at, i.id)


def _history_page(
    info: GraphQLInfo,
    ordering: str,
    first: int,
    after: str | None,
    since: datetime | None,
    until: datetime | None,
    kinds: list[str] | None = None,
) -> TimeWindow:
    request = page_request(info, first, after, ordering, 2)
    return TimeWindow(
        first=first,
        after=cast("tuple[datetime, int] | None", request.after),
        since=since,
        until=until,
        kinds=tuple(kinds) if kinds is not None else None,
    )  # fmt: skip


@strawberry.type(name="Customer", description="A person and everything CDM knows of them.")
class CustomerType:
    id: strawberry.ID
    first_name: str | None
    last_name: str | None
    full_name: str | None
    email: str | None
    phone: str | None = strawberry.field(description="E.164, e.g. +4930123456.")
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2.")
    birth_date: date | None
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[int]
    sources: strawberry.Private[Mapping[str, FieldSource]]

    churn_risk: predictions.ChurnRiskType | None = strawberry.field(
        resolver=predictions.churn_risk,
        description="Risk of no order within the model's horizon, from the churn champion "
        "(null with a MODEL_NOT_TRAINED error when there is none).",
    )
    next_purchase: predictions.NextPurchaseType | None = strawberry.field(
        resolver=predictions.next_purchase,
        description="Next-order probability, count and date from the next-purchase champion.",
    )
    recommendations: list[predictions.RecommendationType] | None = strawberry.field(
        resolver=predictions.recommendations,
        description="Discover: products the customer has not bought yet, best first (`first` "
        "up to 20), optionally of one category. See buyAgain for products bought before.",
    )
    buy_again: list[predictions.BuyAgainType] | None = strawberry.field(
        resolver=predictions.buy_again,
        description="Buy again: products the customer bought before, likeliest in their next "
        "order first (`first` up to 20), each with its repurchase cycle and when it is due. "
        "Computed from the purchase history (no trained model); withheld as the other "
        "predictions are.",
    )

    stored_scores: predictions.StoredScoresType | None = strawberry.field(
        resolver=predictions.stored_scores,
        description="Scores of the latest `cdm score --all` run (null if never scored).",
    )
    rfm: rfm_fields.RfmType | None = strawberry.field(
        resolver=rfm_fields.customer_rfm,
        description="Recency, frequency and monetary scores and segment, from the latest "
        "`cdm rfm` snapshot (null if not in it: no purchase before its as-of time).",
    )
    lifetime_value: rfm_fields.LifetimeValueType = strawberry.field(
        resolver=rfm_fields.customer_lifetime_value,
        description="Spent so far, and projected for the next 12 months.",
    )
    scores_withheld: str | None = strawberry.field(
        resolver=predictions.scores_withheld,
        description="Why the predictions above are null for you: nobody gets them for a "
        "customer who objected to profiling, and machine clients only for customers who "
        "consented to personalization or profiling. Null when served.",
    )

    @strawberry.field(description="Which source gave each profile field its value, and when.")
    def field_sources(self) -> list[FieldSourceType]:
        return [
            FieldSourceType(field=to_camel_case(name), source=origin.source, at=origin.at)
            for name, origin in sorted(self.sources.items())
        ]

    @classmethod
    def from_domain(cls, c: customers.Customer) -> CustomerType:
        """The view of a domain customer."""
        return cls(
            id=strawberry.ID(str(c.id)), first_name=c.first_name, last_name=c.last_name,
            full_name=c.full_name, email=c.email, phone=c.phone, country=c.country,
            birth_date=c.birth_date, created_at=c.created_at, updated_at=c.updated_at, pk=c.id,
            sources=c.field_sources,
        )  # fmt: skip

    @strawberry.field(description="Every identity sources know this customer by.")
    async def identities(self, info: GraphQLInfo) -> list[IdentityType]:
        found = await info.context.loaders.identities_by_customer.load(self.pk)
        return [IdentityType(kind=i.kind, source=i.source, value=i.value, created_at=i.created_at)
                for i in found]  # fmt: skip

    @strawberry.field(description="The current consent decision per purpose.")
    async def consents(self, info: GraphQLInfo) -> list[ConsentType]:
        found = await info.context.loaders.consents_by_customer.load(self.pk)
        return [ConsentType(purpose=c.purpose, granted=c.granted, source=c.source,
                            recorded_at=c.recorded_at) for c in found]  # fmt: skip

    @strawberry.field(description="Lifetime purchase aggregates.")
    async def purchase_summary(self, info: GraphQLInfo) -> PurchaseSummaryType:
        summary = await info.context.loaders.purchase_summary_by_customer.load(self.pk)
        return PurchaseSummaryType.from_domain(summary)

    @strawberry.field(description="Purchases, newest first; `since` inclusive, `until` exclusive.")
    async def purchases(
        self,
        info: GraphQLInfo,
        first: int = 10,
        after: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Connection[PurchaseType]:
        window = _history_page(info, "purchases", first, after, since, until)
        loaders = info.context.loaders
        with_products = selects(info, ("nodes", "product"), ("edges", "node", "product"))
        rows = await loaders.purchases(window, with_products=with_products).load(self.pk)
        on_page = rows[:first]

        async def count() -> int:
            if window.bounded:
                return await loaders.purchase_count(window).load(self.pk)
            summary = await loaders.purchase_summary_by_customer.load(self.pk)
            return summary.purchase_count

        return connection(
            [PurchaseType.from_domain(p) for p in on_page],
            cursors_for("purchases", on_page, _purchase_key),
            len(rows) > first, after is not None, count,
        )  # fmt: skip

    @strawberry.field(description="Interactions, newest first, optionally of some kinds only.")
    async def interactions(
        self,
        info: GraphQLInfo,
        first: int = 10,
        after: str | None = None,
        kinds: list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Connection[InteractionType]:
        window = _history_page(info, "interactions", first, after, since, until, kinds)
        loaders = info.context.loaders
        rows = await loaders.interactions(window).load(self.pk)
        on_page = rows[:first]
        return connection(
            [InteractionType.from_domain(i) for i in on_page],
            cursors_for("interactions", on_page, _interaction_key),
            len(rows) > first, after is not None,
            lambda: loaders.interaction_count(window).load(self.pk),
        )  # fmt: skip


@strawberry.input(description="Conditions on the customer list; all given ones must hold.")
class CustomerFilterInput:
    country: str | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2.")
    created_after: datetime | None = None
    created_before: datetime | None = None
    purchased_since: datetime | None = strawberry.field(
        default=None, description="Bought something at or after this time."
    )
    purchased_until: datetime | None = strawberry.field(
        default=None, description="Bought something before this time."
    )
    min_total_spend: Decimal | None = None
    search: str | None = strawberry.field(
        default=None, description="Text anywhere in the name or e-mail (2 characters or more)."
    )
    min_churn_risk: float | None = strawberry.field(
        default=None,
        description="Stored churn probability at least this (scores of `cdm score --all`; "
        "see storedScoresSummary for their freshness).",
    )
    max_churn_risk: float | None = strawberry.field(
        default=None, description="Stored churn probability at most this."
    )

    def to_domain(self) -> CustomerFilter:
        """The domain filter (validated)."""
        return CustomerFilter(
            country=self.country, created_after=self.created_after,
            created_before=self.created_before, purchased_since=self.purchased_since,
            purchased_until=self.purchased_until, min_total_spend=self.min_total_spend,
            search=self.search, min_churn_risk=self.min_churn_risk,
            max_churn_risk=self.max_churn_risk,
        )  # fmt: skip


@strawberry.enum(description="What the customer list can be ordered by.")
class CustomerOrderField(Enum):
    CREATED_AT = CustomerSortField.CREATED_AT
    LAST_PURCHASE_AT = CustomerSortField.LAST_PURCHASE_AT
    TOTAL_SPEND = CustomerSortField.TOTAL_SPEND
    CHURN_RISK = CustomerSortField.CHURN_RISK


@strawberry.enum
class OrderDirection(Enum):
    ASC = SortDirection.ASC
    DESC = SortDirection.DESC


@strawberry.input(description="An ordering of the customer list; ties broken by id.")
class CustomerOrderInput:
    field: CustomerOrderField = CustomerOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.DESC


@strawberry.type
class CustomerQueries:
    @strawberry.field(
        description="One customer by CDM id or by an external id (give exactly one). "
        "`source` narrows an external id to one source system."
    )
    async def customer(
        self,
        info: GraphQLInfo,
        id: strawberry.ID | None = None,
        external_id: str | None = None,
        source: str | None = None,
    ) -> CustomerType | None:
        if (id is None) == (external_id is None):
            raise UserError("give exactly one of `id` and `externalId`")
        if id is not None:
            pk = parse_id(id)
        else:
            ids = await info.context.customers.ids_by_external_id(external_id, source)  # type: ignore[arg-type]
            if not ids:
                return None
            if len(ids) > 1:
                raise AmbiguousLookup(
                    "several customers have this external id in different sources; "
                    "name the `source`", field="externalId",
                )  # fmt: skip
            pk = ids[0]
        found = await info.context.loaders.customer_by_id.load(pk)
        return CustomerType.from_domain(found) if found else None

    @strawberry.field(description="The customer list: filtered, ordered, paged.")
    async def customers(
        self,
        info: GraphQLInfo,
        first: int = 20,
        after: str | None = None,
        filter: CustomerFilterInput | None = None,
        order_by: Annotated[CustomerOrderInput | None, strawberry.argument()] = None,
    ) -> Connection[CustomerType]:
        flt = filter.to_domain() if filter else CustomerFilter()
        order = (
            CustomerOrder(order_by.field.value, order_by.direction.value)
            if order_by else CustomerOrder()
        )  # fmt: skip
        request = page_request(info, first, after, order.key, 2)
        repo = info.context.customers
        page = await repo.page(flt, order, request)
        loader = info.context.loaders.customer_by_id
        for c in page.items:  # later lookups of these ids in this request need no query
            loader.prime(c.id, c)
        return connection(
            [CustomerType.from_domain(c) for c in page.items],
            cursors_for(page.ordering, page.keys),
            page.has_next_page, page.has_previous_page, lambda: repo.count(flt),
        )  # fmt: skip
