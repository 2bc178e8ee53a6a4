"""What a client can ask of the customer list: filters and orderings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from domain.errors import UserError
from domain.times import check_time

MIN_SEARCH_LENGTH = 2
MAX_SEARCH_LENGTH = 200


class CustomerSortField(StrEnum):
    """What the customer list can be ordered by."""

    CREATED_AT = "created_at"
    LAST_PURCHASE_AT = "last_purchase_at"
    TOTAL_SPEND = "total_spend"
    CHURN_RISK = "churn_risk"  # the stored scores of the latest `cdm score --all`


class SortDirection(StrEnum):
    """Ascending or descending."""

    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True, slots=True)
class CustomerOrder:
    """An ordering of the customer list; ties are broken by id in the same direction."""

    field: CustomerSortField = CustomerSortField.CREATED_AT
    direction: SortDirection = SortDirection.DESC

    @property
    def key(self) -> str:
        """A stable name for this ordering, carried in cursors."""
        return f"customers:{self.field}:{self.direction}"


@dataclass(frozen=True, slots=True)
class CustomerFilter:
    """Conditions on the customer list; all given ones must hold."""

    country: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    purchased_since: datetime | None = None
    purchased_until: datetime | None = None
    min_total_spend: Decimal | None = None
    search: str | None = None
    min_churn_risk: float | None = None  # stored scores (`cdm score --all`)
    max_churn_risk: float | None = None

    def __post_init__(self) -> None:
        for name, label in (("min_churn_risk", "minChurnRisk"), ("max_churn_risk", "maxChurnRisk")):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UserError(f"`{label}` must be between 0 and 1", field=label)
        for name, label in (
            ("created_after", "createdAfter"), ("created_before", "createdBefore"),
            ("purchased_since", "purchasedSince"), ("purchased_until", "purchasedUntil"),
        ):  # fmt: skip
            check_time(getattr(self, name), label)
        if self.country is not None and not (len(self.country) == 2 and self.country.isalpha()):
            raise UserError(
                "`country` must be an ISO 3166-1 alpha-2 code such as DE or US", field="country"
            )
        if self.min_total_spend is not None and not self.min_total_spend.is_finite():
            raise UserError("`minTotalSpend` must be a finite number", field="minTotalSpend")
        if self.min_total_spend is not None and self.min_total_spend < 0:
            raise UserError("`minTotalSpend` must not be negative", field="minTotalSpend")
        if self.search is not None:
            text = " ".join(self.search.split())
            if not MIN_SEARCH_LENGTH <= len(text) <= MAX_SEARCH_LENGTH:
                raise UserError(
                    f"`search` must be {MIN_SEARCH_LENGTH} to {MAX_SEARCH_LENGTH} characters",
                    field="search",
                )

    @property
    def normalized_country(self) -> str | None:
        """Country code upper-cased, as stored."""
        return self.country.upper() if self.country else None

    @property
    def search_pattern(self) -> str | None:
        """A LIKE pattern matching the search text anywhere."""
        return contains_pattern(self.search) if self.search is not None else None


def contains_pattern(text: str) -> str:
    """A LIKE pattern for lower-cased `text` anywhere, its wildcards escaped, spaces folded."""
    folded = " ".join(text.lower().split())
    escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A page of a customer's history: newest first, optionally bounded in time."""

    first: int
    after: tuple[datetime, int] | None = None
    since: datetime | None = None
    until: datetime | None = None
    kinds: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_time(self.since, "since")
        check_time(self.until, "until")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise UserError("`since` must be before `until`", field="since")

    @property
    def bounded(self) -> bool:
        """Whether the window restricts the history (and so has its own total count)."""
        return self.since is not None or self.until is not None or self.kinds is not None
