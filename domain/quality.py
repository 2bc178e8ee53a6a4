"""The data-quality report: completeness and validity per field, exact duplicate candidates,
consistency between tables, and how fresh each source's data is.

Plain values only; the checks themselves run in the database (`sql/quality.py`). Shares are
fractions (0.25, not 25 %) and are None where their base is empty: "no rows" is not "0 %".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


def _ratio(part: int, whole: int | None) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class Check:
    """One rule and how many rows break it.

    `name` is stable and machine-readable (alerts and dashboards key on it); `population` is
    what the count is a share of, or None when a share would mean nothing.
    """

    name: str
    description: str
    count: int
    population: int | None = None

    @property
    def share(self) -> float | None:
        """The count as a fraction of the population."""
        return _ratio(self.count, self.population)


@dataclass(frozen=True, slots=True)
class FieldQuality:
    """Completeness and validity of one column (or derived value) of a table."""

    field: str
    rows: int
    filled: int
    invalid: int
    checks: tuple[Check, ...] = ()

    @property
    def fill_rate(self) -> float | None:
        """Filled rows as a fraction of all rows."""
        return _ratio(self.filled, self.rows)

    @property
    def invalid_rate(self) -> float | None:
        """Rows breaking at least one rule, as a fraction of the filled ones."""
        return _ratio(self.invalid, self.filled)

    def check(self, name: str) -> Check:
        """The check called `name` (its full name or the part after the field)."""
        for c in self.checks:
            if name in (c.name, c.name.rsplit(".", 1)[-1]):
                return c
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class TableQuality:
    """The fields of one table worth watching."""

    table: str
    rows: int
    fields: tuple[FieldQuality, ...]

    def field(self, name: str) -> FieldQuality:
        """The field called `name`."""
        for f in self.fields:
            if f.field == name:
                return f
        raise KeyError(name)


class DuplicateKind(StrEnum):
    """What duplicate candidates have in common."""

    EMAIL = "email"
    PHONE = "phone"
    NAME_COUNTRY = "name_country"


@dataclass(frozen=True, slots=True)
class DuplicateCandidates:
    """Customers sharing an exact (normalised) value with at least one other customer."""

    kind: DuplicateKind
    description: str
    customers: int
    groups: int
    population: int

    @property
    def share(self) -> float | None:
        """Those customers as a fraction of all customers."""
        return _ratio(self.customers, self.population)


@dataclass(frozen=True, slots=True)
class SourceFreshness:
    """How much one source has sent to one table, and when it last did."""

    table: str
    source: str
    rows: int
    last_record_at: datetime
    # When the newest event itself happened (purchase, interaction); None where the table's
    # only timestamp is the record's own.
    last_event_at: datetime | None
    age_hours: float


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The whole report, read from one consistent snapshot of the database."""

    generated_at: datetime
    tables: tuple[TableQuality, ...]
    duplicates: tuple[DuplicateCandidates, ...]
    consistency: tuple[Check, ...]
    freshness: tuple[SourceFreshness, ...]

    def table(self, name: str) -> TableQuality:
        """The table called `name`."""
        for t in self.tables:
            if t.table == name:
                return t
        raise KeyError(name)

    def duplicate(self, kind: DuplicateKind | str) -> DuplicateCandidates:
        """The duplicate candidates of one kind."""
        for d in self.duplicates:
            if d.kind == kind:
                return d
        raise KeyError(kind)

    def consistency_check(self, name: str) -> Check:
        """The consistency check called `name`."""
        for c in self.consistency:
            if c.name == name:
                return c
        raise KeyError(name)

    def source(self, table: str, source: str) -> SourceFreshness:
        """The freshness of one source in one table."""
        for f in self.freshness:
            if (f.table, f.source) == (table, source):
                return f
        raise KeyError((table, source))


def hours_between(earlier: datetime, later: datetime) -> float:
    """Hours from `earlier` to `later` (negative when `earlier` is in fact later)."""
    return (later - earlier).total_seconds() / 3600
