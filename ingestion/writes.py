"""Writes from the API: a batch of records validated and written like an import chunk.

A batch is all-or-nothing by default: one bad item (invalid, or naming an unknown customer
or product) and nothing is written; every item's problems come back. With `partial`, the
good items are written and each bad one gets its reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from domain.standardize import FieldError
from ingestion.importer import ImportOptions, parse_chunk, write_chunk

MAX_BATCH = 1000


@dataclass
class BatchOutcome:
    """What a batch write did; `errors` by item index."""

    written: bool
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: dict[int, list[FieldError]] = field(default_factory=dict)
    customer_ids: dict[int, int] = field(default_factory=dict)


async def write_batch(
    conn: asyncpg.Connection, options: ImportOptions, items: Sequence[Mapping[str, Any]], *,
    partial: bool = False,
) -> BatchOutcome:  # fmt: skip
    """Validate and write `items` (see the module docstring) on ``conn``.

    The batch gets its own transaction, or a savepoint when the caller holds one (the API's
    mutations do: their audit entry commits with the batch); a collision with a concurrent
    writer runs it again (`write_chunk`), so a race is never an error.
    """
    if not items:
        return BatchOutcome(written=False, errors={0: [FieldError("items", "empty", "no items")]})
    if len(items) > MAX_BATCH:
        problem = FieldError("items", "too_many", f"at most {MAX_BATCH} items per call")
        return BatchOutcome(written=False, errors={0: [problem]})
    good, bad = parse_chunk([(i, dict(item), None) for i, item in enumerate(items)], options)
    errors = {index: problems for index, problems, _ in bad}
    if errors and not partial:
        return BatchOutcome(written=False, errors=errors)
    result, kept = await write_chunk(conn, options, good, all_or_nothing=not partial)
    for index, problem in result.rejected.items():
        errors.setdefault(index, []).append(problem)
    if not kept:
        return BatchOutcome(written=False, errors=errors)
    return BatchOutcome(
        written=True, inserted=result.inserted, updated=result.updated,
        unchanged=result.unchanged, errors=errors, customer_ids=result.customer_ids,
    )  # fmt: skip
