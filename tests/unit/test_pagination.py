from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain.errors import InvalidCursor, PageSizeError
from domain.pagination import check_page_size, decode_cursor, encode_cursor


@pytest.mark.parametrize(
    "key",
    [
        (datetime(2025, 3, 1, 12, 30, tzinfo=UTC), 42),
        (Decimal("123.45"), 7),
        (None, 1),
        ("text", 9),
        (datetime.min.replace(tzinfo=UTC), 3),
    ],
)
def test_cursor_round_trip(key):
    assert decode_cursor(encode_cursor("o", key), "o", 2) == key


def test_cursor_is_tied_to_its_ordering_and_arity():
    cursor = encode_cursor("customers:created_at:desc", (datetime(2025, 1, 1, tzinfo=UTC), 1))
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "customers:total_spend:desc", 2)
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "customers:created_at:desc", 3)


@pytest.mark.parametrize(
    "bad", ["", "!!!", "e30", "WyJvIiwgW1sidCIsICIyMDI1LTAxLTAxIl1dXQ", "x" * 600]
)
def test_garbage_cursors_are_invalid(bad):
    with pytest.raises(InvalidCursor):
        decode_cursor(bad, "o", 1)


def test_naive_timestamp_in_cursor_is_invalid():
    import base64
    import json

    raw = json.dumps(["o", [["t", "2025-01-01T00:00:00"]]]).encode()
    with pytest.raises(InvalidCursor):
        decode_cursor(base64.urlsafe_b64encode(raw).decode(), "o", 1)


@pytest.mark.parametrize("first", [0, -1, 101])
def test_page_size_out_of_range(first):
    with pytest.raises(PageSizeError, match="between 1 and 100"):
        check_page_size(first, 100)


def test_page_size_in_range():
    assert check_page_size(100, 100) == 100
