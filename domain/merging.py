"""Merging duplicate customers into one: the request's checks, the plan, and undo's checks.

A merge keeps one customer, the *survivor*, and folds the *merged* customers into it:

- **Profile fields.** Each field of `PROFILE_FIELDS` is decided by `domain.survivorship.decide`
  under the configured policy: the survivor's value first, then each merged customer's in the
  order the request lists them (the order matters only under ``non_empty``). A value's
  provenance is the one recorded in ``field_sources``; a value without one competes as
  observed by ``(unrecorded)`` at its customer's ``updated_at`` (the latest it can have been
  seen), so it ranks below every listed source under ``most_trusted``. Such a stand-in is
  never stored: a field won by an unrecorded value has no ``field_sources`` entry afterwards.
  When a value equals the current one, a recorded provenance replaces a stand-in. When two
  values are equally recent (and, under ``most_trusted``, equally trusted), the one listed
  first stays: the survivor's before any merged customer's.
  ``created_at`` becomes the earliest of all (the person has been a customer since then).
- **Rows.** Purchases, interactions, identities and consents move to the survivor, and aliases
  that pointed at a merged customer point at the survivor (so alias chains never form). Rows
  that would break a per-customer unique key after the move, a purchase or interaction with
  the same (source, external id) or a consent with the same (purpose, source, recorded at),
  are kept once: the survivor's copy, else the copy of the customer listed first. The other
  copies are dropped and remembered in full, so an undo restores them. Identities are unique
  across customers already and never collide.

The plan is computed from a consistent, locked view of the rows (``sql/identity.py``) and is
what the merge then does; a dry run returns it without writing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from domain.customers import Customer
from domain.errors import InvalidId
from domain.ids import parse_id
from domain.matching import Comparison, compare
from domain.standardize import FieldError
from domain.survivorship import PROFILE_FIELDS, FieldSource, Policy, Rule, decide

# Stand-in source of a value whose provenance was never recorded.
UNRECORDED = "(unrecorded)"
# Most customers one request may merge into a survivor.
MAX_MERGED = 50
# Below this match score a merge is allowed but warned about.
LOW_SCORE = 0.5
TABLES = ("purchases", "interactions", "identities", "consents")


@dataclass(frozen=True, slots=True)
class Profile:
    """A customer as merging sees it: profile values, their provenance, and timestamps."""

    id: int
    values: Mapping[str, Any]
    origins: Mapping[str, FieldSource]
    created_at: datetime
    updated_at: datetime
    # The stored ``field_sources`` as is (entries for other fields are carried over).
    raw_sources: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Profile:
        """From a ``customers`` row (profile columns, field_sources, created/updated at)."""
        raw = dict(row.get("field_sources") or {})
        origins: dict[str, FieldSource] = {}
        for name, entry in raw.items():
            try:
                origins[name] = FieldSource.from_json(entry)
            except (KeyError, TypeError, ValueError):
                continue  # an unreadable entry counts as unrecorded
        return cls(
            int(row["id"]), {f: row[f] for f in PROFILE_FIELDS}, origins,
            row["created_at"], row["updated_at"], raw,
        )  # fmt: skip

    def customer(self) -> Customer:
        """The domain customer (for matching)."""
        v = self.values
        return Customer(
            self.id, v["first_name"], v["last_name"], v["email"], v["phone"], v["country"],
            v["birth_date"], self.created_at, self.updated_at,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RowCounts:
    """Rows per table."""

    purchases: int = 0
    interactions: int = 0
    identities: int = 0
    consents: int = 0

    def minus(self, other: RowCounts) -> RowCounts:
        """Table by table difference."""
        return RowCounts(*(getattr(self, t) - getattr(other, t) for t in TABLES))

    def to_json(self) -> dict[str, int]:
        """As recorded in the merge's plan."""
        return {t: getattr(self, t) for t in TABLES}


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A row of a merged customer dropped because its key is kept in another copy."""

    table: str
    key: str
    kept_customer_id: int
    kept_id: int
    dropped_customer_id: int
    dropped_id: int

    def to_json(self) -> dict[str, Any]:
        """As recorded in the merge's plan."""
        return {
            "table": self.table, "key": self.key, "keptCustomerId": self.kept_customer_id,
            "keptId": self.kept_id, "droppedCustomerId": self.dropped_customer_id,
            "droppedId": self.dropped_id,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Moves:
    """What happens to one merged customer's rows."""

    customer_id: int
    moved: RowCounts
    dropped: RowCounts
    aliases: int

    def to_json(self) -> dict[str, Any]:
        """As recorded in the merge's plan."""
        return {"customerId": self.customer_id, "moved": self.moved.to_json(),
                "dropped": self.dropped.to_json(), "aliases": self.aliases}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FieldValue:
    """One customer's value of a field, with its recorded provenance."""

    customer_id: int
    value: Any
    origin: FieldSource | None


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """The value a profile field keeps, whose it is, and why."""

    field: str
    value: Any
    customer_id: int | None  # whose value it is (None: nobody has one)
    origin: FieldSource | None  # recorded provenance (None: not recorded)
    changed: bool  # differs from the survivor's value
    reason: str
    candidates: tuple[FieldValue, ...]

    def to_json(self) -> dict[str, Any]:
        """As recorded in the merge's plan."""
        return {
            "field": self.field, "value": _json_value(self.value), "customerId": self.customer_id,
            "origin": self.origin.to_json() if self.origin else None, "changed": self.changed,
            "reason": self.reason,
            "candidates": [
                {"customerId": c.customer_id, "value": _json_value(c.value),
                 "origin": c.origin.to_json() if c.origin else None}
                for c in self.candidates
            ],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class MergePlan:
    """Everything a merge will do, decided before anything is written."""

    survivor_id: int
    merged_ids: tuple[int, ...]
    fields: tuple[FieldPlan, ...]
    created_at: datetime
    moves: tuple[Moves, ...]
    duplicates: tuple[Duplicate, ...]
    evidence: tuple[Comparison, ...]
    warnings: tuple[str, ...]
    survivor_sources: Mapping[str, Any]

    def values(self) -> dict[str, Any]:
        """The survivor's profile after the merge."""
        return {f.field: f.value for f in self.fields}

    def field_sources(self) -> dict[str, Any]:
        """The survivor's ``field_sources`` after the merge."""
        sources = {k: v for k, v in self.survivor_sources.items() if k not in PROFILE_FIELDS}
        for f in self.fields:
            if f.origin is not None:
                sources[f.field] = f.origin.to_json()
        return sources

    def to_json(self) -> dict[str, Any]:
        """The plan as recorded in ``merges.plan``."""
        return {
            "survivorId": self.survivor_id,
            "mergedIds": list(self.merged_ids),
            "fields": [f.to_json() for f in self.fields],
            "createdAt": self.created_at.isoformat(),
            "moves": [m.to_json() for m in self.moves],
            "duplicates": [d.to_json() for d in self.duplicates],
            "warnings": list(self.warnings),
        }

    def evidence_json(self) -> list[dict[str, Any]]:
        """The match evidence as recorded in ``merges.evidence``."""
        return [comparison_json(c) for c in self.evidence]


def comparison_json(c: Comparison) -> dict[str, Any]:
    """A comparison as JSON (merge records, ``cdm dedupe --json``)."""
    return {
        "aId": c.a_id, "bId": c.b_id, "score": c.score, "veto": c.veto,
        "evidence": [
            {"field": e.field, "aValue": e.a_value, "bValue": e.b_value,
             "similarity": e.similarity, "kind": e.kind.value}
            for e in c.evidence
        ],
    }  # fmt: skip


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _origin(p: Profile, name: str) -> tuple[FieldSource, bool]:
    """The provenance a value competes with, and whether it was recorded."""
    recorded = p.origins.get(name)
    if recorded is not None:
        return recorded, True
    return FieldSource(UNRECORDED, p.updated_at), False


def _tie(current: FieldSource, incoming: FieldSource, policy: Policy) -> bool:
    """Whether `decide` would settle these two origins by a tie in time."""
    if policy.rule is Rule.NON_EMPTY or current.at != incoming.at:
        return False
    return policy.rule is Rule.MOST_RECENT or policy.rank(current.source) == policy.rank(
        incoming.source
    )


def plan_field(
    name: str, survivor: Profile, merged: Sequence[Profile], policy: Policy
) -> FieldPlan:
    """Which value field `name` keeps when `merged` fold into `survivor`."""
    candidates = tuple(
        FieldValue(p.id, p.values.get(name), p.origins.get(name)) for p in (survivor, *merged)
    )
    value = survivor.values.get(name)
    origin, recorded = _origin(survivor, name)
    owner: int | None = survivor.id if value is not None else None
    reason = "only the survivor has a value" if value is not None else "no customer has a value"
    for p in merged:
        incoming = p.values.get(name)
        if incoming is None:
            continue
        incoming_origin, incoming_recorded = _origin(p, name)
        if value is not None and incoming != value and _tie(origin, incoming_origin, policy):
            # Equally recent (and trusted): the customer listed first keeps its value, the
            # survivor before all. `decide` would take the incoming value, which suits an
            # import (the record arriving is the news) but not a merge.
            reason = f"equally recent: customer {owner}'s value stays (listed first)"
            continue
        decision = decide(
            name, value, origin if value is not None else None, incoming, incoming_origin, policy
        )
        reason = decision.reason
        if decision.changed:
            value, origin, recorded, owner = incoming, incoming_origin, incoming_recorded, p.id
        elif decision.reason == "same value" and not recorded and incoming_recorded:
            # The same value, now with a known provenance: keep the knowledge.
            origin, recorded = incoming_origin, True
            reason = f"same value, provenance from customer {p.id}"
    return FieldPlan(
        name, value, owner, origin if recorded else None,
        value != survivor.values.get(name), reason, candidates,
    )  # fmt: skip


def plan_merge(
    survivor: Profile,
    merged: Sequence[Profile],
    totals: Mapping[int, RowCounts],
    aliases: Mapping[int, int],
    duplicates: Sequence[Duplicate],
    policy: Policy,
) -> MergePlan:
    """The plan for folding `merged` (in this order) into `survivor`.

    `totals` counts each merged customer's rows per table, `aliases` how many aliases point at
    each, and `duplicates` lists the rows the database found colliding (see the module notes).
    """
    fields = tuple(plan_field(name, survivor, merged, policy) for name in PROFILE_FIELDS)
    moves = []
    for p in merged:
        dropped = RowCounts(*(
            sum(1 for d in duplicates if d.dropped_customer_id == p.id and d.table == t)
            for t in TABLES
        ))  # fmt: skip
        total = totals.get(p.id, RowCounts())
        moves.append(Moves(p.id, total.minus(dropped), dropped, aliases.get(p.id, 0)))
    evidence = tuple(compare(survivor.customer(), p.customer()) for p in merged)
    warnings = []
    for c in evidence:
        if c.veto:
            warnings.append(f"customer {c.b_id}: {c.veto} from the survivor")
        elif c.score < LOW_SCORE:
            warnings.append(f"customer {c.b_id} scores only {c.score} against the survivor")
    return MergePlan(
        survivor.id, tuple(p.id for p in merged), fields,
        min(p.created_at for p in (survivor, *merged)), tuple(moves), tuple(duplicates),
        evidence, tuple(warnings), dict(survivor.raw_sources),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """A merge request whose ids are well-formed."""

    survivor_id: int
    merged_ids: tuple[int, ...]

    @property
    def all_ids(self) -> list[int]:
        """Survivor first, then the merged customers in request order (the priority order)."""
        return [self.survivor_id, *self.merged_ids]


def parse_request(
    survivor_id: str, merged_ids: Sequence[str]
) -> tuple[MergeRequest | None, list[FieldError]]:
    """Parse and check the shape of a request: ids, none twice, the survivor not merged."""
    errors: list[FieldError] = []
    survivor: int | None = None
    try:
        survivor = parse_id(survivor_id, field="survivorId")
    except InvalidId as exc:
        errors.append(FieldError("survivorId", "invalid_id", exc.message))
    if not merged_ids:
        errors.append(FieldError("mergedIds", "empty", "name at least one customer to merge"))
    if len(merged_ids) > MAX_MERGED:
        errors.append(FieldError(
            "mergedIds", "too_many", f"at most {MAX_MERGED} customers can be merged at once"
        ))  # fmt: skip
    parsed: list[int] = []
    seen: set[int] = set()
    for i, raw in enumerate(merged_ids):
        where = f"mergedIds.{i}"
        try:
            pk = parse_id(raw, field=where)
        except InvalidId as exc:
            errors.append(FieldError(where, "invalid_id", exc.message))
            continue
        if pk == survivor:
            errors.append(FieldError(where, "is_survivor", f"customer {pk} is the survivor"))
        elif pk in seen:
            errors.append(FieldError(where, "duplicate", f"customer {pk} is listed twice"))
        seen.add(pk)
        parsed.append(pk)
    if errors or survivor is None:
        return None, errors
    return MergeRequest(survivor, tuple(parsed)), []


def check_exists(
    request: MergeRequest, existing: Collection[int], aliases: Mapping[int, tuple[int, int]]
) -> list[FieldError]:
    """Every id must be a current customer: `aliases` maps merged-away ids to (survivor,
    merge id); `existing` holds the ids found in ``customers``."""
    errors = []
    named = [("survivorId", request.survivor_id)]
    named += [(f"mergedIds.{i}", pk) for i, pk in enumerate(request.merged_ids)]
    for where, pk in named:
        if pk in aliases:
            into, merge_id = aliases[pk]
            errors.append(FieldError(
                where, "already_merged",
                f"customer {pk} was merged into customer {into} (merge {merge_id})",
            ))  # fmt: skip
        elif pk not in existing:
            errors.append(FieldError(where, "unknown_customer", f"no customer with id {pk}"))
    return errors


@dataclass(frozen=True, slots=True)
class Refused:
    """The request was refused; nothing was written."""

    errors: tuple[FieldError, ...]


@dataclass(frozen=True, slots=True)
class Conflicted:
    """The operation is not possible in the current state."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Merged:
    """A merge that was carried out."""

    merge_id: int
    plan: MergePlan


@dataclass(frozen=True, slots=True)
class Unmerged:
    """A merge that was undone."""

    merge_id: int
    survivor_id: int
    restored_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UnmergeState:
    """What decides whether a merge can be undone exactly, as found in the database."""

    merge_id: int
    survivor_id: int
    merged_ids: tuple[int, ...]
    undone_at: datetime | None
    later_merge_id: int | None  # a later merge, not undone, involving the survivor
    survivor_exists: bool
    survivor_unchanged: bool  # the survivor's row is as the merge left it
    ids_taken: tuple[int, ...]  # merged ids that exist as customers again
    rows_missing: int  # moved rows no longer with the survivor


def unmerge_conflict(state: UnmergeState) -> Conflicted | None:
    """Why the merge cannot be undone exactly, or None when it can."""
    m = state.merge_id
    if state.undone_at is not None:
        return Conflicted(
            "already_undone", f"merge {m} was undone at {state.undone_at.isoformat()}"
        )
    if state.later_merge_id is not None:
        return Conflicted(
            "later_merge",
            f"merge {state.later_merge_id} involves customer {state.survivor_id} after merge "
            f"{m}; undo merge {state.later_merge_id} first",
        )
    if not state.survivor_exists:
        return Conflicted("survivor_missing", f"customer {state.survivor_id} no longer exists")
    if state.ids_taken:
        taken = ", ".join(map(str, state.ids_taken))
        return Conflicted("ids_taken", f"customer ids {taken} exist again")
    if not state.survivor_unchanged:
        return Conflicted(
            "survivor_changed",
            f"customer {state.survivor_id}'s profile changed after merge {m}; restoring it "
            "would lose that change",
        )
    if state.rows_missing:
        return Conflicted(
            "rows_changed",
            f"{state.rows_missing} rows moved by merge {m} are no longer with customer "
            f"{state.survivor_id}",
        )
    return None
