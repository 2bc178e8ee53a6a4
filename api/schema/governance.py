"""Governance: the audit log and data-subject rights (admins only; see ``domain.access``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

import sql.audit
import sql.gdpr
from api.schema.audited import mutation
from api.schema.common import Connection, GraphQLInfo, connection, cursors_for, page_request
from api.schema.errors import ValidationFailed
from domain.audit import AuditEntry, AuditKind
from domain.erasure import Erased
from domain.ids import parse_id
from domain.standardize import FieldError
from ml.serving.explain import current_scores
from sql.audit import AuditFilter

AuditKindEnum = strawberry.enum(
    AuditKind,
    name="AuditKind",
    description="A change, a read of personal data, a command, or a refused request.",
)
_ORDERING = "audit"


@strawberry.type(name="AuditEntry", description="Who did or read what about whom, and when.")
class AuditEntryType:
    id: strawberry.ID
    at: datetime
    actor: str = strawberry.field(description="`key:<name>`, `oidc:<subject>` or `cli:<user>`.")
    role: str
    kind: AuditKindEnum  # type: ignore[valid-type]
    operation: str = strawberry.field(description="The mutation, query fields or command.")
    customer_ids: list[strawberry.ID] = strawberry.field(description="Whose data it concerned.")
    request_id: str | None = strawberry.field(description="The request's X-Request-Id.")
    details: JSON = strawberry.field(description="Outcome and counts; never personal data.")

    @classmethod
    def from_domain(cls, e: AuditEntry) -> AuditEntryType:
        assert e.id is not None
        assert e.at is not None
        return cls(
            id=strawberry.ID(str(e.id)), at=e.at, actor=e.actor, role=e.role, kind=e.kind,
            operation=e.operation, customer_ids=[strawberry.ID(str(i)) for i in e.customer_ids],
            request_id=e.request_id, details=dict(e.details),
        )  # fmt: skip


@strawberry.type
class GovernanceQueries:
    @strawberry.field(
        description="The audit log, newest first; every filter optional. Admins only."
    )
    async def audit_log(
        self,
        info: GraphQLInfo,
        first: int = 50,
        after: str | None = None,
        customer_id: strawberry.ID | None = None,
        actor: str | None = None,
        operation: str | None = None,
        kind: AuditKindEnum | None = None,  # type: ignore[valid-type]
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Connection[AuditEntryType]:
        request = page_request(info, first, after, _ORDERING, 2)
        pk = parse_id(customer_id, field="customerId") if customer_id is not None else None
        flt = AuditFilter(pk, actor, operation, kind, since, until)
        pool = info.context.db.pool
        found = await sql.audit.page(
            pool,
            flt,
            after=request.after,
            limit=first + 1,  # type: ignore[arg-type]
        )
        rows = found[:first]
        keys = [(e.at, e.id) for e in rows]

        async def count() -> int:
            return await sql.audit.count(pool, flt)

        return connection(
            [AuditEntryType.from_domain(e) for e in rows], cursors_for(_ORDERING, keys),
            has_next=len(found) > first, has_previous=after is not None, count=count,
        )  # fmt: skip

    @strawberry.field(
        description="Everything held about a person, as one JSON document (GDPR art. 15 and "
        "20): profile, identities, consents, purchases, interactions, stored scores, current "
        "scores with every factor behind them, RFM, segments, merges, audit entries about "
        "them. A merged id exports its survivor. Admins only; audited."
    )
    async def export_customer_data(self, info: GraphQLInfo, id: strawberry.ID) -> JSON | None:
        pk = parse_id(id)
        context = info.context
        async with context.db.pool.acquire() as conn:
            document = await sql.gdpr.export_customer(conn, pk, context.settings.risk_bands)
            if document is None:
                return None
            cid = document["customerId"]
            document["currentScores"] = None
            if context.scorer is not None and not document["erasure"]:
                scores = await current_scores(context.scorer, conn, cid, datetime.now(UTC))
                document["currentScores"] = scores
            entry = context.audit_entry(AuditKind.READ, "exportCustomerData", [cid])
            await sql.audit.record(conn, entry)
        return document


@strawberry.type(description="A person's data was erased; the customer id stays as a tombstone.")
class CustomerErased:
    customer_id: strawberry.ID
    erased_at: datetime = strawberry.field(description="When the person was erased.")
    already_erased: bool = strawberry.field(
        description="They had been erased before: nothing more was done, and `erasedAt` and "
        "`removed` are those of that erasure."
    )
    removed: JSON = strawberry.field(description="Rows removed or scrubbed, per table.")

    @classmethod
    def from_domain(cls, e: Erased) -> CustomerErased:
        return cls(customer_id=strawberry.ID(str(e.customer_id)), erased_at=e.erased_at,
                   already_erased=e.already, removed=e.removed)  # fmt: skip


EraseResult = Annotated[CustomerErased | ValidationFailed, strawberry.union("EraseResult")]


@strawberry.type
class GovernanceMutations:
    @mutation(
        description="Erase a person irreversibly, in one transaction (GDPR art. 17): profile "
        "fields, identities, interactions, consents, stored scores and the values merges kept "
        "are removed; purchases stay as de-identified facts; identities are remembered as "
        "salted hashes so re-imports do not bring the person back. Idempotent: erasing an "
        "erased person again answers when it was done. Admins only."
    )
    async def erase_customer(self, info: GraphQLInfo, id: strawberry.ID) -> EraseResult:
        pk = parse_id(id)
        scope = info.context.writing()
        outcome = await sql.gdpr.erase_customer(
            scope.conn, pk, info.context.actor, info.context.request_id
        )
        if isinstance(outcome, str):
            return ValidationFailed.of([FieldError("id", "cannot_erase", outcome)])
        scope.touched([outcome.customer_id])
        if outcome.already:
            scope.details["alreadyErased"] = True
        return CustomerErased.from_domain(outcome)
