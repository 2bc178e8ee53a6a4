"""GraphQL views of products, purchases and purchase summaries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from api.schema.common import Connection, GraphQLInfo, connection, cursors_for, page_request
from domain import commerce
from domain.errors import UserError
from domain.ids import parse_id
from sql.repositories import PRODUCT_ORDERING


@strawberry.type(name="Product", description="An item of the catalogue.")
class ProductType:
    id: strawberry.ID
    sku: str
    name: str
    category: str
    price: Decimal
    currency: str
    created_at: datetime

    @classmethod
    def from_domain(cls, p: commerce.Product) -> ProductType:
        """The view of a domain product."""
        return cls(
            id=strawberry.ID(str(p.id)), sku=p.sku, name=p.name, category=p.category,
            price=p.price, currency=p.currency, created_at=p.created_at,
        )  # fmt: skip


@strawberry.type(name="Purchase", description="One purchased line.")
class PurchaseType:
    id: strawberry.ID
    order_ref: str | None
    quantity: int
    unit_price: Decimal | None
    amount: Decimal
    currency: str
    channel: str
    purchased_at: datetime
    source: str
    external_id: str
    product_id: strawberry.Private[int | None]

    @strawberry.field(description="The product bought; null when the source knew only an amount.")
    async def product(self, info: GraphQLInfo) -> ProductType | None:
        if self.product_id is None:
            return None
        product = await info.context.loaders.product_by_id.load(self.product_id)
        return ProductType.from_domain(product) if product else None

    @classmethod
    def from_domain(cls, p: commerce.Purchase) -> PurchaseType:
        """The view of a domain purchase."""
        return cls(
            id=strawberry.ID(str(p.id)), order_ref=p.order_ref, quantity=p.quantity,
            unit_price=p.unit_price, amount=p.amount, currency=p.currency, channel=p.channel,
            purchased_at=p.purchased_at, source=p.source, external_id=p.external_id,
            product_id=p.product_id,
        )  # fmt: skip


@strawberry.type(name="PurchaseSummary", description="What a customer's purchases add up to.")
class PurchaseSummaryType:
    purchase_count: int
    order_count: int
    total_spend: Decimal = strawberry.field(
        description="Sum of purchase amounts (in `currencies`; one currency per store is usual)."
    )
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    average_order_value: Decimal | None
    distinct_products: int
    distinct_categories: int
    currencies: list[str]

    @classmethod
    def from_domain(cls, s: commerce.PurchaseSummary) -> PurchaseSummaryType:
        """The view of a domain summary."""
        return cls(
            purchase_count=s.purchase_count, order_count=s.order_count,
            total_spend=s.total_spend, first_purchase_at=s.first_purchase_at,
            last_purchase_at=s.last_purchase_at, average_order_value=s.average_order_value,
            distinct_products=s.distinct_products, distinct_categories=s.distinct_categories,
            currencies=list(s.currencies),
        )  # fmt: skip


@strawberry.type
class ProductQueries:
    @strawberry.field(description="One product by id or SKU (give exactly one).")
    async def product(
        self, info: GraphQLInfo, id: strawberry.ID | None = None, sku: str | None = None
    ) -> ProductType | None:
        if (id is None) == (sku is None):
            raise UserError("give exactly one of `id` and `sku`")
        if id is not None:
            found = await info.context.loaders.product_by_id.load(parse_id(id))
        else:
            found = await info.context.products.by_sku(sku)  # type: ignore[arg-type]
        return ProductType.from_domain(found) if found else None

    @strawberry.field(description="The catalogue, in id order.")
    async def products(
        self,
        info: GraphQLInfo,
        first: int = 20,
        after: str | None = None,
        category: str | None = None,
        search: Annotated[
            str | None, strawberry.argument(description="Text in the name or SKU.")
        ] = None,
    ) -> Connection[ProductType]:
        request = page_request(info, first, after, PRODUCT_ORDERING, 1)
        repo = info.context.products
        page = await repo.page(category, search, request)
        return connection(
            [ProductType.from_domain(p) for p in page.items],
            cursors_for(page.ordering, page.keys),
            page.has_next_page, page.has_previous_page,
            lambda: repo.count(category, search),
        )  # fmt: skip
