"""Write mutations: customers, purchases, interactions, consents, products.

Each validates with the same rules as bulk import and answers with a typed result: what was
written, or the field errors a frontend can show next to each field. Batches are
all-or-nothing unless `partial: true`, in which case each refused item is listed.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from api.schema.audited import mutation
from api.schema.common import GraphQLInfo
from api.schema.customers import ConsentType, CustomerType
from api.schema.errors import FieldErrorType, ValidationFailed
from domain import standardize as std
from domain.records import ParseOptions
from domain.standardize import FieldError, TimeRules
from ingestion.importer import ImportOptions
from ingestion.writes import BatchOutcome, write_batch


@strawberry.input(description="A person's profile as one source knows it.")
class CustomerInput:
    external_id: str | None = strawberry.field(
        default=None, description="The source's own id for this person (matched first)."
    )
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = strawberry.field(default=None, description="E.164 or national.")
    country: str | None = strawberry.field(default=None, description="Code or English name.")
    birth_date: date | None = None
    observed_at: datetime | None = strawberry.field(
        default=None, description="When the source saw these values (default: now)."
    )


@strawberry.input(description="How a record names its customer: give one of the two.")
class CustomerRefInput:
    customer_id: strawberry.ID | None = None
    customer_external_id: str | None = None
    customer_source: str | None = strawberry.field(
        default=None, description="Source of customerExternalId (default: the call's source)."
    )


@strawberry.input(description="One purchased line; `externalId` makes recording it idempotent.")
class PurchaseInput(CustomerRefInput):
    external_id: str = ""
    purchased_at: datetime | None = None
    product_sku: str | None = None
    order_ref: str | None = None
    quantity: int = 1
    unit_price: Decimal | None = None
    amount: Decimal | None = strawberry.field(
        default=None, description="Default: quantity x unitPrice."
    )
    currency: str | None = None
    channel: str | None = strawberry.field(
        default=None, description="web, store, app, phone, marketplace or other."
    )


@strawberry.input(description="One event; `externalId` makes recording it idempotent.")
class InteractionInput(CustomerRefInput):
    external_id: str = ""
    occurred_at: datetime | None = None
    channel: str = ""
    kind: str = ""
    properties: JSON | None = None


@strawberry.input(description="A consent decision.")
class ConsentInput(CustomerRefInput):
    purpose: str = ""
    granted: bool = False
    recorded_at: datetime | None = strawberry.field(default=None, description="Default: now.")


@strawberry.input(description="An item of the catalogue, identified by its SKU.")
class ProductInput:
    sku: str
    name: str
    category: str
    price: Decimal
    currency: str | None = None


@strawberry.type(description="One refused item of a batch and why.")
class ItemProblem:
    index: int
    errors: list[FieldErrorType]


@strawberry.type(description="The outcome for one item of a batch.")
class ItemResult:
    index: int
    accepted: bool = strawberry.field(description="Written (or already there as given).")
    errors: list[FieldErrorType]


@strawberry.type(description="What a batch wrote; with `partial`, the items it refused.")
class BatchWritten:
    inserted: int
    updated: int
    unchanged: int
    rejected: list[ItemProblem]
    items: list[ItemResult] = strawberry.field(description="Every item's own result, in order.")


BatchResult = Annotated[BatchWritten | ValidationFailed, strawberry.union("BatchResult")]
UpsertCustomerResult = Annotated[
    CustomerType | ValidationFailed, strawberry.union("UpsertCustomerResult")
]
SetConsentResult = Annotated[ConsentType | ValidationFailed, strawberry.union("SetConsentResult")]


def _options(
    info: GraphQLInfo, entity: str, source: str, create_missing_customers: bool = False,
    resume_erased: bool = False,
) -> ImportOptions:  # fmt: skip
    settings = info.context.settings
    return ImportOptions(
        entity=entity,
        # API timestamps must say their zone: we cannot know which instant a naive one means.
        parse=ParseOptions(source=std.source(source), time=TimeRules(naive_zone=None)),
        create_missing_customers=create_missing_customers,
        policy=settings.survivorship,
        resume_erased=resume_erased,
    )


def _raw(item: object) -> dict[str, Any]:
    return {k: v for k, v in asdict(item).items() if v is not None}  # type: ignore[call-overload]


async def _write(
    info: GraphQLInfo, options: ImportOptions, items: list[dict[str, Any]], partial: bool = False
) -> BatchOutcome:
    """Write a batch in the mutation's transaction, noting whose data it touched."""
    scope = info.context.writing()
    outcome = await write_batch(scope.conn, options, items, partial=partial)
    if outcome.written:
        scope.touched(outcome.customer_ids.values())
    return outcome


def _batch_result(outcome: BatchOutcome, size: int) -> BatchWritten | ValidationFailed:
    if not outcome.written:
        return ValidationFailed(errors=[
            FieldErrorType.from_domain(e, f"items.{index}.")
            for index, errors in sorted(outcome.errors.items()) for e in errors
        ])  # fmt: skip

    def views(index: int) -> list[FieldErrorType]:
        return [FieldErrorType.from_domain(e) for e in outcome.errors.get(index, [])]

    return BatchWritten(
        inserted=outcome.inserted, updated=outcome.updated, unchanged=outcome.unchanged,
        rejected=[ItemProblem(index=i, errors=views(i)) for i in sorted(outcome.errors)],
        items=[
            ItemResult(index=i, accepted=i not in outcome.errors, errors=views(i))
            for i in range(size)
        ],
    )  # fmt: skip


def _bad_source(source: str) -> ValidationFailed | None:
    try:
        std.source(source)
    except FieldError as error:
        return ValidationFailed.of([error])
    return None


@strawberry.type
class WriteMutations:
    @mutation(
        description="Create or update a customer: matched by the source's external id, then "
        "e-mail, then phone; each field decided by the survivorship rule."
    )
    async def upsert_customer(
        self, info: GraphQLInfo, source: str, input: CustomerInput,
        resume_erased: Annotated[bool, strawberry.argument(
            description="The person was erased and has come back as a new customer: accept "
            "their identities again (otherwise refused with `erased_person`)."
        )] = False,
    ) -> UpsertCustomerResult:  # fmt: skip
        if problem := _bad_source(source):
            return problem
        raw = _raw(input)
        if "observed_at" in raw:
            raw["updated_at"] = raw.pop("observed_at")
        options = _options(info, "customers", source, resume_erased=resume_erased)
        outcome = await _write(info, options, [raw])
        if not outcome.written:
            return ValidationFailed.of(outcome.errors.get(0, []))
        customer = await info.context.customers.by_ids([outcome.customer_ids[0]])
        return CustomerType.from_domain(customer[outcome.customer_ids[0]])

    @mutation(description="Record purchase lines (idempotent by externalId).")
    async def record_purchases(
        self, info: GraphQLInfo, source: str, items: list[PurchaseInput],
        partial: bool = False, create_missing_customers: bool = False,
    ) -> BatchResult:  # fmt: skip
        if problem := _bad_source(source):
            return problem
        options = _options(info, "purchases", source, create_missing_customers)
        outcome = await _write(info, options, [_raw(i) for i in items], partial)
        return _batch_result(outcome, len(items))

    @mutation(description="Record interactions (idempotent by externalId).")
    async def record_interactions(
        self, info: GraphQLInfo, source: str, items: list[InteractionInput],
        partial: bool = False, create_missing_customers: bool = False,
    ) -> BatchResult:  # fmt: skip
        if problem := _bad_source(source):
            return problem
        options = _options(info, "interactions", source, create_missing_customers)
        outcome = await _write(info, options, [_raw(i) for i in items], partial)
        return _batch_result(outcome, len(items))

    @mutation(description="Record a consent decision (history is kept).")
    async def set_consent(
        self, info: GraphQLInfo, source: str, input: ConsentInput
    ) -> SetConsentResult:
        if problem := _bad_source(source):
            return problem
        outcome = await _write(info, _options(info, "consents", source), [_raw(input)])
        if not outcome.written:
            return ValidationFailed.of(outcome.errors.get(0, []))
        raw = _raw(input)
        customer_id = int(raw["customer_id"]) if "customer_id" in raw else None
        if customer_id is None:
            ids = await info.context.customers.ids_by_external_id(
                raw["customer_external_id"], raw.get("customer_source") or source
            )
            customer_id = ids[0]
        consents = await info.context.customers.current_consents([customer_id])
        purpose = std.code(input.purpose, "purpose")
        current = next(c for c in consents.get(customer_id, []) if c.purpose == purpose)
        return ConsentType(
            purpose=current.purpose, granted=current.granted, source=current.source,
            recorded_at=current.recorded_at,
        )  # fmt: skip

    @mutation(description="Create or update products by SKU.")
    async def upsert_products(
        self, info: GraphQLInfo, items: list[ProductInput], partial: bool = False,
        source: str = "api",
    ) -> BatchResult:  # fmt: skip
        if problem := _bad_source(source):
            return problem
        outcome = await _write(
            info, _options(info, "products", source), [_raw(i) for i in items], partial
        )
        return _batch_result(outcome, len(items))
