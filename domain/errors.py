"""Errors a user can cause, each with a stable machine-readable code."""

from __future__ import annotations


class UserError(Exception):
    """A request that cannot be served as asked; the message says how to fix it."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidId(UserError):
    """An id that is not of the expected form."""

    code = "INVALID_ID"


class InvalidCursor(UserError):
    """A pagination cursor this server did not issue, or for another ordering."""

    code = "INVALID_CURSOR"


class PageSizeError(UserError):
    """A page size outside the allowed range."""

    code = "PAGE_SIZE_OUT_OF_RANGE"


class AmbiguousLookup(UserError):
    """A lookup that matches more than one record."""

    code = "AMBIGUOUS_LOOKUP"
