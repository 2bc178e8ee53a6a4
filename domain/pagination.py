"""Keyset pagination: page sizes, opaque cursors and the pages they produce.

A cursor is the sort key of the last row a client saw, tagged with the ordering it belongs to,
so a cursor from one ordering cannot be replayed against another. It is opaque to clients
(URL-safe base64 of JSON) but not secret: it carries only values the client already had.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Generic, TypeVar

from domain.errors import InvalidCursor, PageSizeError

T = TypeVar("T")
SortValue = datetime | Decimal | int | str | None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """`first` rows after the row `after` points at (None: from the start)."""

    first: int
    after: tuple[SortValue, ...] | None = None


def check_page_size(first: int, maximum: int) -> int:
    """`first` when within 1..maximum, else a PageSizeError that names the limit."""
    if first < 1 or first > maximum:
        raise PageSizeError(
            f"`first` must be between 1 and {maximum} (got {first}); page through larger "
            "lists with `after`",
            field="first",
        )
    return first


def _encode_value(value: SortValue) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, Decimal):
        return ["d", str(value)]
    if isinstance(value, bool):  # bool is an int: refuse it rather than mangle it
        raise TypeError("booleans are not sort keys")
    if isinstance(value, int):
        return ["i", str(value)]
    return ["s", value]


def _decode_value(raw: object) -> SortValue:
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, str) for x in raw)):
        raise ValueError("bad value")
    tag, text = raw
    if tag == "t":
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            raise ValueError("naive timestamp")
        return value
    if tag == "d":
        return Decimal(text)
    if tag == "i":
        return int(text)
    if tag == "s":
        return text
    raise ValueError("bad tag")


def encode_cursor(ordering: str, key: tuple[SortValue, ...]) -> str:
    """The opaque cursor of a row with sort `key` under `ordering`."""
    payload = json.dumps([ordering, [_encode_value(v) for v in key]], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, ordering: str, arity: int) -> tuple[SortValue, ...]:
    """The sort key inside `cursor`; InvalidCursor if it is not one of ours for `ordering`."""
    problem = InvalidCursor(
        "`after` is not a cursor from this list and ordering; use an `endCursor` or edge "
        "`cursor` returned by the same field with the same `orderBy`",
        field="after",
    )
    if len(cursor) > 512:
        raise problem
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        tag, raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if tag != ordering or not isinstance(raw, list) or len(raw) != arity:
            raise problem
        return tuple(_decode_value(v) for v in raw)
    except (ValueError, TypeError, binascii.Error, InvalidOperation, UnicodeDecodeError) as exc:
        raise problem from exc


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of rows with each row's sort key under `ordering`, and whether more follow."""

    items: list[T]
    keys: list[tuple[SortValue, ...]]
    ordering: str
    has_next_page: bool
    has_previous_page: bool
