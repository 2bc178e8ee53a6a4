"""Scalars whose parsing is ours: refused values get a readable message and a code.

Decimal: strawberry's accepts whatever ``decimal.Decimal`` parses, NaN and Infinity included,
and any size. Neither infinity nor NaN compares or stores (``NaN < 0`` raises), and a value
with a million digits costs seconds of CPU to convert before any database could refuse it.
So every Decimal input of the API is checked here, once, where it enters.
"""

from __future__ import annotations

from decimal import Decimal, DecimalException

import strawberry
from graphql import GraphQLError

# Larger than any amount or count CDM stores (numeric(16, 2) totals), small enough that every
# conversion and comparison is cheap.
MAX_DIGITS = 15  # digits before the decimal point
MAX_DECIMAL_PLACES = 15


def _refuse(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def parse_decimal(value: object) -> Decimal:
    """A finite Decimal of bounded size and precision from a string or a number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _refuse('a Decimal is sent as a string such as "12.50"')
    text = str(value).strip()
    if len(text) > 64:
        raise _refuse("a Decimal has at most 64 characters")
    try:
        number = Decimal(text)
    except DecimalException:  # not a number, or beyond even Decimal's exponent range
        raise _refuse(f"{text!r} is not a number CDM can use") from None
    if not number.is_finite():
        raise _refuse(f"{text!r} is not a finite number (NaN and Infinity are refused)")
    # Context-free checks only: arithmetic on 1e1000000 would itself overflow.
    if number and number.adjusted() >= MAX_DIGITS:
        raise _refuse(f"{text!r} is out of range: below 10^{MAX_DIGITS} in size")
    _, digits, exponent = number.as_tuple()
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if isinstance(exponent, int) and exponent + zeros < -MAX_DECIMAL_PLACES:
        raise _refuse(f"{text!r} has more than {MAX_DECIMAL_PLACES} decimal places")
    return number


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description='A decimal number, sent as a string ("12.50"): finite, below 10^15 in size, '
    f"at most {MAX_DECIMAL_PLACES} decimal places.",
    serialize=str,
    parse_value=parse_decimal,
)
