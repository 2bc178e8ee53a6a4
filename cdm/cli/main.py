"""`cdm`: serve the API, manage the database schema, seed synthetic data."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import time
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from cdm.cli.common import (
    OneLineErrors,
    OneLineGroupErrors,
    check_data_dir,
    console,
    migrated_database,
    progress_bar,
    settings_from_env,
)
from cdm.cli.errors import CliError, fail, run
from cdm.settings import Settings
from sql import migrate
from sql.database import connect, resolve_database_url
from sql.queries import query

if TYPE_CHECKING:
    from ingestion.seed import SeedReport

# The commands defined in other modules (each module's `register`), imported only when one of
# them runs or help lists them: `cdm serve` starts without pyarrow, the dedupe rules, the
# model libraries... (tests/cli/test_cli.py checks this table against what they register).
LAZY_COMMANDS: dict[str, str] = {  # in the order help lists them
    "dedupe": "cdm.cli.dedupe",
    "demo": "cdm.cli.demo",
    "import": "cdm.cli.imports",
    "keys": "cdm.cli.keys",
    "gdpr": "cdm.cli.gdpr",
    "train": "cdm.cli.models",
    "models": "cdm.cli.models",
    "quality": "cdm.cli.quality",
    "score": "cdm.cli.score",
    "rfm": "cdm.cli.segments",
    "segment": "cdm.cli.segments",
}


def registered_commands(module: str) -> dict[str, Any]:
    """The commands ``module``'s ``register`` adds to an app, by name."""
    scratch = typer.Typer()
    importlib.import_module(module).register(scratch)
    return dict(typer.main.get_group(scratch).commands)


class LazyCommands(OneLineGroupErrors):
    """The top-level group: :data:`LAZY_COMMANDS` are loaded from their module when asked for."""

    def _load(self, cmd_name: str) -> None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            for name, command in registered_commands(LAZY_COMMANDS[cmd_name]).items():
                self.commands.setdefault(name, command)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        """Every command (help shows them all: all are loaded), commands before groups."""
        for name in LAZY_COMMANDS:
            self._load(name)
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: isinstance(self.commands[n], TyperGroup))

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        """The command, loading its module first if it is one of :data:`LAZY_COMMANDS`."""
        self._load(cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    help="CDM: a customer database with a GraphQL API.",
    cls=LazyCommands,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(
    help="Database schema: apply and inspect migrations.",
    no_args_is_help=True,
    cls=OneLineGroupErrors,
)
app.add_typer(db_app, name="db")


@db_app.command("migrate", cls=OneLineErrors)
def db_migrate() -> None:
    """Apply pending migrations (safe to run again, and from several processes at once)."""
    settings = settings_from_env()
    _, applied = run(partial(migrated_database, creates=True), settings)
    if not applied:
        console.print("Database schema is up to date.")
    for m in applied:
        console.print(f"applied {m.version:04d}_{m.name}")


async def _status(settings: Settings) -> list[migrate.MigrationState]:
    check_data_dir(settings)
    url = await resolve_database_url(settings.database_url, settings.data_dir)
    conn = await connect(url)
    try:
        return await migrate.status(conn)
    finally:
        await conn.close()


@db_app.command("status", cls=OneLineErrors)
def db_status() -> None:
    """List migrations and whether each is applied."""
    states = run(_status, settings_from_env())
    table = Table("version", "name", "applied at (UTC)")
    for s in states:
        applied = s.applied_at.strftime("%Y-%m-%d %H:%M:%S") if s.applied_at else "[yellow]pending"
        table.add_row(f"{s.migration.version:04d}", s.migration.name, applied)
    console.print(table)


def check_port_free(host: str, port: int) -> None:
    """Refuse, saying what to do, when ``host:port`` cannot be listened on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CliError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is another server using "
                "it? Choose another with --port or CDM_PORT"
            ) from None


@app.command(cls=OneLineErrors)
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [env CDM_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env CDM_PORT].")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes [env CDM_WORKERS].")
    ] = None,
) -> None:
    """Serve the GraphQL API (GraphiQL at /graphql), applying pending migrations first."""
    import uvicorn

    settings = settings_from_env(host=host, port=port, workers=workers)
    try:
        check_port_free(settings.host, settings.port)
    except CliError as exc:
        fail(str(exc))
    url, applied = run(partial(migrated_database, creates=True), settings)
    for m in applied:
        console.print(f"applied migration {m.version:04d}_{m.name}")
    console.print(f"GraphQL API on http://{settings.host}:{settings.port}/graphql")
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.value,
        # SIGTERM stops accepting at once, lets in-flight requests finish for this long, then
        # cancels them; the lifespan then closes the pool (itself bounded, see sql.database).
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }
    # uvicorn drains requests on SIGTERM/SIGINT, then re-raises the signal under the handler
    # it found. Make that handler a clean exit so exit hooks run (they stop the embedded
    # PostgreSQL) instead of the process dying on the signal's default action.
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGINT, _exit_quietly)
    if settings.workers == 1:
        from cdm.worker import collector_paused

        with collector_paused():
            from api.app import create_app  # here only: workers import it themselves

            application = create_app(settings, url)
        uvicorn.run(application, **common)  # type: ignore[arg-type]
    else:
        # Workers are fresh processes: hand them the resolved URL (the embedded server stays
        # owned by this process and stops when it exits).
        os.environ["CDM_DATABASE_URL"] = url
        os.environ["CDM_DATA_DIR"] = str(settings.data_dir)  # the one found here, not looked for
        uvicorn.run("cdm.worker:app", factory=True, workers=settings.workers, **common)  # type: ignore[arg-type]


def _exit_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@app.command(cls=OneLineErrors)
def seed(
    customers: Annotated[int, typer.Option(min=1, help="How many customers to add.")] = 10_000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed: same seed, same data.")] = 42,
    now: Annotated[
        datetime | None,
        typer.Option(help="When the histories end (UTC if no zone). Default: today 00:00 UTC."),
    ] = None,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when customers exist already.")
    ] = False,
) -> None:
    """Add realistic synthetic customers, products, purchases, interactions and consents."""
    from ingestion.seed import default_now, seed_database

    settings = settings_from_env()
    reference = now.replace(tzinfo=now.tzinfo or UTC) if now else default_now()

    async def go() -> SeedReport | int:
        url, _ = await migrated_database(settings)
        conn = await connect(url)
        try:
            existing = await conn.fetchval(query("customer_count"))
            if if_empty and existing:
                return existing
            with progress_bar() as bar:
                task = bar.add_task("seeding", total=customers, rate="")
                started = time.perf_counter()

                def advance(done: int) -> None:
                    rate = done / max(time.perf_counter() - started, 1e-6)
                    bar.update(task, completed=done, rate=f"{rate:,.0f} customers/s")

                return await seed_database(
                    conn, customers=customers, seed=seed, now=reference, progress=advance
                )
        finally:
            await conn.close()

    report = run(go)
    if isinstance(report, int):
        console.print(f"The database already holds {report:,} customers; nothing seeded.")
        return
    table = Table("table", "rows added", title=f"Seeded in {report.elapsed_seconds:.1f} s")
    for name in ("customers", "identities", "products", "purchases", "interactions", "consents"):
        table.add_row(name, f"{getattr(report, name):,}")
    console.print(table)
    console.print(f"customer ids {report.first_customer_id}-{report.last_customer_id}")


def main() -> None:
    """Console-script entry point."""
    app()
