"""Validation and standardisation rules, shared by bulk import and the write API.

Each rule turns a raw value into its one standard form or raises `FieldError` with a reason a
person can act on. A value that cannot be standardised is rejected, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

import pycountry

from domain.times import SUPPORTED_FROM


@dataclass(frozen=True, slots=True)
class FieldError(Exception):
    """Why one field of one record was refused."""

    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


_SPACES = re.compile(r"\s+")
# strptime formats that fromisoformat reads identically and several times faster.
_ISO_FORMATS = {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%Y-%m-%d %H:%M"}
# Common names for countries that ISO 3166 spells otherwise; anything else must match exactly.
_COUNTRY_ALIASES = {"UK": "GB", "ENGLAND": "GB", "GREAT BRITAIN": "GB", "USA": "US",
                    "U.S.A.": "US", "U.S.": "US", "HOLLAND": "NL"}  # fmt: skip
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def collapse(raw: str | None) -> str | None:
    """Trimmed, inner whitespace collapsed to single spaces; None when nothing is left."""
    if raw is None:
        return None
    text = _SPACES.sub(" ", str(raw)).strip()
    return text or None


def name(raw: str | None, field: str = "name") -> str | None:
    """A person's name part: whitespace collapsed, at most 100 characters."""
    text = collapse(raw)
    if text is not None and len(text) > 100:
        raise FieldError(field, "too_long", "longer than 100 characters")
    if text is not None and any(ord(ch) < 32 for ch in text):
        raise FieldError(field, "invalid", "contains control characters")
    return text


def email(raw: str | None, field: str = "email") -> str | None:
    """A syntactically valid address, lower-cased (addresses are matched case-insensitively)."""
    text = collapse(raw)
    if text is None:
        return None
    # Late: email_validator (and the DNS and IDNA modules it brings) serves writes and imports
    # only; a server's start-up and its reads need none of it.
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldError(
            field, "invalid_email", f"{text!r} is not a valid e-mail address: {exc}"
        ) from None
    return checked.normalized.lower()


def phone(raw: str | None, default_region: str | None = None, field: str = "phone") -> str | None:
    """The number in E.164 (+4930123456); national numbers need a default region."""
    text = collapse(raw)
    if text is None:
        return None
    import phonenumbers  # late, as email_validator above: its metadata is for writes only

    try:
        parsed = phonenumbers.parse(text, default_region.upper() if default_region else None)
    except phonenumbers.NumberParseException:
        hint = "" if default_region else " (national numbers need a default region)"
        raise FieldError(field, "invalid_phone", f"{text!r} is not a phone number{hint}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise FieldError(field, "invalid_phone", f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=4096)
def _country_code(text: str) -> str | None:
    upper = text.upper()
    if upper in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[upper]
    try:
        return pycountry.countries.lookup(text).alpha_2
    except LookupError:
        return None


def country(raw: str | None, field: str = "country") -> str | None:
    """ISO 3166-1 alpha-2 from a code (DE, DEU, 276) or an English name (Germany)."""
    text = collapse(raw)
    if text is None:
        return None
    code = _country_code(text)
    if code is None:
        raise FieldError(field, "invalid_country", f"{text!r} is not a country code or name")
    return code


@lru_cache(maxsize=512)
def _currency_code(text: str) -> str | None:
    found = pycountry.currencies.get(alpha_3=text.upper())
    return found.alpha_3 if found else None


def currency(raw: str | None, default: str | None = None, field: str = "currency") -> str:
    """An ISO 4217 code such as EUR; `default` when the value is missing."""
    text = collapse(raw) or default
    if text is None:
        raise FieldError(field, "missing", "no currency and no default currency")
    code = _currency_code(text)
    if code is None:
        raise FieldError(field, "invalid_currency", f"{text!r} is not an ISO 4217 currency code")
    return code


def amount(raw: object, field: str = "amount") -> Decimal:
    """A non-negative money amount with at most 2 decimals."""
    try:
        value = Decimal(str(raw).strip().replace(",", ".")) if raw is not None else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise FieldError(field, "invalid_number", f"{raw!r} is not a number")
    if value < 0:
        raise FieldError(field, "negative", "must not be negative")
    if value != value.quantize(Decimal("0.01")):
        raise FieldError(field, "too_precise", "has more than 2 decimals")
    return value.quantize(Decimal("0.01"))


def quantity(raw: object, field: str = "quantity") -> int:
    """A whole quantity above zero."""
    try:
        value = Decimal(str(raw).strip()) if raw is not None and str(raw).strip() else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value != value.to_integral_value():
        raise FieldError(field, "invalid_integer", f"{raw!r} is not a whole number")
    if value <= 0:
        raise FieldError(field, "not_positive", "must be greater than 0")
    return int(value)


def code(raw: str | None, field: str) -> str:
    """A machine name such as a kind or purpose: lower-case letters, digits, underscores."""
    text = collapse(raw)
    normalised = text.lower().replace(" ", "_").replace("-", "_") if text else None
    if normalised is None or not _CODE.match(normalised):
        raise FieldError(field, "invalid_code", f"{raw!r} must be like 'email_marketing'")
    return normalised


def source(raw: str | None, field: str = "source") -> str:
    """A source-system name such as 'crm' or 'shop.de'."""
    text = collapse(raw)
    normalised = text.lower() if text else None
    if normalised is None or not _SOURCE.match(normalised):
        raise FieldError(field, "invalid_source", f"{raw!r} must be like 'crm' or 'shop.de'")
    return normalised


@dataclass(frozen=True, slots=True)
class TimeRules:
    """How timestamps are read: an optional strptime format, the zone of naive values, and
    how far in the future a value may lie (clock skew between systems)."""

    format: str | None = None
    naive_zone: str | None = "UTC"  # None: a timestamp without a zone is refused
    future_tolerance: timedelta = timedelta(minutes=5)


def timestamp(
    raw: object, now: datetime, rules: TimeRules = TimeRules(), field: str = "timestamp"
) -> datetime:
    """An aware UTC datetime; naive values are read in `rules.naive_zone`; the future refused."""
    if isinstance(raw, datetime):
        value = raw
    else:
        text = collapse(None if raw is None else str(raw))
        if text is None:
            raise FieldError(field, "missing", "no timestamp")
        try:
            if rules.format and rules.format not in _ISO_FORMATS:
                value = datetime.strptime(text, rules.format)
            else:
                value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            expected = rules.format or "ISO 8601, e.g. 2024-05-01T12:00:00Z"
            raise FieldError(
                field, "invalid_timestamp", f"{text!r} does not match {expected}"
            ) from None
    if value.tzinfo is None:
        if rules.naive_zone is None:
            raise FieldError(field, "missing_zone", "needs a time zone, e.g. 2024-05-01T12:00:00Z")
        value = value.replace(tzinfo=_zone(rules.naive_zone))
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, or year 9999 west of it
        value = SUPPORTED_FROM - timedelta(days=1)
    if value < SUPPORTED_FROM:
        # Far outside any business's history (year 1 reaches PostgreSQL as -infinity in
        # queries over it): a mistake in the data, never a fact to keep.
        raise FieldError(
            field, "out_of_range", f"lies before {SUPPORTED_FROM:%Y-%m-%d}; check the date"
        )
    if value > now + rules.future_tolerance:
        raise FieldError(field, "in_future", f"{value.isoformat()} is in the future")
    return value


def birth_date(raw: object, today: date, field: str = "birth_date") -> date | None:
    """A plausible birth date (1900 to today)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, datetime):
        value = raw.date()
    elif isinstance(raw, date):
        value = raw
    else:
        try:
            value = date.fromisoformat(str(raw).strip())
        except ValueError:
            raise FieldError(
                field, "invalid_date", f"{raw!r} is not a date like 1980-04-30"
            ) from None
    if not date(1900, 1, 1) <= value <= today:
        raise FieldError(field, "out_of_range", f"{value} is not a plausible birth date")
    return value


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return UTC if name.upper() == "UTC" else ZoneInfo(name)


MAX_TEXT = 500  # characters of one text field: names, ids, SKUs (keeps index rows in bounds)


def text_problem(value: object, field: str) -> FieldError | None:
    """Why a raw value cannot be stored as text: a NUL character (PostgreSQL cannot store it,
    in JSON documents either) or a text field longer than MAX_TEXT; None when it can."""
    if isinstance(value, str):
        if "\x00" in value:
            return FieldError(field, "invalid_character", "must not contain NUL (U+0000)")
        if len(value) > MAX_TEXT:
            return FieldError(field, "too_long", f"at most {MAX_TEXT} characters")
        return None
    if isinstance(value, dict | list) and has_nul(value):
        return FieldError(field, "invalid_character", "must not contain NUL (U+0000)")
    return None


def has_nul(value: object) -> bool:
    """Whether a string anywhere in ``value`` (keys of mappings included) holds a NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False
