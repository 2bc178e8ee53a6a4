"""Segment definitions compile to conditions whose placeholders are exactly the values bound:
one bound but never referred to makes PostgreSQL refuse the statement (issue #13: an open
bound, `daysSinceLastPurchase: {max: null}`, was reported as the database being down)."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain.predictions import RiskBands
from domain.segments import InteractionCount, Range, SegmentFilter
from sql.segments import compile_filter

AT = datetime(2026, 1, 1, tzinfo=UTC)
BANDS = RiskBands(medium=0.4, high=0.7)
BOUNDS = [None, Decimal(0), Decimal("2.5")]
RANGES = [
    "total_spend", "orders", "days_since_last_purchase", "churn_probability",
    "purchase_probability_30d", "expected_purchases",
]  # fmt: skip


def _placeholders(condition: str) -> set[int]:
    return {int(n) for n in re.findall(r"\$(\d+)", condition)}


@pytest.mark.parametrize("field", RANGES)
@pytest.mark.parametrize(("low", "high"), list(itertools.product(BOUNDS, BOUNDS)))
@pytest.mark.parametrize("offset", [0, 2])
def test_every_range_binds_exactly_what_it_uses(field, low, high, offset):
    node = SegmentFilter(**{field: Range(low, high)})
    condition, params = compile_filter(node, AT, BANDS, offset=offset)
    assert _placeholders(condition) == set(range(offset + 1, offset + len(params) + 1))
    if low is None and high is None and field != "days_since_last_purchase":
        assert (condition, params) == ("true", [])  # an open range is no condition


@pytest.mark.parametrize(("low", "high"), list(itertools.product([None, 0, 3], [None, 5])))
def test_interaction_counts_bind_exactly_what_they_use(low, high):
    node = SegmentFilter(
        interactions=InteractionCount("page_view", "web", 30, low, high),
        none_of=(SegmentFilter(days_since_last_purchase=Range(None, None)),),
    )
    condition, params = compile_filter(node, AT, BANDS)
    assert _placeholders(condition) == set(range(1, len(params) + 1))


def test_counts_round_bounds_inward():
    """`orders >= 2.5` holds from 3 orders, `orders <= 2.5` up to 2."""
    _, params = compile_filter(
        SegmentFilter(orders=Range(Decimal("2.5"), Decimal("2.5"))), AT, BANDS
    )
    assert params == [3, 2]
