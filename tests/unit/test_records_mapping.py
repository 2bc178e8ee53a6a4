"""Import mapping rules: every target a parser reads can be mapped, a mapped target wins, and
a consumed source column is not read under its own name too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from domain import records as rec
from ingestion.importer import ENTITIES
from ingestion.readers import remap

OPTIONS = rec.ParseOptions(source="shop", now=datetime(2025, 6, 1, tzinfo=UTC))
PARSERS = {
    "customers": rec.parse_customer, "products": rec.parse_product,
    "purchases": rec.parse_purchase, "interactions": rec.parse_interaction,
    "consents": rec.parse_consent,
}  # fmt: skip


class _Reads(dict):
    """An empty row that remembers which fields a parser asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.append(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())


@pytest.mark.parametrize("entity", ENTITIES)
def test_the_documented_targets_are_what_the_parser_reads(entity):
    row = _Reads()
    with pytest.raises(rec.Rejected):
        PARSERS[entity](row, OPTIONS)
    assert set(row.asked) == set(rec.TARGETS[entity])


def test_a_mapped_target_wins_and_its_source_is_consumed():
    row = {"customer_id": "7", "email": "x@example.com", "Mail": "a@example.com"}
    out = remap(row, {"customer_external_id": "customer_id", "email": "Mail"})
    assert out == {"customer_external_id": "7", "email": "a@example.com"}
    # The same column may feed two targets; mapping a column to its own name keeps it.
    assert remap({"id": "1"}, {"id": "id", "external_id": "id"}) == {"id": "1", "external_id": "1"}


def test_a_customer_named_twice_is_ambiguous_never_resolved():
    raw = {"customer_id": "7", "customer_external_id": "S-7", "external_id": "P",
           "amount": "1", "currency": "EUR", "purchased_at": "2025-01-01T00:00:00Z"}  # fmt: skip
    with pytest.raises(rec.Rejected) as refused:
        rec.parse_purchase(raw, OPTIONS)
    (error,) = refused.value.errors
    assert (error.field, error.code) == ("customer_id", "ambiguous_customer")


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", "\u00b2", "\u0661", "9" * 20])
def test_an_id_that_cannot_name_a_customer_is_refused(value):
    raw = {"customer_id": value, "external_id": "P", "amount": "1", "currency": "EUR",
           "purchased_at": "2025-01-01T00:00:00Z"}  # fmt: skip
    with pytest.raises(rec.Rejected) as refused:
        rec.parse_purchase(raw, OPTIONS)
    assert [(e.field, e.code) for e in refused.value.errors] == [("customer_id", "invalid_id")]
