"""Duplicate candidates, merges and their undo, as GraphQL.

The rules live in `domain.matching` and `domain.merging`, the transactions in `sql.identity`;
resolvers here only parse arguments and translate outcomes into typed results.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import strawberry

from api.schema.audited import mutation
from api.schema.common import GraphQLInfo
from api.schema.customers import CustomerType
from api.schema.errors import Conflict, ValidationFailed
from domain.errors import InvalidId, UserError
from domain.ids import parse_id
from domain.matching import Candidate, Comparison, Evidence, MatchKind
from domain.merging import (
    Conflicted,
    Duplicate,
    FieldPlan,
    FieldValue,
    Merged,
    MergePlan,
    Moves,
    Refused,
    RowCounts,
    Unmerged,
    parse_request,
)
from domain.pagination import check_page_size
from domain.standardize import FieldError
from domain.survivorship import FieldSource
from sql import identity as store

MatchKindEnum = strawberry.enum(MatchKind, name="MatchKind", description="Identical or alike.")


def _id(pk: int) -> strawberry.ID:
    return strawberry.ID(str(pk))


def _text(value: object) -> str | None:
    """A profile value as text (dates in ISO 8601)."""
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


@strawberry.type(name="MatchEvidence", description="How one field compares between two customers.")
class MatchEvidenceType:
    field: str
    a_value: str | None
    b_value: str | None
    similarity: float = strawberry.field(description="0 (nothing alike) to 1 (the same).")
    kind: MatchKindEnum  # type: ignore[valid-type]

    @classmethod
    def from_domain(cls, e: Evidence) -> MatchEvidenceType:
        """The view of one piece of evidence."""
        return cls(field=e.field, a_value=e.a_value, b_value=e.b_value,
                   similarity=e.similarity, kind=e.kind)  # fmt: skip


async def _load_customer(info: GraphQLInfo, pk: int) -> CustomerType | None:
    found = await info.context.loaders.customer_by_id.load(pk)
    return CustomerType.from_domain(found) if found else None


@strawberry.type(name="DuplicateCandidate", description="Two customers that may be one person.")
class DuplicateCandidateType:
    score: float = strawberry.field(description="How likely the two are one person, 0 to 1.")
    evidence: list[MatchEvidenceType]
    blocking_keys: list[str] = strawberry.field(
        description="The keys the two share, for which they were compared (e.g. phone_suffix)."
    )
    a_pk: strawberry.Private[int]
    b_pk: strawberry.Private[int]

    # Customers come through the request's loader (one statement for the whole list), so
    # they are built exactly as everywhere else in the API.
    @strawberry.field(description="The first customer (null only if deleted meanwhile).")
    async def a(self, info: GraphQLInfo) -> CustomerType | None:
        return await _load_customer(info, self.a_pk)

    @strawberry.field(description="The second customer (null only if deleted meanwhile).")
    async def b(self, info: GraphQLInfo) -> CustomerType | None:
        return await _load_customer(info, self.b_pk)

    @classmethod
    def from_domain(cls, c: Candidate) -> DuplicateCandidateType:
        """The view of a candidate pair."""
        return cls(
            score=c.comparison.score,
            evidence=[MatchEvidenceType.from_domain(e) for e in c.comparison.evidence],
            blocking_keys=list(c.keys), a_pk=c.a.id, b_pk=c.b.id,
        )  # fmt: skip


@strawberry.type(name="MergeValueSource", description="Which source gave a value, and when.")
class ValueSourceType:
    source: str
    at: datetime

    @classmethod
    def of(cls, origin: FieldSource | None) -> ValueSourceType | None:
        """The view of a provenance, if recorded."""
        return cls(source=origin.source, at=origin.at) if origin else None


@strawberry.type(name="MergeFieldValue", description="One customer's value of a field.")
class MergeFieldValueType:
    customer_id: strawberry.ID
    value: str | None
    source: ValueSourceType | None = strawberry.field(description="Null: not recorded.")

    @classmethod
    def from_domain(cls, v: FieldValue) -> MergeFieldValueType:
        """The view of a candidate value."""
        return cls(customer_id=_id(v.customer_id), value=_text(v.value),
                   source=ValueSourceType.of(v.origin))  # fmt: skip


@strawberry.type(name="MergeFieldDecision", description="The value a profile field keeps, and why.")
class MergeFieldDecisionType:
    field: str
    value: str | None
    customer_id: strawberry.ID | None = strawberry.field(
        description="Whose value it is (null: no customer has one)."
    )
    source: ValueSourceType | None = strawberry.field(description="Null: not recorded.")
    changed: bool = strawberry.field(description="Differs from the survivor's value.")
    reason: str
    candidates: list[MergeFieldValueType]

    @classmethod
    def from_domain(cls, f: FieldPlan) -> MergeFieldDecisionType:
        """The view of a field's plan."""
        return cls(
            field=f.field, value=_text(f.value),
            customer_id=_id(f.customer_id) if f.customer_id is not None else None,
            source=ValueSourceType.of(f.origin), changed=f.changed, reason=f.reason,
            candidates=[MergeFieldValueType.from_domain(c) for c in f.candidates],
        )  # fmt: skip


@strawberry.type(name="MergeRowCounts", description="Rows per table.")
class RowCountsType:
    purchases: int
    interactions: int
    identities: int
    consents: int

    @classmethod
    def from_domain(cls, c: RowCounts) -> RowCountsType:
        """The view of row counts."""
        return cls(purchases=c.purchases, interactions=c.interactions,
                   identities=c.identities, consents=c.consents)  # fmt: skip


@strawberry.type(name="MergeMoves", description="What happens to one merged customer's rows.")
class MergeMovesType:
    customer_id: strawberry.ID
    moved: RowCountsType = strawberry.field(description="Rows that move to the survivor.")
    dropped: RowCountsType = strawberry.field(
        description="Duplicate copies dropped (kept once; restored by an undo)."
    )
    aliases: int = strawberry.field(description="Aliases re-pointed to the survivor.")

    @classmethod
    def from_domain(cls, m: Moves) -> MergeMovesType:
        """The view of one customer's moves."""
        return cls(customer_id=_id(m.customer_id), moved=RowCountsType.from_domain(m.moved),
                   dropped=RowCountsType.from_domain(m.dropped), aliases=m.aliases)  # fmt: skip


@strawberry.type(
    name="MergeDuplicate", description="A row kept once: another customer has the same key."
)
class MergeDuplicateType:
    table: str
    key: str
    kept_customer_id: strawberry.ID
    kept_id: strawberry.ID
    dropped_customer_id: strawberry.ID
    dropped_id: strawberry.ID

    @classmethod
    def from_domain(cls, d: Duplicate) -> MergeDuplicateType:
        """The view of a dropped duplicate."""
        return cls(
            table=d.table, key=d.key, kept_customer_id=_id(d.kept_customer_id),
            kept_id=_id(d.kept_id), dropped_customer_id=_id(d.dropped_customer_id),
            dropped_id=_id(d.dropped_id),
        )  # fmt: skip


@strawberry.type(
    name="MergeEvidence", description="How a merged customer compares to the survivor."
)
class MergeEvidenceType:
    customer_id: strawberry.ID
    score: float
    veto: str | None = strawberry.field(description="Why they cannot be one person, if so.")
    evidence: list[MatchEvidenceType]

    @classmethod
    def from_domain(cls, c: Comparison) -> MergeEvidenceType:
        """The view of a comparison with the survivor."""
        return cls(customer_id=_id(c.b_id), score=c.score, veto=c.veto,
                   evidence=[MatchEvidenceType.from_domain(e) for e in c.evidence])  # fmt: skip


@strawberry.type(name="MergePlan", description="What a merge does (a dry run writes nothing).")
class MergePlanType:
    survivor_id: strawberry.ID
    merged_ids: list[strawberry.ID]
    fields: list[MergeFieldDecisionType]
    created_at: datetime = strawberry.field(description="The survivor's createdAt afterwards.")
    moves: list[MergeMovesType]
    duplicates: list[MergeDuplicateType]
    evidence: list[MergeEvidenceType]
    warnings: list[str]

    @classmethod
    def from_domain(cls, p: MergePlan) -> MergePlanType:
        """The view of a merge plan."""
        return cls(
            survivor_id=_id(p.survivor_id), merged_ids=[_id(m) for m in p.merged_ids],
            fields=[MergeFieldDecisionType.from_domain(f) for f in p.fields],
            created_at=p.created_at, moves=[MergeMovesType.from_domain(m) for m in p.moves],
            duplicates=[MergeDuplicateType.from_domain(d) for d in p.duplicates],
            evidence=[MergeEvidenceType.from_domain(c) for c in p.evidence],
            warnings=list(p.warnings),
        )  # fmt: skip


@strawberry.type(name="MergeDone", description="The merge was carried out.")
class MergeDoneType:
    merge_id: strawberry.ID = strawberry.field(description="Pass to unmergeCustomers to undo.")
    plan: MergePlanType
    survivor_pk: strawberry.Private[int]

    @strawberry.field(description="The survivor as it is now.")
    async def survivor(self, info: GraphQLInfo) -> CustomerType | None:
        return await _load_customer(info, self.survivor_pk)


@strawberry.type(name="UnmergeDone", description="The merge was undone exactly.")
class UnmergeDoneType:
    merge_id: strawberry.ID
    restored_ids: list[strawberry.ID]
    survivor_pk: strawberry.Private[int]
    restored_pks: strawberry.Private[tuple[int, ...]]

    @strawberry.field(description="The survivor, restored to its state before the merge.")
    async def survivor(self, info: GraphQLInfo) -> CustomerType | None:
        return await _load_customer(info, self.survivor_pk)

    @strawberry.field(description="The merged customers, recreated with their own ids.")
    async def restored(self, info: GraphQLInfo) -> list[CustomerType]:
        found = await info.context.loaders.customer_by_id.load_many(list(self.restored_pks))
        return [CustomerType.from_domain(c) for c in found if c is not None]


MergeResult = Annotated[
    MergePlanType | MergeDoneType | ValidationFailed | Conflict,
    strawberry.union("MergeResult", description="A plan (dry run), a merge, or why not."),
]
UnmergeResult = Annotated[
    UnmergeDoneType | ValidationFailed | Conflict,
    strawberry.union("UnmergeResult", description="The undo, or why it is not possible."),
]


@strawberry.type
class IdentityQueries:
    @strawberry.field(
        description="Likely duplicate customers that exact matching missed, best first: similar "
        "names plus similar e-mail, phone or birth date, with the evidence. With `customerId`, "
        "only that customer's candidates (it is then `a`)."
    )
    async def duplicate_candidates(
        self,
        info: GraphQLInfo,
        first: int = 20,
        min_score: float = 0.8,
        customer_id: strawberry.ID | None = None,
    ) -> list[DuplicateCandidateType]:
        check_page_size(first, info.context.settings.max_page_size)
        if not 0 <= min_score <= 1:
            raise UserError("`minScore` must be between 0 and 1", field="minScore")
        pk = parse_id(customer_id, field="customerId") if customer_id is not None else None
        found = await store.duplicate_candidates(
            info.context.db.pool, first=first, min_score=min_score, customer_id=pk
        )
        return [DuplicateCandidateType.from_domain(c) for c in found]


@strawberry.type
class IdentityMutations:
    @mutation(
        description="Fold `mergedIds` into `survivorId` in one transaction: rows move, profile "
        "fields follow the survivorship policy, merged ids keep resolving to the survivor. "
        "`dryRun` returns the plan and writes nothing."
    )
    async def merge_customers(
        self,
        info: GraphQLInfo,
        survivor_id: strawberry.ID,
        merged_ids: list[strawberry.ID],
        dry_run: bool = False,
    ) -> MergeResult:
        request, errors = parse_request(survivor_id, merged_ids)
        if request is None:
            return ValidationFailed.of(errors)
        context = info.context
        scope = context.writing()
        scope.touched(request.all_ids)
        scope.details["dryRun"] = dry_run
        outcome = await store.merge_customers(
            scope.conn, request, context.settings.survivorship, context.actor, dry_run=dry_run
        )
        if isinstance(outcome, Refused):
            return ValidationFailed.of(outcome.errors)
        if isinstance(outcome, Merged):
            return MergeDoneType(
                merge_id=_id(outcome.merge_id), plan=MergePlanType.from_domain(outcome.plan),
                survivor_pk=outcome.plan.survivor_id,
            )  # fmt: skip
        return MergePlanType.from_domain(outcome)

    @mutation(
        description="Undo a merge exactly (customers, rows, aliases and the survivor's profile "
        "as they were), or a Conflict when that is no longer possible."
    )
    async def unmerge_customers(self, info: GraphQLInfo, merge_id: strawberry.ID) -> UnmergeResult:
        try:
            pk = parse_id(merge_id, field="mergeId")
        except InvalidId as exc:
            return ValidationFailed.of([FieldError("mergeId", "invalid_id", exc.message)])
        scope = info.context.writing()
        outcome = await store.unmerge_customers(scope.conn, pk, info.context.actor)
        if isinstance(outcome, Refused):
            return ValidationFailed.of(outcome.errors)
        if isinstance(outcome, Conflicted):
            return Conflict(code=outcome.code, message=outcome.message)
        assert isinstance(outcome, Unmerged)
        scope.touched((outcome.survivor_id, *outcome.restored_ids))
        return UnmergeDoneType(
            merge_id=_id(outcome.merge_id), restored_ids=[_id(i) for i in outcome.restored_ids],
            survivor_pk=outcome.survivor_id, restored_pks=outcome.restored_ids,
        )  # fmt: skip
