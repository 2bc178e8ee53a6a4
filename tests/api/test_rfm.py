"""RFM: quintile scores that respect ties, named segments, and a snapshot served per customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.rfm import RfmSegment, segment_of
from tests.factories import add_customer, add_purchase
from tests.http_client import data, gql

AS_OF = datetime(2025, 7, 1, tzinfo=UTC)
REFRESH = """mutation($at: DateTime) { refreshRfm(asOf: $at) { asOf customers
  segments { segment customers share monetary } } }"""
RFM = """query($id: ID!) { customer(id: $id) { rfm { asOf recencyDays frequency monetary
  r f m code segment } } }"""


def test_every_score_pair_has_exactly_one_segment():
    found = {segment_of(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert found == set(RfmSegment)  # all eleven are reachable
    assert segment_of(5, 5) is RfmSegment.CHAMPIONS
    assert segment_of(5, 1) is RfmSegment.NEW
    assert segment_of(1, 1) is RfmSegment.LOST
    assert segment_of(1, 5) is RfmSegment.CANT_LOSE_THEM
    with pytest.raises(ValueError, match="1 to 5"):
        segment_of(0, 3)


async def test_scores_with_ties_and_single_purchases(client, db):
    def ago(days: float) -> datetime:
        return AS_OF - timedelta(days=days)

    people = {name: await add_customer(db, first_name=name) for name in "ABCDEFG"}
    await add_purchase(db, people["A"], ago(0.5), "10.00")  # recent, once, little
    for n, amount in enumerate(("30.00", "30.00", "40.00")):  # three orders, a month ago
        await add_purchase(db, people["B"], ago(30 + n * 10), amount)
    await add_purchase(db, people["C"], ago(181), "50.00")  # C and D: identical: a tie
    await add_purchase(db, people["D"], ago(181), "50.00")
    for n in range(5):  # five orders, 500 in all, recent
        await add_purchase(db, people["E"], ago(6 + n), "100.00")
    await add_purchase(db, people["F"], AS_OF + timedelta(days=1), "99.00")  # after as-of
    # G never bought.

    summary = data(await gql(client, REFRESH, {"at": AS_OF.isoformat()}))["refreshRfm"]
    assert summary["customers"] == 5  # F and G have no purchase before the as-of time
    sizes = {s["segment"]: s["customers"] for s in summary["segments"]}
    assert sizes == {
        **{s.name: 0 for s in RfmSegment}, "NEW": 1, "LOYAL": 2, "LOST": 2,
    }  # fmt: skip

    async def rfm(name: str) -> dict | None:
        return data(await gql(client, RFM, {"id": str(people[name])}))["customer"]["rfm"]

    a, b, c, d, e = [await rfm(n) for n in "ABCDE"]
    assert (a["recencyDays"], a["frequency"], a["monetary"]) == (0, 1, "10.00")
    assert [x["code"] for x in (a, b, c, d, e)] == ["511", "344", "112", "112", "455"]
    assert c == d  # equal values, equal scores, whatever the row order
    assert [x["segment"] for x in (a, b, c, e)] == ["NEW", "LOYAL", "LOST", "LOYAL"]
    assert b["frequency"] == 3
    assert b["recencyDays"] == 30
    assert a["asOf"].startswith("2025-07-01T00:00:00")
    assert await rfm("F") is None
    assert await rfm("G") is None


async def test_a_lone_customer_and_an_empty_database(client, db):
    empty = data(await gql(client, REFRESH, {"at": AS_OF.isoformat()}))["refreshRfm"]
    assert (empty["customers"], {s["customers"] for s in empty["segments"]}) == (0, {0})
    only = await add_customer(db)
    await add_purchase(db, only, AS_OF - timedelta(days=3), "20.00")
    one = data(await gql(client, REFRESH, {"at": AS_OF.isoformat()}))["refreshRfm"]
    assert one["customers"] == 1
    rfm = data(await gql(client, RFM, {"id": str(only)}))["customer"]["rfm"]
    assert rfm["code"] == "111"  # nobody to be better than: the lowest score, by the rule
