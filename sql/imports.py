"""Writing validated records, set-based: COPY into staging tables, then a few statements.

Shared by bulk import (one call per chunk) and the write API (one call per request). The
caller owns the transaction: a chunk or a request is written entirely or not at all.
Every function returns what happened per input line: counts, and the lines refused at this
stage (an unknown customer or product, a line superseded by a later one for the same key).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from domain.erasure import suppressed_message
from domain.records import (
    ConsentRecord,
    CustomerRecord,
    CustomerRef,
    InteractionRecord,
    ProductRecord,
    PurchaseRecord,
)
from domain.standardize import FieldError
from domain.survivorship import PROFILE_FIELDS, FieldSource, Policy, merge_profile
from sql.queries import query


@dataclass
class WriteResult:
    """What one write did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: dict[int, FieldError] = field(default_factory=dict)
    # The customer each accepted line was matched to or created as (belongs to).
    customer_ids: dict[int, int] = field(default_factory=dict)


async def _stage_refs(
    conn: asyncpg.Connection,
    refs: Sequence[tuple[int, CustomerRef, datetime]],
    create_missing: bool,
    result: WriteResult,
) -> None:
    """Resolve each line's customer; refuse lines whose customer cannot be found."""
    await conn.execute(query("stage_refs_create"))
    await conn.copy_records_to_table(
        "stage_refs",
        records=[(line, r.customer_id, r.source, r.external_id, at) for line, r, at in refs],
        columns=["line", "customer_id", "customer_source", "customer_ref", "seen_at"],
    )
    if create_missing:
        await conn.execute(query("stage_refs_lock_external_ids"))
    await conn.execute(query("stage_refs_by_external_id"))
    await conn.execute(query("stage_refs_follow_aliases"))
    await conn.execute(query("stage_refs_live"))
    if create_missing:
        await conn.execute(query("stage_refs_create_missing"))
    for row in await conn.fetch(query("stage_refs_resolved")):
        if row["customer_id"] is None:
            result.rejected[row["line"]] = FieldError(row["field"], row["code"], row["message"])
        else:
            result.customer_ids[row["line"]] = row["customer_id"]


async def _drop_problems(conn: asyncpg.Connection, entity: str, result: WriteResult) -> None:
    rows = await conn.fetch(query(f"stage_{entity}_problems"))
    for row in rows:
        result.rejected.setdefault(
            row["line"], FieldError(row["field"], row["code"], row["message"])
        )
    if result.rejected:
        await conn.execute(query(f"stage_{entity}_drop"), list(result.rejected))


async def _update_then_insert(
    conn: asyncpg.Connection, entity: str, total: int, result: WriteResult
) -> None:
    updated = await conn.fetchval(query(f"stage_{entity}_update"))
    existing = await conn.fetchval(query(f"stage_{entity}_take_existing"))
    inserted = await conn.fetchval(query(f"stage_{entity}_insert"))
    result.inserted += inserted
    result.updated += updated
    result.unchanged += existing - updated
    assert inserted + existing == total - len(result.rejected)


async def _upsert(conn: asyncpg.Connection, entity: str, total: int, result: WriteResult) -> None:
    row = await conn.fetchrow(query(f"stage_{entity}_upsert"))
    result.inserted += row["inserted"]
    result.updated += row["updated"]
    result.unchanged += total - len(result.rejected) - row["inserted"] - row["updated"]


@dataclass(frozen=True, slots=True)
class _Owned:
    """How one customer-owned entity is staged: its columns and a record's values."""

    entity: str
    columns: tuple[str, ...]
    values: Callable[[Any], tuple[object, ...]]
    seen_at: Callable[[Any], datetime]  # when a record's event happened
    # Purchases and interactions update what changed; consent history is only appended to.
    updates: bool = True


_PURCHASES = _Owned(
    "purchases",
    ("source", "external_id", "product_sku", "order_ref", "quantity", "unit_price", "amount",
     "currency", "channel", "purchased_at"),
    lambda r: (r.source, r.external_id, r.product_sku, r.order_ref, r.quantity, r.unit_price,
               r.amount, r.currency, r.channel, r.purchased_at),
    lambda r: r.purchased_at,
)  # fmt: skip
_INTERACTIONS = _Owned(
    "interactions",
    ("source", "external_id", "occurred_at", "channel", "kind", "properties"),
    # JSON text: binary COPY cannot take the connection's jsonb codec.
    lambda r: (r.source, r.external_id, r.occurred_at, r.channel, r.kind,
               orjson.dumps(r.properties).decode()),
    lambda r: r.occurred_at,
)  # fmt: skip
_CONSENTS = _Owned(
    "consents",
    ("source", "purpose", "granted", "recorded_at"),
    lambda r: (r.source, r.purpose, r.granted, r.recorded_at),
    lambda r: r.recorded_at,
    updates=False,
)


async def _write_owned(
    conn: asyncpg.Connection, kind: _Owned, lines: Sequence[tuple[int, Any]],
    create_missing_customers: bool,
) -> WriteResult:  # fmt: skip
    result = WriteResult()
    refs = [(n, r.customer, kind.seen_at(r)) for n, r in lines]
    await _stage_refs(conn, refs, create_missing_customers, result)
    await conn.execute(query(f"stage_{kind.entity}_create"))
    await conn.copy_records_to_table(
        f"stage_{kind.entity}",
        records=[(n, *kind.values(r)) for n, r in lines if n not in result.rejected],
        columns=["line", *kind.columns],
    )
    await _drop_problems(conn, kind.entity, result)
    if kind.updates:
        await _update_then_insert(conn, kind.entity, len(lines), result)
    else:
        await _upsert(conn, kind.entity, len(lines), result)
    await conn.execute(query("stage_refs_backdate_customers"), list(result.rejected))
    return result


async def write_purchases(
    conn: asyncpg.Connection, lines: Sequence[tuple[int, PurchaseRecord]], *,
    create_missing_customers: bool = False,
) -> WriteResult:  # fmt: skip
    """Upsert purchase lines by (customer, source, external id)."""
    return await _write_owned(conn, _PURCHASES, lines, create_missing_customers)


async def write_interactions(
    conn: asyncpg.Connection, lines: Sequence[tuple[int, InteractionRecord]], *,
    create_missing_customers: bool = False,
) -> WriteResult:  # fmt: skip
    """Upsert interactions by (customer, source, external id)."""
    return await _write_owned(conn, _INTERACTIONS, lines, create_missing_customers)


async def write_consents(
    conn: asyncpg.Connection, lines: Sequence[tuple[int, ConsentRecord]], *,
    create_missing_customers: bool = False,
) -> WriteResult:  # fmt: skip
    """Append consent decisions not recorded yet."""
    return await _write_owned(conn, _CONSENTS, lines, create_missing_customers)


async def write_products(
    conn: asyncpg.Connection, lines: Sequence[tuple[int, ProductRecord]]
) -> WriteResult:
    """Upsert products by SKU."""
    result = WriteResult()
    await conn.execute(query("stage_products_create"))
    await conn.copy_records_to_table(
        "stage_products",
        records=[(n, r.sku, r.name, r.category, r.price, r.currency) for n, r in lines],
        columns=["line", "sku", "name", "category", "price", "currency"],
    )
    await _drop_problems(conn, "products", result)
    await _upsert(conn, "products", len(lines), result)
    return result


class _Clusters:
    """Union-find over the lines of a chunk: lines sharing any identity are one person."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, line: int) -> int:
        root = self.parent.setdefault(line, line)
        while root != self.parent[root]:
            root = self.parent[root]
        self.parent[line] = root
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _keys(record: CustomerRecord) -> list[tuple[str, str]]:
    keys = []
    if record.external_id:
        keys.append(("x", record.external_id))
    if record.email:
        keys.append(("e", record.email))
    if record.phone:
        keys.append(("p", record.phone))
    return keys


_KIND_NAMES = {"x": "external_id", "e": "email", "p": "phone"}


async def _lock_identities(
    conn: asyncpg.Connection, lines: Sequence[tuple[int, CustomerRecord]]
) -> None:
    """Lock every identity the records bring until commit (migration 0009), so a concurrent
    writer bringing one of them waits, then finds the customer this one matched or made."""
    keys = sorted({(_KIND_NAMES[kind], r.source, v) for _, r in lines for kind, v in _keys(r)})
    await conn.execute(
        query("lock_identity_keys"), [k for k, _, _ in keys], [s for _, s, _ in keys],
        [v for _, _, v in keys],
    )  # fmt: skip


async def _without_erased(
    conn: asyncpg.Connection, lines: Sequence[tuple[int, CustomerRecord]], result: WriteResult,
    resume_erased: bool,
) -> Sequence[tuple[int, CustomerRecord]]:  # fmt: skip
    """The lines that bring no identity of an erased person (the others are refused), or,
    with ``resume_erased``, all of them, their identities no longer suppressed."""
    if not await conn.fetchval(query("gdpr_suppressed_any")):
        return lines
    source = lines[0][1].source
    keys = [(_KIND_NAMES[kind], value) for _, record in lines for kind, value in _keys(record)]
    kinds, values = [k for k, _ in keys], [v for _, v in keys]
    if resume_erased:
        await conn.execute(query("gdpr_unsuppress"), source, kinds, values)
        return lines
    rows = await conn.fetch(query("gdpr_suppressed_keys"), source, kinds, values)
    erased = {(r["kind"], r["value"]): r["erased_at"] for r in rows}
    kept = []
    for line, record in lines:
        hit = next(
            ((_KIND_NAMES[k], v) for k, v in _keys(record) if (_KIND_NAMES[k], v) in erased),
            None,
        )
        if hit is None:
            kept.append((line, record))
        else:
            message = suppressed_message(hit[0], erased[hit])
            result.rejected[line] = FieldError(hit[0], "erased_person", message)
    return kept


async def write_customers(
    conn: asyncpg.Connection, lines: Sequence[tuple[int, CustomerRecord]], policy: Policy,
    *, resume_erased: bool = False,
) -> WriteResult:  # fmt: skip
    """Match each record to a customer by a shared identity, or create one; apply the
    survivorship policy field by field; record the identities each record brings.

    Matching: an external id of the record's source first, then e-mail, then phone. Lines of
    the chunk that share any identity are the same person, applied oldest observation first.
    """
    result = WriteResult()
    if not lines:
        return result
    await _lock_identities(conn, lines)
    lines = await _without_erased(conn, lines, result, resume_erased)
    if not lines:
        return result
    records = dict(lines)
    clusters = _Clusters()
    owner: dict[tuple[str, str], int] = {}
    for line, record in lines:
        clusters.find(line)
        for key in _keys(record):
            if key in owner:
                clusters.union(line, owner[key])
            else:
                owner[key] = line
    groups: dict[int, list[int]] = {}
    for line, _ in lines:
        groups.setdefault(clusters.find(line), []).append(line)

    source = lines[0][1].source
    wanted = {k: sorted({v for (kind, v) in owner if kind == k}) for k in "xep"}
    matches: dict[tuple[str, str], int] = {}
    for row in await conn.fetch(
        query("customer_matches"), source, wanted["x"], wanted["e"], wanted["p"]
    ):
        matches.setdefault((row["kind"], row["value"]), row["customer_id"])

    cluster_customer: dict[int, int | None] = {}
    for root, members in groups.items():
        keys = [k for m in members for k in _keys(records[m])]
        found = None
        for kind in "xep":  # priority: external id, e-mail, phone
            found = next((matches[k] for k in keys if k[0] == kind and k in matches), None)
            if found is not None:
                break
        cluster_customer[root] = found

    existing_ids = sorted({c for c in cluster_customer.values() if c is not None})
    profiles: dict[int, dict[str, Any]] = {}
    for row in await conn.fetch(query("customer_profiles_for_update"), existing_ids):
        profiles[row["id"]] = dict(row)
    new_roots = [root for root, c in cluster_customer.items() if c is None]
    new_ids = [r["id"] for r in await conn.fetch(query("customer_ids_allocate"), len(new_roots))]
    for root, new_id in zip(new_roots, new_ids, strict=True):
        cluster_customer[root] = new_id

    staged, identities = [], []
    for root, members in groups.items():
        customer_id = cluster_customer[root]
        assert customer_id is not None
        is_new = customer_id not in profiles
        current = {f: None for f in PROFILE_FIELDS} if is_new else {
            f: profiles[customer_id][f] for f in PROFILE_FIELDS
        }  # fmt: skip
        raw_sources = {} if is_new else profiles[customer_id]["field_sources"]
        origins = {f: FieldSource.from_json(v) for f, v in raw_sources.items()}
        changed_any = False
        # A created_at from the source only ever moves a customer's earlier (None: now).
        created = None if is_new else profiles[customer_id]["created_at"]
        for position, line in enumerate(sorted(members, key=lambda m: (records[m].observed_at, m))):
            record = records[line]
            decisions = merge_profile(
                current, origins, record.profile(), FieldSource(record.source, record.observed_at),
                policy,
            )  # fmt: skip
            changed = [d for d in decisions if d.changed]
            for d in changed:
                current[d.field] = d.value
                if d.origin is not None:
                    origins[d.field] = d.origin
            earlier = record.created_at is not None and (
                created is None or record.created_at < created
            )
            if earlier:
                created = record.created_at
            if is_new and position == 0:
                result.inserted += 1
            elif changed or earlier:
                result.updated += 1
            else:
                result.unchanged += 1
            changed_any = changed_any or bool(changed) or earlier
            result.customer_ids[line] = customer_id
            for kind, value in _keys(record):
                identities.append((customer_id, _KIND_NAMES[kind], record.source, value))
        if is_new or changed_any:
            sources = orjson.dumps({f: o.to_json() for f, o in origins.items()}).decode()
            staged.append((
                customer_id, is_new, current["first_name"], current["last_name"],
                current["email"], current["phone"], current["country"], current["birth_date"],
                sources, max(records[m].observed_at for m in members), created,
            ))  # fmt: skip

    await conn.execute(query("stage_customers_create"))
    await conn.copy_records_to_table(
        "stage_customers", records=staged,
        columns=["id", "is_new", "first_name", "last_name", "email", "phone", "country",
                 "birth_date", "field_sources", "observed_at", "created_at"],
    )  # fmt: skip
    await conn.execute(query("stage_customers_insert"))
    await conn.execute(query("stage_customers_update"))
    await conn.execute(query("stage_identities_create"))
    await conn.copy_records_to_table(
        "stage_identities", records=identities,
        columns=["customer_id", "kind", "source", "value"],
    )  # fmt: skip
    await conn.execute(query("stage_identities_insert"))
    return result
