"""How errors reach clients: readable for their own mistakes, masked for ours.

A client's mistake (syntax, validation, a bad argument, a page too large) keeps its message and
gets a stable `extensions.code`. Anything else is logged with an error id and answered with
that id only: no SQL, no stack trace, no internal names.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
from graphql import GraphQLError

from domain.errors import UserError

_log = logging.getLogger("cdm.api")

_UNAVAILABLE = (
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TooManyConnectionsError,
    ConnectionError,
    OSError,
)


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The response entry for one error."""
    original = error.original_error
    entry: dict[str, Any] = {"message": error.message}
    if error.locations:
        entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        entry["path"] = error.path
    if original is None:
        # Raised by GraphQL itself: parsing, validation, variable coercion.
        entry["extensions"] = {"code": "GRAPHQL_VALIDATION_FAILED", **(error.extensions or {})}
    elif isinstance(original, UserError):
        extensions: dict[str, Any] = {"code": original.code}
        if original.field:
            extensions["field"] = original.field
        entry["extensions"] = extensions
    elif isinstance(original, _UNAVAILABLE):
        error_id = uuid.uuid4().hex
        _log.warning("database unavailable [%s]: %r", error_id, original)
        entry["message"] = "The database is unavailable; retry shortly."
        entry["extensions"] = {"code": "DB_UNAVAILABLE", "errorId": error_id}
    else:
        error_id = uuid.uuid4().hex
        _log.error("unexpected error [%s] at %s", error_id, error.path, exc_info=original)
        entry["message"] = "Internal server error"
        entry["extensions"] = {"code": "INTERNAL_SERVER_ERROR", "errorId": error_id}
    return entry


def request_error(message: str, code: str = "BAD_REQUEST") -> dict[str, Any]:
    """A response body for a request that never reached execution."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}
