"""The typed per-request context: the only door resolvers have to the outside world."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from api.loaders import Loaders
from api.score_loaders import ScoreLoaders
from cdm.settings import Settings
from domain.access import Caller, Role
from domain.audit import AuditEntry, AuditKind
from domain.predictions import ModelUnavailable
from ml.serving.scoring import Scorer
from sql.executor import Database
from sql.repositories import CustomerRepository, ProductRepository


@dataclass(slots=True)
class WriteScope:
    """The transaction a mutation writes in, and whom its writes concern (for the audit)."""

    conn: asyncpg.Connection
    customer_ids: set[int] = field(default_factory=set)
    details: dict[str, object] = field(default_factory=dict)

    def touched(self, ids: Iterable[int]) -> None:
        """Record that the mutation wrote data of these customers."""
        self.customer_ids.update(ids)


@dataclass(slots=True)
class Context:
    """What a resolver may use while serving one request."""

    settings: Settings
    db: Database
    customers: CustomerRepository
    products: ProductRepository
    loaders: Loaders
    scorer: Scorer | None = None
    caller: Caller | None = None
    # Who is acting, as recorded in merge history and the audit log, e.g. `key:crm`.
    actor: str = "api"
    request_id: str | None = None
    write_scope: WriteScope | None = None
    extensions: dict[str, object] = field(default_factory=dict)
    _scores: dict[datetime | None, ScoreLoaders] = field(default_factory=dict)

    @classmethod
    def for_request(
        cls,
        pool: asyncpg.Pool,
        settings: Settings,
        scorer: Scorer | None = None,
        caller: Caller | None = None,
        request_id: str | None = None,
    ) -> Context:
        """A fresh context (new loaders, new statement count) for one request by ``caller``."""
        db = Database(pool)
        customers = CustomerRepository(db)
        products = ProductRepository(db)
        context = cls(settings, db, customers, products, Loaders(customers, products), scorer)
        context.request_id = request_id
        if caller is not None:
            context.caller = caller
            context.actor = caller.actor
        return context

    def audit_entry(
        self, kind: AuditKind, operation: str, customer_ids: Iterable[int],
        details: Mapping[str, object] | None = None,
    ) -> AuditEntry:  # fmt: skip
        """An audit entry for this request: its caller, role and request id filled in."""
        return AuditEntry(
            actor=self.actor, role=self.caller.role.value if self.caller else Role.ADMIN.value,
            kind=kind, operation=operation, customer_ids=AuditEntry.ids(customer_ids),
            request_id=self.request_id, details=details or {},
        )  # fmt: skip

    def writing(self) -> WriteScope:
        """The mutation's transaction (mutations run under ``api.audit.Audited``)."""
        if self.write_scope is None:
            raise RuntimeError("a mutation resolver ran outside api.audit.Audited")
        return self.write_scope

    def scores(self, as_of: datetime | None = None) -> ScoreLoaders:
        """The request's score loaders as of ``as_of`` (None: now), made on first use: the
        scores of a response that name no time share one as-of time (that first use)."""
        loaders = self._scores.get(as_of)
        if loaders is None:
            if self.scorer is None:
                raise ModelUnavailable("this server does not serve model scores")
            moment = as_of or datetime.now(UTC)
            loaders = self._scores[as_of] = ScoreLoaders(self.scorer, self.db, moment)
        return loaders
