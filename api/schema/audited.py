"""Mutations recorded in the audit log in the same transaction as their change.

Every mutation field is declared with :func:`mutation`, which attaches :class:`Audited`: the
resolver runs inside one transaction on one connection (``context.writing()``) and the audit
entry is appended to that same transaction, so a change and its record commit or vanish
together. A refused mutation (a typed refusal, nothing written) is recorded too. A test fails
when a mutation lacks the extension.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types import Info

import sql.audit
from api.context import Context, WriteScope
from api.schema.errors import Conflict, ValidationFailed
from domain.audit import AuditKind

# Answers that mean "refused, nothing written": recorded with outcome "refused".
_REFUSALS = (ValidationFailed, Conflict)


class Audited(FieldExtension):
    """Runs a mutation in one transaction and records it there (see the module docstring)."""

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], root: Any, info: Info, /, **kwargs: Any
    ) -> Any:
        context: Context = info.context
        async with context.db.pool.acquire() as conn, conn.transaction():
            scope = context.write_scope = WriteScope(conn)
            context.db.bind(conn)  # reads inside the mutation see its own writes
            try:
                result = await next_(root, info, **kwargs)
            finally:
                context.write_scope = None
                context.db.bind(None)
            outcome = "refused" if isinstance(result, _REFUSALS) else "done"
            entry = context.audit_entry(
                AuditKind.MUTATION, info.field_name, scope.customer_ids,
                {"outcome": outcome, **scope.details},
            )  # fmt: skip
            await sql.audit.record(conn, entry)
        return result


def mutation(*, description: str) -> Any:
    """``strawberry.mutation`` with the audit extension (use it for every mutation)."""
    return strawberry.mutation(description=description, extensions=[Audited()])
