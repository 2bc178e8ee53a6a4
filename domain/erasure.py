"""What erasure does to each table: the reviewed rules a completeness test holds the schema
to. Pure: no I/O.

A table's rows about the person are deleted, scrubbed (some columns emptied, the rest kept
as reviewed non-personal facts) or kept whole (reviewed: nothing personal in them). A test
fails when a table or a column of a scrubbed or kept table has no rule, so new personal data
cannot be added without deciding how it is erased.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Action(StrEnum):
    DELETE = "delete"  # the person's rows are removed
    SCRUB = "scrub"  # the person's rows stay; `cleared` columns are emptied
    KEEP = "keep"  # nothing personal: rows stay as they are


@dataclass(frozen=True, slots=True)
class TableRule:
    action: Action
    why: str
    cleared: frozenset[str] = frozenset()
    kept: frozenset[str] = frozenset()


def _cols(text: str) -> frozenset[str]:
    return frozenset(text.split())


ERASURE_RULES: dict[str, TableRule] = {
    "customers": TableRule(
        Action.SCRUB,
        "the row stays as a tombstone so de-identified purchases keep a customer",
        cleared=_cols("first_name last_name email phone birth_date field_sources search_text"),
        kept=_cols("id country created_at updated_at erased_at"),  # country: tax accounting
    ),
    "identities": TableRule(Action.DELETE, "identifiers of the person"),
    "interactions": TableRule(Action.DELETE, "behaviour and free text about the person"),
    "consents": TableRule(Action.DELETE, "decisions of the person"),
    "customer_scores": TableRule(Action.DELETE, "predictions about the person"),
    "customer_rfm": TableRule(Action.DELETE, "scores about the person"),
    "segments": TableRule(
        Action.KEEP,
        "definitions of groups, not people",
        kept=_cols("id name description definition created_by created_at updated_at"),
    ),
    "segment_sizes": TableRule(Action.KEEP, "counts", kept=_cols("segment_id at size")),
    "merges": TableRule(
        Action.SCRUB,
        "merge history stays countable; the values it kept are the person's",
        cleared=_cols("evidence plan before_images"),
        kept=_cols("id survivor_id merged_ids merged_by merged_at undone_at undone_by"),
    ),
    "purchases": TableRule(
        Action.KEEP,
        "transaction facts needed for accounting; no personal field",
        kept=_cols(
            "id customer_id product_id order_ref quantity unit_price amount currency channel "
            "purchased_at source external_id recorded_at"
        ),
    ),
    "customer_purchase_stats": TableRule(
        Action.KEEP,
        "totals derived from the kept purchases",
        kept=_cols(
            "customer_id purchase_count total_spend first_purchase_at last_purchase_at currencies"
        ),
    ),
    "customer_aliases": TableRule(
        Action.KEEP, "ids only", kept=_cols("merged_id customer_id merge_id")
    ),
    "audit_log": TableRule(
        Action.KEEP,
        "names people by id only; the trail must survive",
        kept=_cols("id at actor role kind operation customer_ids request_id details"),
    ),
    "erasures": TableRule(
        Action.KEEP,
        "the proof of erasure",
        kept=_cols("customer_id erased_at erased_by request_id removed"),
    ),
    "suppressed_identities": TableRule(
        Action.KEEP, "salted hashes that stop re-imports", kept=_cols("identity_hash erased_at")
    ),
    # Not about customers at all.
    "products": TableRule(
        Action.KEEP, "the catalogue", kept=_cols("id sku name category price currency created_at")
    ),
    "import_runs": TableRule(
        Action.KEEP,
        "counts of imports",
        kept=_cols(
            "id entity source files started_at finished_at status rows_read inserted "
            "updated unchanged rejected"
        ),
    ),
    "api_keys": TableRule(
        Action.KEEP,
        "the service's clients",
        kept=_cols("id name role prefix secret_hash created_at expires_at revoked_at"),
    ),
    "count_deltas": TableRule(
        Action.KEEP,
        "net changes of row counts (all customers, per country, products); an erasure is one",
        kept=_cols("id counter key delta"),
    ),
    "installation_secrets": TableRule(Action.KEEP, "the hash salt", kept=_cols("name value")),
    "schema_migrations": TableRule(
        Action.KEEP, "the schema's history", kept=_cols("version name checksum applied_at")
    ),
    # Views (migration 0011): they store nothing; an erased person leaves them by erasure.
    "profiling_refusals": TableRule(Action.KEEP, "a view over consents", kept=_cols("customer_id")),
    "modelled_customers": TableRule(
        Action.KEEP, "a view over customers: who models may process", kept=_cols("id created_at")
    ),
}


@dataclass(frozen=True, slots=True)
class Erased:
    """A person erased: the tombstone's id, when, and how many rows went per table.

    ``already``: they had been erased before (erasure is idempotent); ``erased_at`` and
    ``removed`` are then those of that first erasure.
    """

    customer_id: int
    erased_at: datetime
    removed: dict[str, int]
    already: bool = False


def suppressed_message(kind: str, erased_at: datetime) -> str:
    """Why a record naming an erased person's identity is refused, and what to do."""
    return (
        f"this {kind.replace('_', ' ')} belongs to a person whose data was erased on "
        f"{erased_at:%Y-%m-%d}; it is not imported again. If the person has come back as a "
        "new customer, create them with upsertCustomer(resumeErased: true)"
    )
