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
from domain.segments import ANALYTICS_PURPOSE, CHANNEL_PURPOSES

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


class Purpose(StrEnum):
    ANALYTICS = "analytics"


async def _export(
    conn: asyncpg.Connection, name: str, purpose: str, contacts: bool
) -> tuple[list[asyncpg.Record], int] | str:
    """The rows of an export (with contact fields only when ``contacts``, for the channel
    ``purpose``), the segment's size, and its audit entry: who, segment, purpose, rows."""
    segment = await store.by_name(conn, name)
    if segment is None:
        return f"no segment named {name!r} (see `cdm segment list`)"
    bands, now = settings_from_env().risk_bands, datetime.now(UTC)
    async with conn.transaction(isolation="repeatable_read"):
        members = await store.size(conn, segment.definition, now, bands)
        if contacts:
            rows = await store.member_contacts(conn, segment.definition, now, bands, purpose)
        else:
            rows = await store.member_attributes(conn, segment.definition, now, bands)
        await store.record_size(conn, segment.id, members)
        details = {"segment": segment.id, "segmentName": segment.name, "purpose": purpose,
                   "contactFields": contacts, "rows": len(rows)}  # fmt: skip
        entry = command_entry("segment export", [r["id"] for r in rows], details)
        await sql.audit.record(conn, entry)
    return rows, members


_CONTACTS = ["first_name", "last_name", "email", "phone"]
_COLUMNS = ["id", *_CONTACTS, "country", "total_spend", "last_purchase_at", "rfm_segment",
            "churn_probability"]  # fmt: skip
_NEEDS = (
    f"an export needs --channel {'|'.join(CHANNEL_PURPOSES)} (contact fields of the members "
    "who consented to it) or --purpose analytics (ids and attributes, no contact fields)"
)


@segment_app.command("export", cls=OneLineErrors)
def export(
    name: Annotated[str, typer.Argument(help="The segment's name.")],
    channel: Annotated[
        str | None,
        typer.Option(
            help=f"Contact fields of the members who consented to it: "
            f"{', '.join(CHANNEL_PURPOSES)}."
        ),
    ] = None,
    purpose: Annotated[
        Purpose | None,
        typer.Option(help="analytics: ids and attributes, no contact fields (audited)."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="File format.")] = Format.CSV,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Write a segment's members to a file: for a channel, the members who consented to it
    with their contact fields; for analytics, ids, spend, RFM segment and churn risk only."""
    if channel is None and purpose is None:
        fail(_NEEDS, 2)  # contact fields never leave without a consent that covers them
    if channel is not None and purpose is not None:
        fail("give --channel or --purpose, not both", 2)
    if channel is not None and channel not in CHANNEL_PURPOSES:
        fail(f"--channel must be one of {', '.join(CHANNEL_PURPOSES)}, not {channel!r}", 2)
    consent = CHANNEL_PURPOSES[channel] if channel else ANALYTICS_PURPOSE
    contacts = channel is not None
    outcome = run(with_connection, _export, name, consent, contacts)
    if isinstance(outcome, str):
        fail(outcome)
    rows, members = outcome
    target = output or Path(f"{name.replace('/', '_')}.{fmt.value}")
    columns = _COLUMNS if contacts else [c for c in _COLUMNS if c not in _CONTACTS]
    records = [[r[c] for c in columns] for r in rows]
    if fmt is Format.CSV:
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(records)
    else:
        table = {c: [row[i] for row in records] for i, c in enumerate(columns)}
        table["total_spend"] = [float(v) for v in table["total_spend"]]
        pq.write_table(pa.table(table), target)
    left_out = members - len(rows)
    why = (
        f"; {left_out:,} without consent to {consent} left out" if contacts
        else f"; {left_out:,} who refused {consent} left out"
    )  # fmt: skip
    console.print(f"Wrote {len(rows):,} of {members:,} members of {name!r} to {target}{why}.")


def register(app: typer.Typer) -> None:
    """Add `cdm rfm` and `cdm segment` to the `cdm` app."""
    app.command("rfm", cls=OneLineErrors)(rfm)
    app.add_typer(segment_app, name="segment")
