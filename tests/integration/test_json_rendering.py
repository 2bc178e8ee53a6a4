"""The database renders values exactly as the Python path serializes them (migration 0013)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.access import MaskKind, mask
from domain.commerce import PurchaseSummary
from domain.pagination import encode_cursor


async def test_timestamps_render_as_isoformat(pool):
    rng = random.Random(7)
    base = datetime(1900, 1, 1, tzinfo=UTC)
    values = [base, datetime(2026, 3, 29, 1, 0, 0, 100000, tzinfo=UTC)]
    values += [base + timedelta(microseconds=rng.randrange(10**16)) for _ in range(300)]
    values += [v.replace(microsecond=0) for v in values[:100]]
    rendered = await pool.fetchval(
        "SELECT array_agg(cdm_json_time(t)) FROM unnest($1::timestamptz[]) t", values
    )
    assert rendered == [v.isoformat() for v in values]


async def test_cursors_render_as_encode_cursor(pool):
    at = datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC)
    sql = """SELECT cdm_cursor('[' || $1::text || ',[["t",' || to_json(cdm_json_time($2))::text
             || '],["i",' || to_json($3::bigint::text)::text || ']]]')"""
    ordering = "purchases" * 12  # long enough for base64's line breaks
    got = await pool.fetchval(sql, f'"{ordering}"', at, 123456789)
    assert got == encode_cursor(ordering, (at, 123456789))


async def test_average_order_value_matches_decimal_quantize(pool):
    rng = random.Random(3)
    cases = [
        (Decimal(rng.randrange(-(10**6), 10**8)) / 100, rng.randrange(1, 40)) for _ in range(2000)
    ]
    cases += [(Decimal("0.05"), 2), (Decimal("0.15"), 2), (Decimal("-0.05"), 2), (Decimal("7"), 0)]
    got = await pool.fetch(
        "SELECT cdm_per_order(t, n)::text AS v FROM unnest($1::numeric[], $2::bigint[]) AS x(t, n)",
        [t for t, _ in cases], [n for _, n in cases],
    )  # fmt: skip
    expected = [
        PurchaseSummary(1, 1, n, t, None, None, 0, 0, ()).average_order_value for t, n in cases
    ]
    assert [r["v"] for r in got] == [None if e is None else str(e) for e in expected]


async def test_masks_match_the_domain_rule(pool):
    values = ["anna@example.com", "@x", "a@b@c", "no-at", "", "+49 30 1234567", "12-34",
              "Ünal", "x", "555 123", "é@é.fr"]  # fmt: skip
    for kind, function in (
        (MaskKind.NAME, "cdm_mask_name"), (MaskKind.EMAIL, "cdm_mask_email"),
        (MaskKind.PHONE, "cdm_mask_phone"), (MaskKind.TEXT, "cdm_mask_text"),
    ):  # fmt: skip
        got = await pool.fetchval(
            f"SELECT array_agg({function}(v)) FROM unnest($1::text[]) v", values
        )
        assert got == [mask(kind, v) for v in values], kind
