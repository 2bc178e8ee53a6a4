"""Identity resolution on PostgreSQL: duplicate candidates, merges and their exact undo.

The rules live in the domain (`domain.matching` scores pairs, `domain.merging` plans merges
and decides whether an undo is exact); this module fetches what they need and carries out
their decisions, each merge or undo in one transaction. Before-images never pass through
Python: they are copied from row to ``merges.before_images`` and back inside PostgreSQL, so
every value (numerics, JSON properties, timestamps) comes back exactly as it was.

Functions take a pool (a connection is acquired) or a connection (the CLI's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from domain.customers import Customer
from domain.matching import (
    MAX_BLOCK_SIZE,
    MAX_NAME_BLOCK_SIZE,
    NEIGHBOUR_SIMILARITY,
    TEXT_SIMILARITY,
    Candidate,
    pair_budget,
    rank_candidates,
)
from domain.merging import (
    Conflicted,
    Duplicate,
    Merged,
    MergePlan,
    MergeRequest,
    Profile,
    Refused,
    RowCounts,
    Unmerged,
    UnmergeState,
    check_exists,
    plan_merge,
    unmerge_conflict,
)
from domain.standardize import FieldError
from domain.survivorship import PROFILE_FIELDS, Policy
from sql.database import Target
from sql.queries import query


@asynccontextmanager
async def _connection(target: Target) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            yield conn
    else:
        yield target


def _customer(r: asyncpg.Record) -> Customer:
    return Customer(
        r["id"], r["first_name"], r["last_name"], r["email"], r["phone"], r["country"],
        r["birth_date"], r["created_at"], r["updated_at"],
    )  # fmt: skip


async def duplicate_candidates(
    target: Target, *, first: int, min_score: float, customer_id: int | None = None
) -> list[Candidate]:
    """The `first` likeliest duplicate pairs scoring at least `min_score`, best first.

    With `customer_id`, only pairs of that customer (a merged id stands for its survivor),
    the customer as ``a``. Pairs are proposed by blocking in SQL, at most
    `domain.matching.pair_budget(first)` of them, and scored here.
    """
    budget = pair_budget(first)
    async with _connection(target) as conn, conn.transaction(readonly=True):
        if customer_id is None:
            pairs = await conn.fetch(
                query("dedupe_pairs"), MAX_BLOCK_SIZE, MAX_NAME_BLOCK_SIZE, budget,
                NEIGHBOUR_SIMILARITY,
            )  # fmt: skip
        else:
            await conn.execute(query("dedupe_text_similarity"), str(TEXT_SIMILARITY))
            pairs = await conn.fetch(query("dedupe_pairs_for_customer"), customer_id, budget)
        if not pairs:
            return []
        ids = sorted({r["a_id"] for r in pairs} | {r["b_id"] for r in pairs})
        rows = await conn.fetch(query("customers_by_ids"), ids)
    customers = {r["id"]: _customer(r) for r in rows}
    return rank_candidates(
        (
            (customers[r["a_id"]], customers[r["b_id"]], r["keys"])
            for r in pairs
            if r["a_id"] in customers and r["b_id"] in customers
        ),
        min_score,
        first,
    )


def _counts(r: asyncpg.Record) -> RowCounts:
    return RowCounts(r["purchases"], r["interactions"], r["identities"], r["consents"])


async def merge_customers(
    target: Target, request: MergeRequest, policy: Policy, actor: str, *, dry_run: bool = False
) -> MergePlan | Merged | Refused:
    """Plan folding ``request.merged_ids`` into the survivor and, unless `dry_run`, do it.

    Everything happens in one transaction, under row locks on every customer involved, so the
    plan returned is exactly what was carried out.
    """
    async with _connection(target) as conn, conn.transaction():
        rows = await conn.fetch(query("merge_lock_customers"), request.all_ids)
        aliases = await conn.fetch(query("merge_aliases_of"), request.all_ids)
        errors = check_exists(
            request,
            {r["id"] for r in rows},
            {a["merged_id"]: (a["customer_id"], a["merge_id"]) for a in aliases},
        )
        if errors:
            return Refused(tuple(errors))
        profiles = {r["id"]: Profile.from_row(r) for r in rows}
        merged = request.merged_ids
        totals = await conn.fetch(query("merge_row_totals"), list(merged))
        duplicates = [
            Duplicate(d["tbl"], d["key"], d["kept_customer_id"], d["kept_id"],
                      d["dropped_customer_id"], d["dropped_id"])
            for d in await conn.fetch(query("merge_duplicates"), request.all_ids)
        ]  # fmt: skip
        plan = plan_merge(
            profiles[request.survivor_id],
            [profiles[pk] for pk in merged],
            {t["customer_id"]: _counts(t) for t in totals},
            {t["customer_id"]: t["aliases"] for t in totals},
            duplicates,
            policy,
        )
        if dry_run:
            return plan

        survivor = request.survivor_id
        merge_id = await conn.fetchval(
            query("merge_record"), survivor, list(merged), plan.evidence_json(), plan.to_json(),
            actor,
        )  # fmt: skip
        await conn.fetchval(
            query("merge_drop_duplicates"), merge_id,
            [d.table for d in duplicates], [d.dropped_customer_id for d in duplicates],
            [d.dropped_id for d in duplicates],
        )  # fmt: skip
        await conn.fetchrow(query("merge_move_rows"), merge_id, survivor, list(merged))
        values = plan.values()
        await conn.execute(
            query("merge_update_survivor"), merge_id, survivor,
            *(values[f] for f in PROFILE_FIELDS), plan.field_sources(), plan.created_at,
        )  # fmt: skip
        await conn.execute(query("merge_finish"), merge_id, survivor, list(merged))
        return Merged(merge_id, plan)


async def unmerge_customers(
    target: Target, merge_id: int, actor: str
) -> Unmerged | Refused | Conflicted:
    """Undo merge `merge_id` exactly, in one transaction, or say why that is impossible."""
    async with _connection(target) as conn, conn.transaction():
        merge = await conn.fetchrow(query("unmerge_lock"), merge_id)
        if merge is None:
            return Refused(
                (FieldError("mergeId", "unknown_merge", f"no merge with id {merge_id}"),)
            )
        if merge["erased"]:
            return Conflicted(
                "erased", "the person this merge concerns was erased; it cannot be undone"
            )
        survivor = merge["survivor_id"]
        await conn.fetch(query("unmerge_lock_survivor"), survivor)
        found = await conn.fetchrow(query("unmerge_state"), merge_id)
        state = UnmergeState(
            merge_id, survivor, tuple(merge["merged_ids"]), merge["undone_at"],
            found["later_merge_id"], found["survivor_exists"], found["survivor_unchanged"],
            tuple(found["ids_taken"]), found["rows_missing"],
        )  # fmt: skip
        conflict = unmerge_conflict(state)
        if conflict is not None:
            return conflict
        restored = await conn.fetch(query("unmerge_restore_customers"), merge_id)
        await conn.fetchrow(query("unmerge_move_back"), merge_id)
        await conn.fetchval(query("unmerge_restore_dropped"), merge_id)
        await conn.execute(query("unmerge_restore_survivor"), merge_id)
        await conn.execute(query("unmerge_mark"), merge_id, actor)
        return Unmerged(merge_id, survivor, tuple(sorted(r["id"] for r in restored)))
