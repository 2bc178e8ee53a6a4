"""Which failures are the database being unreachable (503, retry) and which are ours (500)."""

from __future__ import annotations

import asyncpg

from api.errors import is_unavailable


def left_busy() -> BaseException:
    return asyncpg.exceptions.InternalClientError(
        "cannot switch to state 21; another operation (2) is in progress"
    )


def busy() -> BaseException:
    return asyncpg.exceptions.InterfaceError(
        "cannot perform operation: another operation is in progress"
    )


def raised_while_handling(first: BaseException, then: BaseException) -> BaseException:
    try:
        try:
            raise first
        except BaseException:
            raise then  # noqa: B904  (implicit chaining, as a failing rollback does)
    except BaseException as exc:
        return exc


def test_a_rollback_failing_after_the_server_dropped_the_connection_is_unavailable() -> None:
    """Seen in tests/faults/test_restart.py: COPY refused on a connection the shutting-down
    server had just sent its FATAL error to, then the transaction's rollback refused too."""
    assert is_unavailable(left_busy())
    assert is_unavailable(raised_while_handling(left_busy(), busy()))
    assert is_unavailable(raised_while_handling(ConnectionResetError(), RuntimeError("x")))


def test_a_server_shutting_down_or_crashing_is_unavailable() -> None:
    """Seen in CI: the parity check's own connection refused with 57P01 mid-restart."""
    shutting_down = asyncpg.exceptions.AdminShutdownError(
        "terminating connection due to administrator command"
    )
    assert is_unavailable(shutting_down)
    assert is_unavailable(asyncpg.exceptions.CrashShutdownError("crashed"))
    assert not is_unavailable(asyncpg.exceptions.QueryCanceledError("timeout"))  # TIMEOUT


def test_our_own_mistakes_stay_ours() -> None:
    assert not is_unavailable(busy())  # using one connection twice at once is a bug of ours
    assert not is_unavailable(raised_while_handling(ValueError("bad"), busy()))
    assert not is_unavailable(asyncpg.exceptions.DataError("invalid input for query argument"))
    cycle = RuntimeError("a")
    cycle.__context__ = RuntimeError("b")
    cycle.__context__.__context__ = cycle
    assert not is_unavailable(cycle)
