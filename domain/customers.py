"""Customers, their identities and consents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from domain.survivorship import FieldSource


class IdentityKind(StrEnum):
    """How a source knows a person."""

    EMAIL = "email"
    PHONE = "phone"
    EXTERNAL_ID = "external_id"
    COOKIE = "cookie"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class Customer:
    """A person's profile."""

    id: int
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    country: str | None
    birth_date: date | None
    created_at: datetime
    updated_at: datetime
    # Which source gave each profile field its value, and when (survivorship).
    field_sources: Mapping[str, FieldSource] = field(default_factory=dict)

    @property
    def full_name(self) -> str | None:
        """First and last name joined, or None when both are unknown."""
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) or None


@dataclass(frozen=True, slots=True)
class Identity:
    """One way one source knows a customer (an e-mail, a CRM id, a cookie ...)."""

    id: int
    customer_id: int
    kind: IdentityKind
    source: str
    value: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Consent:
    """The current (newest) consent decision of a customer for one purpose."""

    customer_id: int
    purpose: str
    granted: bool
    source: str
    recorded_at: datetime
