"""Each standardisation rule: the standard form, or a refusal with its reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from domain import standardize as std
from domain.standardize import FieldError, TimeRules

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rule", "raw", "expected"),
    [
        (std.email, " Ada.Lovelace@Example.COM ", "ada.lovelace@example.com"),
        (lambda v: std.phone(v, "DE"), "030 1234567", "+49301234567"),
        (std.phone, "+1 (202) 555-0143", "+12025550143"),
        (std.country, "Germany", "DE"),
        (std.country, "deu", "DE"),
        (std.country, "UK", "GB"),
        (std.currency, "eur", "EUR"),
        (std.name, "  Jean   Luc ", "Jean Luc"),
        (std.amount, "12,50", Decimal("12.50")),
        (std.quantity, "3", 3),
        (lambda v: std.code(v, "kind"), "Email Open", "email_open"),
        (std.source, "Shop.DE", "shop.de"),
        (std.collapse, "   ", None),
    ],
)
def test_standard_forms(rule, raw, expected):
    assert rule(raw) == expected


@pytest.mark.parametrize(
    ("rule", "raw", "code"),
    [
        (std.email, "not-an-email", "invalid_email"),
        (std.phone, "030 1234567", "invalid_phone"),  # national number, no region
        (lambda v: std.phone(v, "DE"), "12", "invalid_phone"),
        (std.country, "Atlantis", "invalid_country"),
        (std.currency, "EURO", "invalid_currency"),
        (std.amount, "-1", "negative"),
        (std.amount, "1.234", "too_precise"),
        (std.amount, "abc", "invalid_number"),
        (std.quantity, "0", "not_positive"),
        (std.quantity, "1.5", "invalid_integer"),
        (lambda v: std.code(v, "kind"), "9lives", "invalid_code"),
        (lambda v: std.name(v), "x" * 101, "too_long"),
    ],
)
def test_refusals_carry_a_code(rule, raw, code):
    with pytest.raises(FieldError) as caught:
        rule(raw)
    assert caught.value.code == code
    assert caught.value.message


def test_timestamps_are_utc_and_not_in_the_future():
    assert std.timestamp("2025-05-01T12:00:00+02:00", NOW) == datetime(2025, 5, 1, 10, tzinfo=UTC)
    berlin = TimeRules(format="%Y%m%d %H%M", naive_zone="Europe/Berlin")
    assert std.timestamp("20250101 1200", NOW, berlin) == datetime(2025, 1, 1, 11, tzinfo=UTC)
    assert std.timestamp("2025-06-01T12:04:00Z", NOW) is not None  # within the tolerance
    with pytest.raises(FieldError, match="future"):
        std.timestamp("2025-06-02T00:00:00Z", NOW)
    strict = TimeRules(future_tolerance=timedelta(0))
    with pytest.raises(FieldError):
        std.timestamp("2025-06-01T12:00:01Z", NOW, strict)
    with pytest.raises(FieldError, match="does not match"):
        std.timestamp("01/02/2025", NOW)


@pytest.mark.parametrize(
    "raw", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "1899-12-31T23:59:59Z"]
)
def test_timestamps_before_the_supported_range_are_refused(raw):
    # Year 1 reaches PostgreSQL as -infinity in the queries that read it back; east of UTC it
    # does not even fit a Python datetime once converted.
    with pytest.raises(FieldError) as refused:
        std.timestamp(raw, NOW)
    assert refused.value.code == "out_of_range"
    assert std.timestamp("1900-01-01T00:00:00Z", NOW) == datetime(1900, 1, 1, tzinfo=UTC)


def test_birth_dates():
    assert std.birth_date("1980-04-30", NOW.date()) == date(1980, 4, 30)
    with pytest.raises(FieldError):
        std.birth_date("2030-01-01", NOW.date())
    assert std.birth_date("", NOW.date()) is None
