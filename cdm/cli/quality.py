"""`cdm quality`: the data-quality report, as tables or as JSON."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from cdm.cli.common import OneLineErrors, console, migrated_database, settings_from_env
from cdm.cli.errors import run
from cdm.settings import Settings
from domain.quality import Check, FieldQuality, QualityReport
from sql.database import connect
from sql.quality import read_quality_report


async def _read(settings: Settings) -> QualityReport:
    url, _ = await migrated_database(settings)
    conn = await connect(url)
    try:
        return await read_quality_report(conn)
    finally:
        await conn.close()


def _check(c: Check) -> dict[str, Any]:
    return {"name": c.name, "description": c.description, "count": c.count, "share": c.share}


def _field(f: FieldQuality) -> dict[str, Any]:
    return {
        "field": f.field, "filled": f.filled, "fill_rate": f.fill_rate, "invalid": f.invalid,
        "invalid_rate": f.invalid_rate, "checks": [_check(c) for c in f.checks],
    }  # fmt: skip


def report_as_dict(report: QualityReport) -> dict[str, Any]:
    """The report as plain JSON values, shaped like the GraphQL `dataQuality` (snake_case)."""
    return {
        "generated_at": report.generated_at,
        "tables": [
            {"table": t.table, "rows": t.rows, "fields": [_field(f) for f in t.fields]}
            for t in report.tables
        ],
        "duplicates": [
            {"kind": d.kind.value, "description": d.description, "customers": d.customers,
             "groups": d.groups, "share": d.share}
            for d in report.duplicates
        ],
        "consistency": [_check(c) for c in report.consistency],
        "freshness": [
            {"table": f.table, "source": f.source, "rows": f.rows,
             "last_record_at": f.last_record_at, "last_event_at": f.last_event_at,
             "age_hours": f.age_hours}
            for f in report.freshness
        ],
    }  # fmt: skip


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _count(n: int) -> str:
    # Problems stand out; zeros stay quiet.
    return f"[yellow]{n:,}" if n else "[dim]0"


_NUMERIC = {"rows", "filled", "fill rate", "invalid", "customers", "share", "groups", "count",
            "age (h)"}  # fmt: skip
_PROSE = {"problems", "what they share", "meaning"}


def _table(title: str, *columns: str) -> Table:
    # Names, numbers and times never wrap (a machine name cut in two is no name); prose
    # does, so the tables fit an 80-column terminal.
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in _NUMERIC else "left",
                         no_wrap=column not in _PROSE)  # fmt: skip
    return table


def _render(report: QualityReport) -> None:
    console.print(
        f"[bold]Data quality[/] at {report.generated_at:%Y-%m-%d %H:%M:%S} UTC", highlight=False
    )
    fields = _table("Completeness and validity", "table", "field", "filled", "fill rate",
                    "invalid", "problems")  # fmt: skip
    for t in report.tables:
        # The table's name, then its row count, down the first column.
        labels = [t.table, f"[dim]{t.rows:,} rows"]
        for i, f in enumerate(t.fields):
            problems = ", ".join(
                f"{c.name.rsplit('.', 1)[-1]} {c.count:,}" for c in f.checks if c.count
            )
            fields.add_row(labels[i] if i < len(labels) else "", f.field, f"{f.filled:,}",
                           _percent(f.fill_rate), _count(f.invalid), problems)  # fmt: skip
        fields.add_section()
    console.print(fields)

    duplicates = _table("Duplicate candidates (exact matches)", "kind", "customers", "share",
                        "groups", "what they share")  # fmt: skip
    for d in report.duplicates:
        duplicates.add_row(d.kind.value, _count(d.customers), _percent(d.share), f"{d.groups:,}",
                           d.description)  # fmt: skip
    console.print(duplicates)

    consistency = _table("Consistency", "check", "count", "share", "meaning")
    for c in report.consistency:
        consistency.add_row(c.name, _count(c.count), _percent(c.share), c.description)
    console.print(consistency)

    # The newest event's time is worth its column only where there is room for it (JSON and
    # GraphQL always carry it).
    events = console.width >= 100
    columns = ["table", "source", "rows", "last record", "age (h)"]
    freshness = _table("Freshness per source (UTC)", *columns, *(["last event"] if events else []))
    for s in report.freshness:
        row = [s.table, s.source, f"{s.rows:,}", f"{s.last_record_at:%Y-%m-%d %H:%M}",
               f"{s.age_hours:,.1f}"]  # fmt: skip
        if events:
            row.append(f"{s.last_event_at:%Y-%m-%d %H:%M}" if s.last_event_at else "-")
        freshness.add_row(*row)
    if not report.freshness:
        freshness.add_row("[dim]no data yet")
    console.print(freshness)


def quality(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (and nothing else).")
    ] = False,
) -> None:
    """Report data quality: completeness and invalid values per field, exact duplicate
    candidates, inconsistent rows and how fresh each source's data is."""
    report = run(_read, settings_from_env())
    if as_json:
        sys.stdout.buffer.write(
            orjson.dumps(report_as_dict(report), option=orjson.OPT_INDENT_2) + b"\n"
        )
        sys.stdout.flush()
        return
    _render(report)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `cdm` app."""
    app.command("quality", cls=OneLineErrors)(quality)
