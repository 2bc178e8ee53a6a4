"""`cdm import`: files in, validated and standardised, written a chunk per transaction.

Every row read ends up counted once: inserted, updated, unchanged or rejected. Rejected rows
go to a rejects file with their line, field, reason and raw content; nothing is dropped
silently. Each chunk is one transaction and every write is an upsert on the record's natural
key, so importing a file twice changes nothing the second time, and an import killed half-way
and run again ends with exactly the data of one clean run.
"""

from __future__ import annotations

import asyncio
import csv
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import asyncpg
import orjson

from domain import records as rec
from domain.standardize import FieldError
from domain.survivorship import Policy
from ingestion.readers import (
    FileFormat,
    MappingError,
    Numbered,
    read_chunks,
    remap,
    source_columns,
)
from sql import imports
from sql.queries import query

# Tries at writing a chunk that collided with a concurrent writer (see write_chunk).
_ATTEMPTS = 3
ENTITIES = ("customers", "products", "purchases", "interactions", "consents")
_PARSERS: dict[str, Callable[[Mapping[str, Any], rec.ParseOptions], Any]] = {
    "customers": rec.parse_customer,
    "products": rec.parse_product,
    "purchases": rec.parse_purchase,
    "interactions": rec.parse_interaction,
    "consents": rec.parse_consent,
}


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to read, validate and write one import."""

    entity: str
    parse: rec.ParseOptions
    file_format: FileFormat = field(default_factory=FileFormat)
    mapping: Mapping[str, str] | None = None
    create_missing_customers: bool = False
    policy: Policy = field(default_factory=Policy)
    # Let records bring back identities of an erased person (they came back as a new customer).
    resume_erased: bool = False
    chunk_size: int = 10_000


@dataclass
class ImportSummary:
    """What an import did; `read == inserted + updated + unchanged + rejected` always."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    run_id: int | None = None

    @property
    def balanced(self) -> bool:
        """Whether every row read is accounted for."""
        return self.read == self.inserted + self.updated + self.unchanged + self.rejected


class _Rejects:
    """The rejects file: one row per refused input row."""

    def __init__(self, handle: TextIO | None) -> None:
        self.writer = csv.writer(handle) if handle else None
        if self.writer:
            self.writer.writerow(["file", "line", "field", "code", "reason", "raw"])

    def add(self, path: Path, line: int, error: FieldError, raw: Any) -> None:
        if self.writer:
            # A row as JSON; an unreadable line as the text found in the file.
            text = raw if isinstance(raw, str) else orjson.dumps(raw, default=str).decode()
            self.writer.writerow([path.name, line, error.field, error.code, error.message, text])


async def write_records(
    conn: asyncpg.Connection, options: ImportOptions, lines: Sequence[tuple[int, Any]]
) -> imports.WriteResult:
    """Write validated records of `options.entity` (the caller holds the transaction)."""
    if not lines:
        return imports.WriteResult()
    if options.entity == "customers":
        return await imports.write_customers(
            conn, lines, options.policy, resume_erased=options.resume_erased
        )
    if options.entity == "products":
        return await imports.write_products(conn, lines)
    writer = {
        "purchases": imports.write_purchases,
        "interactions": imports.write_interactions,
        "consents": imports.write_consents,
    }[options.entity]
    return await writer(conn, lines, create_missing_customers=options.create_missing_customers)


class _Undo(Exception):  # control flow only: never escapes write_chunk
    def __init__(self, result: imports.WriteResult) -> None:
        self.result = result


async def write_chunk(
    conn: asyncpg.Connection, options: ImportOptions, lines: Sequence[tuple[int, Any]], *,
    all_or_nothing: bool = False,
) -> tuple[imports.WriteResult, bool]:  # fmt: skip
    """Write validated records in a transaction of their own (a savepoint inside the
    caller's), and whether it was kept: with `all_or_nothing`, a line refused while writing
    (an unknown customer, say) rolls the whole chunk back.

    A concurrent writer can insert one of these keys after we looked (a unique violation) or
    lock rows in another order (a deadlock): the chunk is then run again, and finds those
    rows as existing, so identical concurrent writes all succeed with one row between them.
    """
    for attempt in range(_ATTEMPTS):
        try:
            async with conn.transaction():
                result = await write_records(conn, options, lines)
                if all_or_nothing and result.rejected:
                    raise _Undo(result)
                return result, True
        except _Undo as undo:
            return undo.result, False
        except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def parse_chunk(
    chunk: Sequence[Numbered], options: ImportOptions
) -> tuple[list[tuple[int, Any]], list[tuple[int, list[FieldError], Any]]]:
    """Validate a chunk: the good records by line, and the refused lines with every reason
    and their raw rows."""
    parse = _PARSERS[options.entity]
    good: list[tuple[int, Any]] = []
    bad: list[tuple[int, list[FieldError], Any]] = []
    mapping = options.mapping or {}
    for line, raw, problem in chunk:
        if raw is None:
            reason, text = (problem.reason, problem.text) if problem else ("unreadable", "")
            bad.append((line, [FieldError("row", "unreadable", reason)], text))
            continue
        try:
            good.append((line, parse(remap(raw, mapping), options.parse)))
        except rec.Rejected as rejected:
            bad.append((line, rejected.errors, raw))
    return good, bad


def check_mapping(paths: Sequence[Path], options: ImportOptions) -> None:
    """Refuse (`MappingError`) a mapping to a field the entity does not have, or from a column
    a file lacks (files with fixed columns: CSV and Parquet; JSON Lines objects vary)."""
    mapping = options.mapping or {}
    targets = rec.TARGETS[options.entity]
    unknown = sorted(set(mapping) - set(targets))
    if unknown:
        raise MappingError(
            f"--map: {', '.join(unknown)} is not a field of {options.entity}; "
            f"valid targets: {', '.join(targets)}"
        )
    for path in paths:
        columns = source_columns(path, options.file_format)
        if columns is None:
            continue
        missing = [source for source in dict.fromkeys(mapping.values()) if source not in columns]
        if missing:
            raise MappingError(
                f"--map: {path.name} has no column {', '.join(map(repr, missing))}; "
                f"its columns: {', '.join(map(repr, columns))}"
            )


async def _import_file(
    conns: Sequence[asyncpg.Connection], path: Path, options: ImportOptions,
    summary: ImportSummary, sink: _Rejects, progress: Callable[[int], None] | None,
) -> None:  # fmt: skip
    chunks = read_chunks(path, options.file_format, options.chunk_size)
    reading = threading.Lock()  # one reader of the file at a time

    def read_and_parse() -> tuple[list[Numbered], list, list] | None:
        with reading:
            chunk = next(chunks, None)
        return None if chunk is None else (chunk, *parse_chunk(chunk, options))

    async def writer(conn: asyncpg.Connection) -> None:
        # The next chunk is read and validated in a thread while the database writes this
        # one: the event loop mostly waits on PostgreSQL meanwhile, so the two overlap.
        pending = asyncio.ensure_future(asyncio.to_thread(read_and_parse))
        try:
            while (item := await pending) is not None:
                pending = asyncio.ensure_future(asyncio.to_thread(read_and_parse))
                chunk, good, bad = item
                result, _ = await write_chunk(conn, options, good)
                _account(summary, sink, path, chunk, bad, result)
                if progress is not None:
                    progress(summary.read)
        finally:
            if not pending.done():
                pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)

    if len(conns) == 1:
        await writer(conns[0])
        return
    # Several connections write chunks side by side, so PostgreSQL uses more than one core.
    try:
        async with asyncio.TaskGroup() as group:
            for conn in conns:
                group.create_task(writer(conn))
    except BaseExceptionGroup as failures:  # the first failure is the one to report
        raise failures.exceptions[0] from None


def _account(
    summary: ImportSummary, sink: _Rejects, path: Path, chunk: list[Numbered],
    bad: list[tuple[int, list[FieldError], Any]], result: imports.WriteResult,
) -> None:  # fmt: skip
    summary.read += len(chunk)
    summary.inserted += result.inserted
    summary.updated += result.updated
    summary.unchanged += result.unchanged
    summary.rejected += len(bad) + len(result.rejected)
    raw_by_line = {line: raw for line, raw, _ in chunk}
    refused = [*bad, *((line, [error], raw_by_line.get(line)) for line, error in
                       result.rejected.items())]  # fmt: skip
    for line, errors, raw in sorted(refused, key=lambda item: item[0]):  # in file order
        for error in errors:
            sink.add(path, line, error, raw)


async def import_files(
    conn: asyncpg.Connection,
    paths: Sequence[Path],
    options: ImportOptions,
    *,
    rejects: TextIO | None = None,
    progress: Callable[[int], None] | None = None,
    extra_connections: Sequence[asyncpg.Connection] = (),
) -> ImportSummary:
    """Import `paths` (all of one entity); see the module docstring for the guarantees.

    With `extra_connections`, chunks are written over those too, side by side.
    """
    if options.entity not in ENTITIES:
        raise ValueError(f"unknown entity {options.entity!r}; one of {', '.join(ENTITIES)}")
    check_mapping(paths, options)
    summary = ImportSummary()
    summary.run_id = await conn.fetchval(
        query("import_run_start"), options.entity, options.parse.source, [str(p) for p in paths]
    )
    sink = _Rejects(rejects)
    status = "failed"
    try:
        for path in paths:
            await _import_file([conn, *extra_connections], path, options, summary, sink, progress)
        status = "succeeded"
    finally:
        await conn.execute(
            query("import_run_finish"), summary.run_id, status, summary.read, summary.inserted,
            summary.updated, summary.unchanged, summary.rejected,
        )  # fmt: skip
    return summary
