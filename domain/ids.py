"""Identifiers as clients send them."""

from __future__ import annotations

from domain.errors import InvalidId

_MAX_ID = 2**63 - 1  # PostgreSQL bigint


def parse_id(value: str, *, field: str = "id") -> int:
    """The numeric id in `value`, or InvalidId naming the field."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= _MAX_ID:
        raise InvalidId(f"`{field}` must be a positive integer id, got {value[:40]!r}", field=field)
    return int(text)
