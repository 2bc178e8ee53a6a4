"""`cdm import ENTITY FILE...`: bulk import with validation, standardisation and a summary."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cdm.cli.common import (
    OneLineErrors,
    console,
    migrated_database,
    progress_bar,
    settings_from_env,
)
from cdm.cli.errors import CliError, fail, run
from domain import standardize as std
from domain.records import ParseOptions
from domain.standardize import FieldError, TimeRules
from ingestion.importer import ENTITIES, ImportOptions, ImportSummary, check_mapping, import_files
from ingestion.readers import FileFormat, InputError, MappingError
from sql.database import connect


def _mapping(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    mapping = {}
    for part in text.split(","):
        target, sep, source = part.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise CliError(f"--map: {part!r} is not target=source (e.g. email=E-Mail Address)")
        if target.strip() in mapping:
            raise CliError(f"--map: {target.strip()!r} is mapped twice")
        mapping[target.strip()] = source.strip()
    return mapping


def register(app: typer.Typer) -> None:
    """Add `import` to the `cdm` app."""

    @app.command("import", cls=OneLineErrors)
    def import_command(
        entity: Annotated[str, typer.Argument(help=f"One of: {', '.join(ENTITIES)}.")],
        files: Annotated[list[Path], typer.Argument(help="CSV, JSON Lines or Parquet files.")],
        source: Annotated[
            str, typer.Option(help="The system the data comes from, e.g. crm or shop.")
        ] = "import",
        customer_source: Annotated[
            str | None,
            typer.Option(help="The system whose ids name customers here (default: --source)."),
        ] = None,
        map_: Annotated[
            str | None,
            typer.Option("--map", help="Our field from a column of yours: email=E-Mail,..."),
        ] = None,
        file_format: Annotated[
            str | None, typer.Option("--format", help="csv, jsonl or parquet (default: suffix).")
        ] = None,
        delimiter: Annotated[
            str | None,
            typer.Option(
                help="CSV delimiter: a character, tab, semicolon, pipe, whitespace "
                "(default: detected among , ; tab |)."
            ),
        ] = None,
        no_header: Annotated[
            bool, typer.Option("--no-header", help="The first line is data, not names.")
        ] = False,
        columns: Annotated[
            str | None, typer.Option(help="Column names, comma-separated (headerless files).")
        ] = None,
        encoding: Annotated[str, typer.Option(help="Text encoding of CSV files.")] = "utf-8",
        time_format: Annotated[
            str | None, typer.Option(help="strptime format of timestamps, e.g. %Y%m%d.")
        ] = None,
        timezone: Annotated[str, typer.Option(help="Zone of timestamps that carry none.")] = "UTC",
        future_tolerance: Annotated[
            int, typer.Option(help="Seconds a timestamp may lie in the future (clock skew).")
        ] = 300,
        currency: Annotated[
            str | None, typer.Option(help="Currency for rows that name none, e.g. EUR.")
        ] = None,
        phone_region: Annotated[
            str | None, typer.Option(help="Region of national phone numbers, e.g. DE.")
        ] = None,
        create_missing_customers: Annotated[
            bool,
            typer.Option(help="Create a minimal customer for an unseen customer external id."),
        ] = False,
        rejects: Annotated[
            Path | None, typer.Option(help="Where to write refused rows (default: beside it).")
        ] = None,
        chunk_size: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 10_000,
        writers: Annotated[
            int, typer.Option(min=1, max=8, help="Database connections writing side by side.")
        ] = 2,
        max_reject_rate: Annotated[
            float,
            typer.Option(
                min=0.0,
                max=1.0,
                help="Exit 1 when more than this share of the rows is refused (or all are).",
            ),
        ] = 0.10,
    ) -> None:
        """Import customers, products, purchases, interactions or consents."""
        if entity not in ENTITIES:
            fail(f"unknown entity {entity!r}; choose one of {', '.join(ENTITIES)}", 2)
        settings = settings_from_env()
        try:
            options = ImportOptions(
                entity=entity,
                parse=ParseOptions(
                    source=std.source(source),
                    customer_source=std.source(customer_source) if customer_source else None,
                    default_currency=std.currency(currency) if currency else None,
                    phone_region=phone_region.upper() if phone_region else None,
                    time=TimeRules(time_format, timezone,
                                   timedelta(seconds=future_tolerance)),
                ),
                file_format=FileFormat(
                    kind=file_format, delimiter=delimiter, header=not no_header,
                    columns=tuple(c.strip() for c in columns.split(",")) if columns else None,
                    encoding=encoding,
                ),
                mapping=_mapping(map_),
                create_missing_customers=create_missing_customers,
                policy=settings.survivorship,
                chunk_size=chunk_size,
            )  # fmt: skip
        except (FieldError, CliError) as exc:
            fail(str(exc), 2)
        for path in files:
            if not path.is_file():
                fail(f"{path}: no such file", 2)
        try:
            check_mapping(files, options)
        except MappingError as exc:
            fail(str(exc), 2)
        except InputError as exc:
            fail(str(exc))
        rejects_path = rejects or files[0].with_name(files[0].stem + ".rejects.csv")

        async def go() -> ImportSummary:
            url, _ = await migrated_database(settings)
            conn = await connect(url)
            extra = [await connect(url) for _ in range(writers - 1)]
            try:
                with rejects_path.open("w", newline="") as sink, progress_bar() as bar:
                    task = bar.add_task(f"importing {entity}", total=None, rate="")
                    started = time.perf_counter()

                    def advance(done: int) -> None:
                        rate = done / max(time.perf_counter() - started, 1e-6)
                        bar.update(task, completed=done, rate=f"{rate:,.0f} rows/s")

                    return await import_files(
                        conn, files, options, rejects=sink, progress=advance,
                        extra_connections=extra,
                    )  # fmt: skip
            finally:
                for c in (conn, *extra):
                    await c.close()

        summary = run(go)
        table = Table("rows read", "inserted", "updated", "unchanged", "rejected")
        table.add_row(*(f"{n:,}" for n in (summary.read, summary.inserted, summary.updated,
                                             summary.unchanged, summary.rejected)))  # fmt: skip
        console.print(table)
        if summary.rejected:
            # soft_wrap: a path broken over two lines cannot be copied (or found by a script)
            console.print(f"Refused rows and why: {rejects_path}", soft_wrap=True)
        else:
            rejects_path.unlink(missing_ok=True)
        if not summary.balanced:  # would be a bug: say so loudly rather than hide it
            print("error: the counts do not add up; please report this", file=sys.stderr)
            raise SystemExit(3)
        _fail_on_rejects(summary, max_reject_rate, rejects_path)


def _fail_on_rejects(summary: ImportSummary, max_rate: float, rejects_path: Path) -> None:
    """Exit 1 when every row, or more than `max_rate` of them, was refused: a wrong delimiter
    or mapping must not pass for a successful import."""
    if not summary.read:
        return
    if summary.rejected == summary.read:
        what = f"all {summary.read:,} rows were refused"
    elif summary.rejected > max_rate * summary.read:
        what = (
            f"{summary.rejected:,} of {summary.read:,} rows were refused "
            f"({summary.rejected / summary.read:.0%}, more than --max-reject-rate {max_rate:g})"
        )
    else:
        return
    accepted = summary.read - summary.rejected
    kept = (
        f"the {accepted:,} rows accepted stay written (each chunk is its own transaction), "
        "so importing the fixed file again only adds what was refused"
        if accepted
        else "nothing was written"
    )
    fail(f"{what}; reasons in {rejects_path}; {kept}")
