"""Audit entries: who did or read what about whom. Pure: no I/O.

An entry names people by customer id only; what was written or read stays out of it, so the
log itself holds no personal data and survives erasure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class AuditKind(StrEnum):
    MUTATION = "mutation"  # a change through the API, recorded in the change's transaction
    READ = "read"  # unmasked personal data left the API
    COMMAND = "command"  # a CLI command on personal data (export, erasure)
    REFUSAL = "refusal"  # a request refused as unauthenticated (401) or forbidden (403)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log."""

    actor: str
    role: str
    kind: AuditKind
    operation: str
    customer_ids: tuple[int, ...] = ()
    request_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    at: datetime | None = None  # set by the database when written
    id: int | None = None

    @staticmethod
    def ids(values: Iterable[int]) -> tuple[int, ...]:
        """Customer ids as an entry keeps them: distinct and sorted."""
        return tuple(sorted(set(values)))
