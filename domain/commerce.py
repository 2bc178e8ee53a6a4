"""Products, purchases and what a customer's purchases add up to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Product:
    """An item of the catalogue."""

    id: int
    sku: str
    name: str
    category: str
    price: Decimal
    currency: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Purchase:
    """One purchased line (a product, or just an amount when the source knows no product)."""

    id: int
    customer_id: int
    product_id: int | None
    order_ref: str | None
    quantity: int
    unit_price: Decimal | None
    amount: Decimal
    currency: str
    channel: str
    purchased_at: datetime
    source: str
    external_id: str


@dataclass(frozen=True, slots=True)
class PurchaseSummary:
    """Lifetime purchase aggregates of one customer."""

    customer_id: int
    purchase_count: int
    order_count: int
    total_spend: Decimal
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    distinct_products: int
    distinct_categories: int
    currencies: tuple[str, ...]

    @property
    def average_order_value(self) -> Decimal | None:
        """Total spend per order, to the cent; None without orders."""
        if not self.order_count:
            return None
        return (self.total_spend / self.order_count).quantize(Decimal("0.01"))

    @classmethod
    def empty(cls, customer_id: int) -> PurchaseSummary:
        """The summary of a customer who has bought nothing yet."""
        return cls(customer_id, 0, 0, Decimal(0), None, None, 0, 0, ())
