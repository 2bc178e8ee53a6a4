"""The one check every time argument of the API goes through: a zone, and a supported range.

A timestamp without a zone cannot say which instant it means. One far outside any business's
history (`0001-01-01`, which PostgreSQL receives as -infinity) turns a bounded question into
an unbounded one: a daily revenue series from year 1 ran until the statement timeout and
wrote gigabytes of temporary files. So arguments are refused outside [SUPPORTED_FROM,
SUPPORTED_UNTIL), with a message naming the argument.
"""

from __future__ import annotations

from datetime import UTC, datetime

from domain.errors import UserError

SUPPORTED_FROM = datetime(1900, 1, 1, tzinfo=UTC)
SUPPORTED_UNTIL = datetime(2200, 1, 1, tzinfo=UTC)


def in_supported_range(value: datetime) -> bool:
    """Whether an aware ``value`` lies in the supported range."""
    return SUPPORTED_FROM <= value <= SUPPORTED_UNTIL


def check_time(value: datetime | None, field: str) -> None:
    """Refuse a timestamp without a time zone, or outside the supported range (None passes:
    an argument not given)."""
    if value is None:
        return
    if value.tzinfo is None:
        raise UserError(f"`{field}` needs a time zone, e.g. 2026-11-01T00:00:00Z", field=field)
    if not in_supported_range(value):
        raise UserError(
            f"`{field}` must lie between {SUPPORTED_FROM:%Y-%m-%d} and "
            f"{SUPPORTED_UNTIL:%Y-%m-%d} (UTC)",
            field=field,
        )
