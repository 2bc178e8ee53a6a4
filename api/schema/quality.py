"""GraphQL view of the data-quality report (`dataQuality`)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.schema.common import GraphQLInfo
from domain import quality
from sql.quality import QualityRepository

DuplicateKindEnum = strawberry.enum(
    quality.DuplicateKind, name="DuplicateKind", description="What duplicate candidates share."
)


@strawberry.type(name="QualityCheck", description="One rule and how many rows break it.")
class QualityCheckType:
    name: str = strawberry.field(
        description="Stable machine name, e.g. `customers.phone.not_e164`."
    )
    description: str
    count: int
    share: float | None = strawberry.field(
        description="`count` as a fraction (0 to 1) of what it is counted among; null when "
        "that is empty or a share means nothing."
    )

    @classmethod
    def from_domain(cls, c: quality.Check) -> QualityCheckType:
        """The view of a domain check."""
        return cls(name=c.name, description=c.description, count=c.count, share=c.share)


@strawberry.type(name="FieldQuality", description="Completeness and validity of one field.")
class FieldQualityType:
    field: str
    filled: int = strawberry.field(description="Rows where the field has a value.")
    fill_rate: float | None = strawberry.field(description="`filled` / the table's rows.")
    invalid: int = strawberry.field(description="Filled rows breaking at least one check.")
    invalid_rate: float | None = strawberry.field(description="`invalid` / `filled`.")
    checks: list[QualityCheckType] = strawberry.field(
        description="The field's rules; each share is of `filled`."
    )

    @classmethod
    def from_domain(cls, f: quality.FieldQuality) -> FieldQualityType:
        """The view of a domain field report."""
        return cls(
            field=f.field, filled=f.filled, fill_rate=f.fill_rate, invalid=f.invalid,
            invalid_rate=f.invalid_rate,
            checks=[QualityCheckType.from_domain(c) for c in f.checks],
        )  # fmt: skip


@strawberry.type(name="TableQuality", description="The watched fields of one table.")
class TableQualityType:
    table: str
    rows: int
    fields: list[FieldQualityType]

    @classmethod
    def from_domain(cls, t: quality.TableQuality) -> TableQualityType:
        """The view of a domain table report."""
        return cls(
            table=t.table, rows=t.rows, fields=[FieldQualityType.from_domain(f) for f in t.fields]
        )


@strawberry.type(
    name="DuplicateCandidates",
    description="Customers sharing an exact normalised value with another customer.",
)
class DuplicateCandidatesType:
    kind: DuplicateKindEnum  # type: ignore[valid-type]
    description: str
    customers: int = strawberry.field(description="Customers in a shared group (each once).")
    groups: int = strawberry.field(description="Distinct values held by several customers.")
    share: float | None = strawberry.field(description="`customers` / all customers.")

    @classmethod
    def from_domain(cls, d: quality.DuplicateCandidates) -> DuplicateCandidatesType:
        """The view of domain duplicate candidates."""
        return cls(
            kind=d.kind, description=d.description, customers=d.customers, groups=d.groups,
            share=d.share,
        )  # fmt: skip


@strawberry.type(name="SourceFreshness", description="What one source sent to one table, when.")
class SourceFreshnessType:
    table: str
    source: str
    rows: int
    last_record_at: datetime = strawberry.field(
        description="When its newest row was received (consents: the newest decision's time, "
        "the only one they carry; identities: created)."
    )
    last_event_at: datetime | None = strawberry.field(
        description="When the newest event itself happened (purchases, interactions)."
    )
    age_hours: float = strawberry.field(description="Hours from `lastRecordAt` to `generatedAt`.")

    @classmethod
    def from_domain(cls, f: quality.SourceFreshness) -> SourceFreshnessType:
        """The view of a domain freshness entry."""
        return cls(
            table=f.table, source=f.source, rows=f.rows, last_record_at=f.last_record_at,
            last_event_at=f.last_event_at, age_hours=f.age_hours,
        )  # fmt: skip


@strawberry.type(name="DataQuality", description="The data-quality report, from one snapshot.")
class DataQualityType:
    generated_at: datetime
    tables: list[TableQualityType]
    duplicates: list[DuplicateCandidatesType]
    consistency: list[QualityCheckType] = strawberry.field(
        description="Rows that disagree with other rows (beyond what constraints enforce)."
    )
    freshness: list[SourceFreshnessType] = strawberry.field(
        description="Per table with a source column, per source."
    )

    @classmethod
    def from_domain(cls, r: quality.QualityReport) -> DataQualityType:
        """The view of a domain report."""
        return cls(
            generated_at=r.generated_at,
            tables=[TableQualityType.from_domain(t) for t in r.tables],
            duplicates=[DuplicateCandidatesType.from_domain(d) for d in r.duplicates],
            consistency=[QualityCheckType.from_domain(c) for c in r.consistency],
            freshness=[SourceFreshnessType.from_domain(f) for f in r.freshness],
        )


@strawberry.type
class QualityQueries:
    @strawberry.field(
        description="Data quality: completeness and invalid values per field, exact duplicate "
        "candidates, inconsistent rows and freshness per source. Reads every table: an "
        "operator's query, not one for every page view."
    )
    async def data_quality(self, info: GraphQLInfo) -> DataQualityType:
        report = await QualityRepository(info.context.db).report()
        return DataQualityType.from_domain(report)
