"""Data-subject rights in the database: export everything about a person, or erase it.

Both take a connection and run in one transaction: the export in a read-only snapshot so
its parts agree, the erasure under a lock on the customer so nothing is written to the
person while their data goes (statements in ``sql/queries/gdpr.sql``; what each table
undergoes is decided in ``domain.erasure``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from domain.erasure import Erased
from domain.predictions import RiskBands
from sql.queries import query
from sql.segments import segments_of

FORMAT_VERSION = 1


def _plain(value: Any) -> Any:
    """A JSON-ready value (timestamps in ISO 8601 UTC, decimals as strings)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in r.items()} for r in records]


async def export_customer(
    conn: asyncpg.Connection, customer_id: int, bands: RiskBands
) -> dict[str, Any] | None:
    """Everything held about the customer ``customer_id`` names, or None if no one (segment
    membership judged with the churn ``bands``)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cid = await conn.fetchval(query("gdpr_find"), customer_id)
        if cid is None:
            return None
        merged = [r["merged_id"] for r in await conn.fetch(query("gdpr_merged_ids"), cid)]
        profile = await conn.fetchrow(query("gdpr_profile"), cid)
        erasure = await conn.fetchrow(query("gdpr_erasure"), cid)
        return {
            "format": f"cdm-customer-export/{FORMAT_VERSION}",
            "exportedAt": datetime.now(UTC).isoformat(),
            "customerId": cid,
            "mergedIds": merged,
            "profile": _rows([profile])[0],
            "identities": _rows(await conn.fetch(query("gdpr_identities"), cid)),
            "consents": _rows(await conn.fetch(query("gdpr_consents"), cid)),
            "purchases": _rows(await conn.fetch(query("gdpr_purchases"), cid)),
            "interactions": _rows(await conn.fetch(query("gdpr_interactions"), cid)),
            "storedScores": _rows(await conn.fetch(query("gdpr_scores"), cid)),
            "rfm": _rows(await conn.fetch(query("gdpr_rfm"), cid)),
            "segments": [
                {"id": s.id, "name": s.name}
                for s in await segments_of(conn, cid, datetime.now(UTC), bands)
            ],
            "merges": _rows(await conn.fetch(query("gdpr_merges"), cid, merged)),
            "auditEntries": _rows(await conn.fetch(query("gdpr_audit"), cid)),
            "erasure": _rows([erasure])[0] if erasure else None,
        }


async def erase_customer(
    conn: asyncpg.Connection, customer_id: int, actor: str, request_id: str | None
) -> Erased | str:
    """Erase the person ``customer_id`` names (see the module docstring), or say why not.

    Idempotent: a person erased before is a success again, carrying that first erasure's
    time and counts (``Erased.already``), so a retried or repeated request cannot fail.
    Runs in the caller's transaction when there is one (the API's mutations hold one, with
    their audit entry), else in its own.
    """
    async with conn.transaction():
        await conn.execute(query("gdpr_lock_identities"), customer_id)
        found = await conn.fetchrow(query("gdpr_resolve"), customer_id)
        if found is None:
            return f"no customer with id {customer_id}"
        cid = found["id"]
        if found["erased_at"] is not None:
            record = await conn.fetchrow(query("gdpr_erasure"), cid)
            removed = dict(record["removed"]) if record else {}
            at = record["erased_at"] if record else found["erased_at"]
            return Erased(cid, at, {k: int(v) for k, v in removed.items()}, already=True)
        merged = [r["merged_id"] for r in await conn.fetch(query("gdpr_merged_ids"), cid)]
        await conn.execute(query("gdpr_suppress"), cid)
        counts = await conn.fetchrow(query("gdpr_erase_rows"), cid, merged)
        await conn.execute(query("gdpr_erase_profile"), cid)
        removed = {k: int(v) for k, v in counts.items()}
        at = await conn.fetchval(query("gdpr_record_erasure"), cid, actor, request_id, removed)
        return Erased(cid, at, removed)
