"""Saved segments: a typed definition of who belongs, validated and stored as JSON. Pure.

A definition is a tree of filters. Within one node every given condition must hold; `all_of`,
`any_of` and `none_of` combine child nodes (and, or, not). The SQL adapter compiles a
definition into a parameterised condition (``sql/segments.py``); nothing of it is ever spliced
into SQL as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from domain import standardize as std
from domain.predictions import RiskBand
from domain.rfm import RfmSegment
from domain.standardize import FieldError

MAX_NODES = 50
MAX_BOUND = 10**15
MAX_DEPTH = 6


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds; either may be open."""

    min: Decimal | None = None
    max: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Bought:
    """Bought a product (by SKU) or anything of a category, optionally within the last days."""

    sku: str | None = None
    category: str | None = None
    within_days: int | None = None


@dataclass(frozen=True, slots=True)
class InteractionCount:
    """How many interactions of a kind (optionally of a channel) within the last days."""

    kind: str
    channel: str | None = None
    within_days: int | None = None
    min: int | None = 1
    max: int | None = None


@dataclass(frozen=True, slots=True)
class SegmentFilter:
    """One node of a definition (see the module docstring)."""

    all_of: tuple[SegmentFilter, ...] = ()
    any_of: tuple[SegmentFilter, ...] = ()
    none_of: tuple[SegmentFilter, ...] = ()
    countries: tuple[str, ...] = ()
    total_spend: Range | None = None
    orders: Range | None = None
    days_since_last_purchase: Range | None = None
    rfm_segments: tuple[RfmSegment, ...] = ()
    churn_bands: tuple[RiskBand, ...] = ()
    churn_probability: Range | None = None
    purchase_probability_30d: Range | None = None
    expected_purchases: Range | None = None
    consented_to: str | None = None
    bought: Bought | None = None
    interactions: InteractionCount | None = None

    def nodes(self) -> int:
        """How many nodes the tree has."""
        return 1 + sum(c.nodes() for c in (*self.all_of, *self.any_of, *self.none_of))

    def depth(self) -> int:
        children = (*self.all_of, *self.any_of, *self.none_of)
        return 1 + max((c.depth() for c in children), default=0)


def _range(raw: Any, path: str, errors: list[FieldError], *, share: bool = False) -> Range | None:
    if raw is None:
        return None
    try:
        low = None if raw.get("min") is None else Decimal(str(raw["min"]))
        high = None if raw.get("max") is None else Decimal(str(raw["max"]))
    except (InvalidOperation, AttributeError):
        errors.append(FieldError(path, "invalid_range", "min and max must be numbers"))
        return None
    if any(b is not None and not (b.is_finite() and abs(b) < MAX_BOUND) for b in (low, high)):
        # NaN does not compare (`NaN < 0` raises) and nothing stored is this large.
        message = f"bounds must be finite numbers below {MAX_BOUND:,}"
        errors.append(FieldError(path, "invalid_range", message))
        return None
    if low is not None and high is not None and low > high:
        errors.append(FieldError(path, "invalid_range", f"min ({low}) is above max ({high})"))
    for bound in (low, high):
        if bound is not None and (bound < 0 or (share and bound > 1)):
            limit = "between 0 and 1" if share else "at least 0"
            errors.append(FieldError(path, "invalid_range", f"bounds must be {limit}"))
            break
    return Range(low, high)


def _days(raw: Any, path: str, errors: list[FieldError]) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= 36_500:
        errors.append(FieldError(path, "invalid_days", "must be a whole number of days, 1 or more"))
        return None
    return raw


def _text(raw: Any, path: str, errors: list[FieldError]) -> str | None:
    if raw is None:
        return None
    problem = std.text_problem(raw, path)
    if problem is not None or not isinstance(raw, str) or not raw.strip():
        errors.append(problem or FieldError(path, "empty", "must not be empty"))
        return None
    return raw.strip()


def parse_filter(raw: Mapping[str, Any], path: str = "definition") -> SegmentFilter:
    """A validated definition from its JSON form (as stored, or as the API received it);
    raises :class:`InvalidDefinition` listing every problem."""
    errors: list[FieldError] = []
    node = _node(raw, path, errors)
    if not errors and node.nodes() > MAX_NODES:
        errors.append(FieldError(path, "too_large", f"at most {MAX_NODES} filter nodes"))
    if not errors and node.depth() > MAX_DEPTH:
        errors.append(FieldError(path, "too_deep", f"at most {MAX_DEPTH} levels of nesting"))
    if errors:
        raise InvalidDefinition(errors)
    return node


class InvalidDefinition(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _node(raw: Any, path: str, errors: list[FieldError]) -> SegmentFilter:
    if not isinstance(raw, Mapping):
        errors.append(FieldError(path, "invalid", "must be an object"))
        return SegmentFilter()
    known = {f.name for f in fields(SegmentFilter)}
    for key in raw:
        if key not in known:
            errors.append(FieldError(f"{path}.{key}", "unknown", "is not a segment filter"))

    def children(name: str) -> tuple[SegmentFilter, ...]:
        items = raw.get(name) or ()
        if not isinstance(items, list | tuple):
            errors.append(FieldError(f"{path}.{name}", "invalid", "must be a list"))
            return ()
        return tuple(_node(item, f"{path}.{name}.{i}", errors) for i, item in enumerate(items))

    countries = []
    for i, value in enumerate(raw.get("countries") or ()):
        try:
            found = std.country(value, f"{path}.countries.{i}")
        except FieldError as error:
            errors.append(error)
            continue
        if found:
            countries.append(found)

    def members(name: str, kind: type) -> tuple:
        found = []
        for value in raw.get(name) or ():
            try:
                found.append(kind(value))
            except ValueError:
                choices = ", ".join(m.value for m in kind)  # type: ignore[attr-defined]
                errors.append(
                    FieldError(f"{path}.{name}", "unknown_value", f"{value!r}: one of {choices}")
                )
        return tuple(found)

    consent = None
    if raw.get("consented_to") is not None:
        try:
            consent = std.code(raw["consented_to"], f"{path}.consented_to")
        except FieldError as error:
            errors.append(error)

    bought = None
    if raw.get("bought") is not None:
        b = raw["bought"]
        sku = _text(b.get("sku"), f"{path}.bought.sku", errors)
        category = _text(b.get("category"), f"{path}.bought.category", errors)
        if (sku is None) == (category is None):
            errors.append(FieldError(f"{path}.bought", "invalid", "give one of sku and category"))
        within = _days(b.get("within_days"), f"{path}.bought.within_days", errors)
        bought = Bought(sku, category.lower() if category else None, within)

    interactions = None
    if raw.get("interactions") is not None:
        n = raw["interactions"]
        kind = _text(n.get("kind"), f"{path}.interactions.kind", errors)
        counts = _range(
            {"min": n.get("min", 1), "max": n.get("max")}, f"{path}.interactions", errors
        )
        interactions = InteractionCount(
            kind=(kind or "").lower(),
            channel=_text(n.get("channel"), f"{path}.interactions.channel", errors),
            within_days=_days(n.get("within_days"), f"{path}.interactions.within_days", errors),
            min=int(counts.min) if counts and counts.min is not None else None,
            max=int(counts.max) if counts and counts.max is not None else None,
        )

    return SegmentFilter(
        all_of=children("all_of"),
        any_of=children("any_of"),
        none_of=children("none_of"),
        countries=tuple(countries),
        total_spend=_range(raw.get("total_spend"), f"{path}.total_spend", errors),
        orders=_range(raw.get("orders"), f"{path}.orders", errors),
        days_since_last_purchase=_range(
            raw.get("days_since_last_purchase"), f"{path}.days_since_last_purchase", errors
        ),
        rfm_segments=members("rfm_segments", RfmSegment),
        churn_bands=members("churn_bands", RiskBand),
        churn_probability=_range(
            raw.get("churn_probability"), f"{path}.churn_probability", errors, share=True
        ),
        purchase_probability_30d=_range(
            raw.get("purchase_probability_30d"),
            f"{path}.purchase_probability_30d",
            errors,
            share=True,
        ),
        expected_purchases=_range(
            raw.get("expected_purchases"), f"{path}.expected_purchases", errors
        ),
        consented_to=consent,
        bought=bought,
        interactions=interactions,
    )


def to_json(node: SegmentFilter) -> dict[str, Any]:
    """The JSON form of a definition (what is stored; `parse_filter` reads it back)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if v not in (None, (), [])}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(asdict(node))  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Segment:
    """A saved segment."""

    id: int
    name: str
    description: str | None
    definition: SegmentFilter
    created_by: str
    created_at: datetime
    updated_at: datetime | None = None


# Channels an export can be for, and the consent purpose each needs.
CHANNEL_PURPOSES = {
    "email": "email_marketing",
    "sms": "sms",
    "personalization": "personalization",
    "analytics": "analytics",
}
# An export for analytics carries no contact field; it leaves out whoever refused this purpose.
ANALYTICS_PURPOSE = "analytics"
