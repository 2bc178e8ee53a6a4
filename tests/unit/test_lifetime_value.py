"""Lifetime value: historic spend, and the next-purchase rate carried over a year."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from domain.commerce import PurchaseSummary
from domain.lifetime_value import lifetime_value
from domain.predictions import FeatureVector, NextPurchase, Provenance

T = datetime(2025, 1, 1, tzinfo=UTC)


def summary(orders: int, spend: str) -> PurchaseSummary:
    return PurchaseSummary(1, orders, orders, Decimal(spend), T if orders else None,
                           T if orders else None, 1, 1, ("EUR",))  # fmt: skip


def prediction(expected: float, horizon: float = 90.0) -> NextPurchase:
    return NextPurchase(
        probability_30d=0.5, percentile=None, expected_purchases=expected, expected_days=10,
        horizon_days=horizon, provenance=Provenance("m", 1, "r", T),
        inputs=FeatureVector((), ()),
    )  # fmt: skip


def test_a_year_of_the_predicted_rate_at_the_customers_order_value():
    value = lifetime_value(summary(4, "200.00"), prediction(0.9))
    assert value.historic == Decimal("200.00")
    assert value.expected_order_value == Decimal("50.00")
    assert value.expected_purchases_12_months == 0.9 * 365 / 90
    assert value.predicted_12_months == Decimal("182.50")


def test_without_a_prediction_or_an_order_only_history_is_known():
    assert lifetime_value(summary(4, "200.00"), None).predicted_12_months is None
    never = lifetime_value(summary(0, "0"), prediction(0.3))
    assert (never.historic, never.expected_order_value, never.predicted_12_months) == (
        Decimal("0"), None, None,
    )  # fmt: skip
    assert never.expected_purchases_12_months == 0.3 * 365 / 90
