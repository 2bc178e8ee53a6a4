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
    # 57P01-57P03: the server is shutting down, crashed or still starting; these reach a
    # request on a new connection too (the parity check connects on its own)
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TooManyConnectionsError,
    ConnectionError,
    OSError,
    TimeoutError,  # no free connection within the pool's acquire timeout
)
# asyncpg's InterfaceError covers lost connections and closing pools, but also our own
# misuse: a wrong number of bind values, a value of the wrong type (its DataError). Only the
# first kind is an outage; the rest are our bugs, never to be reported as "retry later".
_GONE = {"connection is closed", "pool is closing", "pool is closed"}
UNAVAILABLE = "DB_UNAVAILABLE"
_UNAVAILABLE_MESSAGE = "The database is unavailable; retry shortly."
TIMEOUT = "TIMEOUT"


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached (retrying may succeed): itself,
    or the failure it was raised while handling. A statement refused on a connection the
    server was dropping leaves that connection busy, so the transaction's rollback on the way
    out fails too ("another operation is in progress"): the first failure says what happened.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:  # a chain, bounded against cycles
        if (
            isinstance(current, _UNAVAILABLE)
            or _connection_gone(current)
            or _connection_left_busy(current)
        ):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a statement the server stopped (``CDM_STATEMENT_TIMEOUT_MS``)."""
    return isinstance(exc, asyncpg.exceptions.QueryCanceledError)


def _connection_gone(exc: BaseException) -> bool:
    if not isinstance(exc, asyncpg.exceptions.InterfaceError) or isinstance(exc, ValueError):
        return False  # asyncpg's DataError (a bad bind value) is an InterfaceError too
    message = str(exc)
    return message in _GONE or message.endswith("the underlying connection is closed")


def _connection_left_busy(exc: BaseException) -> bool:
    """A pooled connection the server was dropping: a shutting-down server sends each idle
    connection a FATAL error before closing it, and a request that draws the connection in
    between has its first statement refused with this error. asyncpg aborts the connection
    then, so a retry gets a fresh one. Other client errors stay ours (500)."""
    return isinstance(exc, asyncpg.exceptions.InternalClientError) and str(exc).startswith(
        "cannot switch to state"
    )


def _unavailable_entry(exc: BaseException) -> dict[str, Any]:
    error_id = uuid.uuid4().hex
    _log.warning("database unavailable [%s]: %r", error_id, exc)
    return {
        "message": _UNAVAILABLE_MESSAGE,
        "extensions": {"code": UNAVAILABLE, "errorId": error_id},
    }


def unavailable(exc: BaseException) -> dict[str, Any]:
    """The response body for a request the database could not serve (logged with an id)."""
    return {"errors": [_unavailable_entry(exc)]}


def _timeout_entry(exc: BaseException) -> dict[str, Any]:
    error_id = uuid.uuid4().hex
    _log.warning("statement stopped [%s]: %s", error_id, exc)
    if "statement timeout" in str(exc):
        message = (
            "The query ran longer than this server allows and was stopped; ask for less "
            "(a narrower window, a smaller page) or retry later."
        )
    else:  # cancelled by an operator (pg_cancel_backend)
        message = "The query was cancelled on the database server before it finished."
    return {"message": message, "extensions": {"code": TIMEOUT, "errorId": error_id}}


def timed_out(exc: BaseException) -> dict[str, Any]:
    """The response body for a request whose statement the server stopped."""
    return {"errors": [_timeout_entry(exc)]}


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The response entry for one error."""
    original = error.original_error
    entry: dict[str, Any] = {"message": error.message}
    if error.locations:
        entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        entry["path"] = error.path
    if original is None or isinstance(original, GraphQLError):
        # Raised by GraphQL itself: parsing, validation, variable coercion (graphql-core 3.3
        # attaches the scalar's own GraphQLError to a variable that does not coerce).
        entry["extensions"] = {"code": "GRAPHQL_VALIDATION_FAILED", **(error.extensions or {})}
    elif isinstance(original, UserError):
        extensions: dict[str, Any] = {"code": original.code}
        if original.field:
            extensions["field"] = original.field
        entry["extensions"] = extensions
    elif is_unavailable(original):
        entry.update(_unavailable_entry(original))
    elif is_timeout(original):
        entry.update(_timeout_entry(original))
    else:
        entry.update(_internal_entry(original, error.path))
    return entry


def _internal_entry(exc: BaseException, path: object = None) -> dict[str, Any]:
    error_id = uuid.uuid4().hex
    _log.error("unexpected error [%s] at %s", error_id, path, exc_info=exc)
    return {
        "message": "Internal server error",
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "errorId": error_id},
    }


def internal_error(exc: BaseException) -> dict[str, Any]:
    """The response body for our own failure: an id to quote, the details only in the log."""
    return {"errors": [_internal_entry(exc)]}


def request_error(message: str, code: str = "BAD_REQUEST") -> dict[str, Any]:
    """A response body for a request that never reached execution."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}
