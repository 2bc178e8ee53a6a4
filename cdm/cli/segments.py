"""`cdm rfm` and `cdm segment`: RFM snapshots, saved segments' sizes and exports."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.table import Table

import sql.audit
import sql.rfm
import sql.segments as store
from cdm.cli.common import (
    OneLineErrors,
    OneLineGroupErrors,
    command_entry,
    console,
    settings_from_env,
    with_connection,
)
from cdm.cli.errors import fail, run
from domain.segments import CHANNEL_PURPOSES

segment_app = typer.Typer(
    help="Saved segments: list them, record their sizes, export their members.",
    no_args_is_help=True,
    cls=OneLineGroupErrors,
)


class Format(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


def rfm(
    as_of: Annotated[
        datetime | None, typer.Option(help="Score as of this time (UTC if no zone; default now).")
    ] = None,
) -> None:
    """Compute every customer's RFM scores and segment; replace the stored snapshot."""
    moment = as_of or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    started = time.perf_counter()
    count = run(with_connection, sql.rfm.refresh, moment)
    _, sizes = run(with_connection, sql.rfm.summary)
    table = Table("segment", "customers", "share", "spent")
    for s in sizes:
        share = f"{s.customers / count:.1%}" if count else "-"
        table.add_row(s.segment.value, f"{s.customers:,}", share, f"{s.monetary:,.2f}")
    console.print(table)
    console.print(
        f"RFM of {count:,} customers as of {moment:%Y-%m-%d %H:%M} UTC "
        f"in {time.perf_counter() - started:.1f} s."
    )


async def _sizes(conn: asyncpg.Connection) -> list[tuple[str, int]]:
    bands, now = settings_from_env().risk_bands, datetime.now(UTC)
    found = []
    for segment in await store.all_segments(conn):
        size = await store.size(conn, segment.definition, now, bands)
        await store.record_size(conn, segment.id, size)
        found.append((segment.name, size))
    return found


@segment_app.command("list")
def list_() -> None:
    """Every saved segment and its size now (recorded in its size history)."""
    table = Table("segment", "customers")
    for name, size in run(with_connection, _sizes):
        table.add_row(name, f"{size:,}")
    console.print(table)


async def _export(
    conn: asyncpg.Connection, name: str, purpose: str | None
) -> tuple[list[asyncpg.Record], int] | str:
    segment = await store.by_name(conn, name)
    if segment is None:
        return f"no segment named {name!r} (see `cdm segment list`)"
    bands, now = settings_from_env().risk_bands, datetime.now(UTC)
    async with conn.transaction(isolation="repeatable_read"):
        members = await store.size(conn, segment.definition, now, bands)
        rows = await store.member_contacts(conn, segment.definition, now, bands, purpose)
        await store.record_size(conn, segment.id, members)
        details = {"segment": segment.id, "purpose": purpose, "rows": len(rows)}
        entry = command_entry("segment export", [r["id"] for r in rows], details)
        await sql.audit.record(conn, entry)
    return rows, members


_COLUMNS = ["id", "first_name", "last_name", "email", "phone", "country", "total_spend",
            "last_purchase_at", "rfm_segment", "churn_probability"]  # fmt: skip


@segment_app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="The segment's name.")],
    channel: Annotated[
        str | None,
        typer.Option(help=f"Only members who consented to it: {', '.join(CHANNEL_PURPOSES)}."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="File format.")] = Format.CSV,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Write a segment's members (contact fields, spend, RFM segment, churn risk) to a file."""
    if channel is not None and channel not in CHANNEL_PURPOSES:
        fail(f"--channel must be one of {', '.join(CHANNEL_PURPOSES)}, not {channel!r}", 2)
    purpose = CHANNEL_PURPOSES[channel] if channel else None
    outcome = run(with_connection, _export, name, purpose)
    if isinstance(outcome, str):
        fail(outcome)
    rows, members = outcome
    target = output or Path(f"{name.replace('/', '_')}.{fmt.value}")
    records = [[r[c] for c in _COLUMNS] for r in rows]
    if fmt is Format.CSV:
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(_COLUMNS)
            writer.writerows(records)
    else:
        columns = {c: [row[i] for row in records] for i, c in enumerate(_COLUMNS)}
        columns["total_spend"] = [float(v) for v in columns["total_spend"]]
        pq.write_table(pa.table(columns), target)
    left_out = members - len(rows)
    why = f"; {left_out:,} without consent to {purpose} left out" if purpose else ""
    console.print(f"Wrote {len(rows):,} of {members:,} members of {name!r} to {target}{why}.")


def register(app: typer.Typer) -> None:
    """Add `cdm rfm` and `cdm segment` to the `cdm` app."""
    app.command("rfm", cls=OneLineErrors)(rfm)
    app.add_typer(segment_app, name="segment")
