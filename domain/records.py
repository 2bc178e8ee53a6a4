"""Incoming records: raw fields from a file or the API, validated into standard form.

One parser per entity turns a mapping of raw values (strings from CSV, JSON values, Parquet
values) into a typed record, or raises `Rejected` listing every field that is wrong. The same
parsers serve bulk import and the write API, so both accept and refuse exactly the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from domain import standardize as std
from domain.standardize import FieldError, TimeRules

PURCHASE_CHANNELS = ("web", "store", "app", "phone", "marketplace", "other")
INTERACTION_CHANNELS = ("web", "email", "support", "social", "store", "app", "phone")
_MAX_ID = 2**63 - 1  # ids are PostgreSQL bigints
_CUSTOMER_REF = ("customer_id", "customer_external_id", "customer_source")
# The fields each entity's parser reads: the valid targets of an import's `--map`.
TARGETS: dict[str, tuple[str, ...]] = {
    "customers": ("external_id", "first_name", "last_name", "email", "phone", "country",
                  "birth_date", "created_at", "updated_at"),
    "products": ("sku", "name", "category", "price", "currency"),
    "purchases": (*_CUSTOMER_REF, "external_id", "product_sku", "order_ref", "quantity",
                  "unit_price", "amount", "currency", "channel", "purchased_at"),
    "interactions": (*_CUSTOMER_REF, "external_id", "occurred_at", "channel", "kind",
                     "properties"),
    "consents": (*_CUSTOMER_REF, "purpose", "granted", "recorded_at"),
}  # fmt: skip
_TRUE = {"true", "t", "yes", "y", "1", "granted", "opt-in", "opt_in"}
_FALSE = {"false", "f", "no", "n", "0", "revoked", "denied", "opt-out", "opt_out"}

T = TypeVar("T")


class Rejected(Exception):
    """A record with one or more invalid fields."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """How raw values are read: the record's source system, defaults, and time rules."""

    source: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The system whose external ids name customers in these records (default: `source`).
    customer_source: str | None = None
    default_currency: str | None = None
    phone_region: str | None = None
    time: TimeRules = field(default_factory=TimeRules)


@dataclass(frozen=True, slots=True)
class CustomerRef:
    """How a record names its customer: a CDM id, or an external id in a source system."""

    customer_id: int | None
    source: str | None
    external_id: str | None


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A person's profile as one source knows it."""

    source: str
    external_id: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    country: str | None
    birth_date: date | None
    observed_at: datetime
    # When the person became a customer, if the source knows (an existing customer's
    # created_at only ever moves earlier).
    created_at: datetime | None = None

    def profile(self) -> dict[str, Any]:
        """The profile fields (for survivorship)."""
        return {
            "first_name": self.first_name, "last_name": self.last_name, "email": self.email,
            "phone": self.phone, "country": self.country, "birth_date": self.birth_date,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """An item of the catalogue."""

    sku: str
    name: str
    category: str
    price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    """One purchased line."""

    customer: CustomerRef
    source: str
    external_id: str
    product_sku: str | None
    order_ref: str | None
    quantity: int
    unit_price: Decimal | None
    amount: Decimal
    currency: str
    channel: str
    purchased_at: datetime


@dataclass(frozen=True, slots=True)
class InteractionRecord:
    """One event of a customer's history."""

    customer: CustomerRef
    source: str
    external_id: str
    occurred_at: datetime
    channel: str
    kind: str
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A consent decision."""

    customer: CustomerRef
    source: str
    purpose: str
    granted: bool
    recorded_at: datetime


class _Fields:
    """Collects every field error of one record instead of stopping at the first."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.errors: list[FieldError] = []

    def get(self, name: str) -> Any:
        value = self.raw.get(name)
        problem = std.text_problem(value, name)
        if problem is not None:
            if all(e.field != name for e in self.errors):  # once, however often it is read
                self.errors.append(problem)
            return None
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def take(self, name: str, rule: Callable[[Any], T]) -> T | None:
        try:
            return rule(self.get(name))
        except FieldError as error:
            self.errors.append(error)
            return None

    def time(self, name: str, options: ParseOptions, *, default_now: bool = False) -> datetime:
        """A timestamp field in UTC; `options.now` when absent and `default_now` (else an
        error). On error the placeholder `options.now` is returned; `done()` then refuses."""

        def rule(value: Any) -> datetime:
            if value is None and default_now:
                return options.now
            return std.timestamp(value, options.now, options.time, name)

        return self.take(name, rule) or options.now

    def required(self, name: str) -> str | None:
        text = std.collapse(None if self.get(name) is None else str(self.get(name)))
        if text is None and all(e.field != name for e in self.errors):
            self.errors.append(FieldError(name, "missing", "is required"))
        return text

    def done(self) -> None:
        if self.errors:
            raise Rejected(self.errors)


def _one_of(allowed: tuple[str, ...], name: str, default: str | None = None) -> Callable:
    def rule(value: Any) -> str:
        text = std.collapse(None if value is None else str(value))
        text = text.lower() if text else default
        if text not in allowed:
            raise FieldError(
                name, "invalid_choice", f"{value!r} is not one of {', '.join(allowed)}"
            )
        return text

    return rule


def _customer_ref(f: _Fields, options: ParseOptions) -> CustomerRef:
    default_source = options.customer_source or options.source
    source = f.take("customer_source", lambda v: std.source(v) if v is not None else default_source)
    raw_id = f.get("customer_id")
    external = std.collapse(
        None if f.get("customer_external_id") is None else str(f.get("customer_external_id"))
    )
    if raw_id is None and external is None:
        f.errors.append(
            FieldError("customer_id", "missing", "give customer_id or customer_external_id")
        )
        return CustomerRef(None, None, None)
    if raw_id is not None and external is not None:
        # Never guess which one is meant: a file's own `customer_id` column read as CDM's id
        # attached lines to the wrong people.
        f.errors.append(FieldError(
            "customer_id", "ambiguous_customer",
            f"names its customer both by customer_id ({raw_id!r}, CDM's own id) and by "
            f"customer_external_id ({external!r}); give only one: map the column with your "
            "system's ids to customer_external_id, and customer_id only to CDM ids",
        ))  # fmt: skip
        return CustomerRef(None, None, None)
    customer_id = None
    if raw_id is not None:
        text = str(raw_id).strip()
        # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= _MAX_ID:
            f.errors.append(
                FieldError("customer_id", "invalid_id", f"{raw_id!r} is not a CDM customer id")
            )
        else:
            customer_id = int(text)
    return CustomerRef(customer_id, source, external)


def parse_customer(raw: Mapping[str, Any], options: ParseOptions) -> CustomerRecord:
    """A customer record, or `Rejected`. It needs an external id, e-mail or phone to be matched."""
    f = _Fields(raw)
    external = std.collapse(None if f.get("external_id") is None else str(f.get("external_id")))
    record = CustomerRecord(
        source=options.source,
        external_id=external,
        first_name=f.take("first_name", lambda v: std.name(v, "first_name")),
        last_name=f.take("last_name", lambda v: std.name(v, "last_name")),
        email=f.take("email", std.email),
        phone=f.take("phone", lambda v: std.phone(v, options.phone_region)),
        country=f.take("country", std.country),
        birth_date=f.take("birth_date", lambda v: std.birth_date(v, options.now.date())),
        observed_at=f.time("updated_at", options, default_now=True),
        created_at=f.time("created_at", options) if f.get("created_at") is not None else None,
    )
    f.done()
    if record.external_id is None and record.email is None and record.phone is None:
        raise Rejected(
            [FieldError("external_id", "unidentifiable", "needs an external_id, email or phone")]
        )
    return record


def parse_product(raw: Mapping[str, Any], options: ParseOptions) -> ProductRecord:
    """A product record, or `Rejected`."""
    f = _Fields(raw)
    sku = f.required("sku")
    name = f.required("name")
    category = f.required("category")
    price = f.take("price", lambda v: std.amount(v, "price"))
    if f.get("price") is None and not any(e.field == "price" for e in f.errors):
        f.errors.append(FieldError("price", "missing", "is required"))
    currency = f.take("currency", lambda v: std.currency(v, options.default_currency))
    f.done()
    return ProductRecord(sku, name, category.lower(), price, currency)  # type: ignore[arg-type, union-attr]


def parse_purchase(raw: Mapping[str, Any], options: ParseOptions) -> PurchaseRecord:
    """A purchase line, or `Rejected`. The amount defaults to quantity x unit price."""
    f = _Fields(raw)
    customer = _customer_ref(f, options)
    external_id = f.required("external_id")
    quantity = f.take("quantity", lambda v: 1 if v is None else std.quantity(v))
    unit_price = f.take("unit_price", lambda v: None if v is None else std.amount(v, "unit_price"))
    amount = f.take("amount", lambda v: None if v is None else std.amount(v))
    if amount is None and f.get("amount") is None:
        if unit_price is not None and quantity is not None:
            amount = unit_price * quantity
        elif not any(e.field in ("unit_price", "quantity") for e in f.errors):
            f.errors.append(FieldError("amount", "missing", "give amount or unit_price"))
    record = PurchaseRecord(
        customer=customer,
        source=options.source,
        external_id=external_id or "",
        product_sku=std.collapse(
            None if f.get("product_sku") is None else str(f.get("product_sku"))
        ),
        order_ref=std.collapse(None if f.get("order_ref") is None else str(f.get("order_ref"))),
        quantity=quantity or 1,
        unit_price=unit_price,
        amount=amount if amount is not None else Decimal(0),
        currency=f.take("currency", lambda v: std.currency(v, options.default_currency)) or "",
        channel=f.take("channel", _one_of(PURCHASE_CHANNELS, "channel", "other")) or "",
        purchased_at=f.time("purchased_at", options),
    )
    f.done()
    return record


def _properties(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    try:
        parsed = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        raise FieldError("properties", "invalid_json", "is not a JSON object") from None
    if not isinstance(parsed, dict):
        raise FieldError("properties", "invalid_json", "must be a JSON object, not a list or value")
    return parsed


def parse_interaction(raw: Mapping[str, Any], options: ParseOptions) -> InteractionRecord:
    """An interaction, or `Rejected`."""
    f = _Fields(raw)
    customer = _customer_ref(f, options)
    external_id = f.required("external_id")
    record = InteractionRecord(
        customer=customer,
        source=options.source,
        external_id=external_id or "",
        occurred_at=f.time("occurred_at", options),
        channel=f.take("channel", _one_of(INTERACTION_CHANNELS, "channel")) or "",
        kind=f.take("kind", lambda v: std.code(v, "kind")) or "",
        properties=f.take("properties", _properties) or {},
    )
    f.done()
    return record


def _granted(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FieldError("granted", "invalid_boolean", f"{value!r} is not yes/no, true/false or 1/0")


def parse_consent(raw: Mapping[str, Any], options: ParseOptions) -> ConsentRecord:
    """A consent decision, or `Rejected`."""
    f = _Fields(raw)
    customer = _customer_ref(f, options)
    record = ConsentRecord(
        customer=customer,
        source=options.source,
        purpose=f.take("purpose", lambda v: std.code(v, "purpose")) or "",
        granted=bool(f.take("granted", _granted)),
        recorded_at=f.time("recorded_at", options, default_now=True),
    )
    f.done()
    return record
