from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain.commerce import PurchaseSummary
from domain.customer_queries import CustomerFilter, TimeWindow, contains_pattern
from domain.customers import Customer
from domain.errors import InvalidId, UserError
from domain.ids import parse_id

NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("Ann", "%ann%"),
        ("  a   b ", "%a b%"),
        ("50%_off\\", "%50\\%\\_off\\\\%"),
    ],
)
def test_contains_pattern_escapes_wildcards(text, pattern):
    assert contains_pattern(text) == pattern


@pytest.mark.parametrize(
    "kwargs",
    [
        {"country": "DEU"},
        {"country": "1A"},
        {"search": "a"},
        {"search": "x" * 201},
        {"min_total_spend": Decimal(-1)},
        {"created_after": datetime(2025, 1, 1)},  # naive
    ],
)
def test_customer_filter_refuses(kwargs):
    with pytest.raises(UserError):
        CustomerFilter(**kwargs)


def test_customer_filter_normalises_country():
    assert CustomerFilter(country="de").normalized_country == "DE"


def test_time_window_rules():
    with pytest.raises(UserError, match="before"):
        TimeWindow(first=5, since=NOW, until=NOW)
    assert not TimeWindow(first=5).bounded
    assert TimeWindow(first=5, kinds=("complaint",)).bounded


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5", "٣", str(2**63)])
def test_parse_id_refuses(value):
    with pytest.raises(InvalidId):
        parse_id(value)


def test_parse_id_accepts_padding():
    assert parse_id(" 42 ") == 42


def test_average_order_value():
    summary = PurchaseSummary(1, 3, 2, Decimal("10.01"), NOW, NOW, 2, 1, ("EUR",))
    assert summary.average_order_value == Decimal("5.00")  # 5.005 -> banker's rounding
    assert PurchaseSummary.empty(1).average_order_value is None


def test_full_name():
    c = Customer(1, None, "Curie", None, None, None, None, NOW, NOW)
    assert c.full_name == "Curie"
    assert Customer(1, None, None, None, None, None, None, NOW, NOW).full_name is None
