"""Typed results for mutations: what was refused and why, field by field."""

from __future__ import annotations

from collections.abc import Iterable

import strawberry

from domain.standardize import FieldError


@strawberry.type(name="FieldError", description="Why one input field was refused.")
class FieldErrorType:
    field: str = strawberry.field(description="The input field, e.g. `email` or `items.3.amount`.")
    code: str = strawberry.field(description="Stable machine-readable reason.")
    message: str = strawberry.field(description="What is wrong, for a person.")

    @classmethod
    def from_domain(cls, error: FieldError, prefix: str = "") -> FieldErrorType:
        """The view of a domain field error, its field optionally prefixed (`items.3.`)."""
        return cls(field=prefix + error.field, code=error.code, message=error.message)


@strawberry.type(description="The input was refused; nothing was written.")
class ValidationFailed:
    errors: list[FieldErrorType]

    @classmethod
    def of(cls, errors: Iterable[FieldError], prefix: str = "") -> ValidationFailed:
        """A refusal listing `errors`."""
        return cls(errors=[FieldErrorType.from_domain(e, prefix) for e in errors])


@strawberry.type(description="The operation is not possible in the current state.")
class Conflict:
    code: str
    message: str
