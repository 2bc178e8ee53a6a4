"""One clear line and a non-zero exit for every failure a user can meet."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import asyncpg
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

T = TypeVar("T")
err_console = Console(stderr=True)


class CliError(Exception):
    """A failure whose message is already fit for the user."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` as the one line of an error and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def describe(exc: BaseException) -> str:
    """A person-readable line for an exception (no traceback, no SQL)."""
    # Imported here, not at the top: every command imports this module, `cdm serve` too,
    # which needs none of them (the exception was raised: its module is loaded anyway).
    from ingestion.readers import InputError
    from ml.registry import RegistryError
    from ml.training.errors import InsufficientData
    from sql.embedded import EmbeddedDatabaseError
    from sql.migrate import MigrationError

    if isinstance(
        exc,
        CliError
        | EmbeddedDatabaseError
        | MigrationError
        | InputError
        | InsufficientData
        | RegistryError,
    ):
        return str(exc)
    if type(exc).__module__.startswith("mlflow"):
        message = str(getattr(exc, "message", "")).splitlines()[:1] or [""]
        return f"MLflow refused the request: {message[0][:300]} (is MLFLOW_TRACKING_URI right?)"
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"CDM_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        return f"bad configuration: {problems}"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return "the database refused the login; check the user and password in CDM_DATABASE_URL"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "the database in CDM_DATABASE_URL does not exist; create it first"
    if isinstance(exc, OSError | asyncpg.CannotConnectNowError | TimeoutError):
        return (
            "cannot reach the database; is it running, and is CDM_DATABASE_URL right? "
            f"({exc.__class__.__name__})"
        )
    if isinstance(exc, asyncpg.PostgresError):
        return f"the database refused the operation ({exc.sqlstate})"
    return f"unexpected {exc.__class__.__name__}; rerun with CDM_LOG_LEVEL=debug for details"


def run(coroutine_fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run an async command, turning any failure into one line and exit code 1."""
    try:
        return asyncio.run(coroutine_fn(*args))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        logging.getLogger("cdm").debug("command failed", exc_info=exc)
        fail(describe(exc))
