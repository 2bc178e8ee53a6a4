"""Customer lifetime value: what a customer has spent, and is expected to spend in the next
twelve months. Pure: no I/O.

The next-purchase model predicts how many purchases a customer makes within its horizon (90
days by default). Twelve months ahead is that rate carried over a year (purchases x 365 /
horizon), times the customer's own average order value: a steady-rate projection, stated as
such, not a separate model.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.commerce import PurchaseSummary
from domain.predictions import NextPurchase

YEAR_DAYS = 365.0


@dataclass(frozen=True, slots=True)
class LifetimeValue:
    historic: Decimal
    expected_order_value: Decimal | None
    expected_purchases_12_months: float | None
    predicted_12_months: Decimal | None


def lifetime_value(summary: PurchaseSummary, prediction: NextPurchase | None) -> LifetimeValue:
    """Historic value, and the 12-month projection when a prediction is at hand."""
    order_value = summary.average_order_value
    if prediction is None or prediction.horizon_days <= 0:
        return LifetimeValue(summary.total_spend, order_value, None, None)
    purchases = prediction.expected_purchases * YEAR_DAYS / prediction.horizon_days
    predicted = (
        (order_value * Decimal(repr(purchases))).quantize(Decimal("0.01"))
        if order_value is not None else None
    )  # fmt: skip
    return LifetimeValue(summary.total_spend, order_value, purchases, predicted)
