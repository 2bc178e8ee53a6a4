"""Merge plans: survivorship per field, what moves, request checks, undo checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from domain.merging import (
    UNRECORDED,
    Duplicate,
    MergeRequest,
    Profile,
    RowCounts,
    UnmergeState,
    check_exists,
    parse_request,
    plan_merge,
    unmerge_conflict,
)
from domain.survivorship import FieldSource, Policy, Rule

T0 = datetime(2025, 1, 1, tzinfo=UTC)
RECENT = Policy(Rule.MOST_RECENT)


def profile(pk: int, updated: datetime = T0, **values) -> Profile:
    sources = values.pop("sources", {})
    row = {
        "id": pk, "first_name": None, "last_name": None, "email": None, "phone": None,
        "country": None, "birth_date": None, "created_at": T0 - timedelta(days=pk),
        "updated_at": updated,
        "field_sources": {f: {"source": s, "at": at.isoformat()} for f, (s, at) in sources.items()},
        **values,
    }  # fmt: skip
    return Profile.from_row(row)


def plan(survivor: Profile, *merged: Profile, policy: Policy = RECENT, **kwargs):
    return plan_merge(
        survivor, list(merged), kwargs.get("totals", {}), kwargs.get("aliases", {}),
        kwargs.get("duplicates", []), policy,
    )  # fmt: skip


def field(p, name: str):
    return next(f for f in p.fields if f.field == name)


def test_recorded_sources_decide_under_the_policy():
    s = profile(1, email="old@x.de", sources={"email": ("crm", T0)})
    m = profile(2, email="new@x.de", sources={"email": ("shop", T0 + timedelta(days=1))})
    recent = field(plan(s, m), "email")
    assert (recent.value, recent.customer_id, recent.changed) == ("new@x.de", 2, True)
    assert recent.origin == FieldSource("shop", T0 + timedelta(days=1))
    assert recent.reason == "most_recent: newer observation"
    assert [c.value for c in recent.candidates] == ["old@x.de", "new@x.de"]

    trusted = field(plan(s, m, policy=Policy(Rule.MOST_TRUSTED, ("crm", "shop"))), "email")
    assert (trusted.value, trusted.customer_id, trusted.changed) == ("old@x.de", 1, False)
    assert trusted.reason == "most_trusted: crm is trusted over shop"

    first = field(plan(s, m, policy=Policy(Rule.NON_EMPTY)), "email")
    assert first.value == "old@x.de"
    assert first.reason == "non_empty: first value stays"


def test_empty_fields_are_filled_and_nobody_having_a_value_is_said():
    p = plan(profile(1, first_name="Ada"), profile(2, phone="+4930123456"))
    assert (field(p, "phone").value, field(p, "phone").reason) == ("+4930123456", "field was empty")
    assert field(p, "first_name").reason == "only the survivor has a value"
    assert field(p, "email").reason == "no customer has a value"
    assert field(p, "email").customer_id is None


def test_unrecorded_values_compete_by_their_customers_updated_at_and_are_not_stored():
    s = profile(1, T0, email="old@x.de")
    m = profile(2, T0 + timedelta(days=1), email="new@x.de")
    p = plan(s, m)
    email = field(p, "email")
    assert (email.value, email.customer_id, email.origin) == ("new@x.de", 2, None)
    assert p.field_sources() == {}
    # Under most_trusted an unrecorded value ranks below every listed source.
    s2 = profile(1, T0, email="crm@x.de", sources={"email": ("crm", T0)})
    trusted = field(plan(s2, m, policy=Policy(Rule.MOST_TRUSTED, ("crm",))), "email")
    assert trusted.value == "crm@x.de"
    assert f"over {UNRECORDED}" in trusted.reason


def test_on_a_tie_the_survivor_keeps_its_value():
    p = plan(profile(1, first_name="Ada"), profile(2, first_name="Augusta"))
    name = field(p, "first_name")
    assert (name.value, name.customer_id, name.changed) == ("Ada", 1, False)
    assert name.reason == "equally recent: customer 1's value stays (listed first)"


def test_the_same_value_takes_a_recorded_provenance():
    s = profile(1, email="a@x.de")
    m = profile(2, email="a@x.de", sources={"email": ("crm", T0)})
    p = plan(s, m)
    assert field(p, "email").origin == FieldSource("crm", T0)
    assert field(p, "email").changed is False
    assert p.field_sources() == {"email": {"source": "crm", "at": T0.isoformat()}}


def test_merged_customers_compete_in_request_order():
    s = profile(1)
    a = profile(2, email="a@x.de", sources={"email": ("web", T0)})
    b = profile(3, email="b@x.de", sources={"email": ("web", T0 + timedelta(hours=1))})
    assert field(plan(s, a, b), "email").value == "b@x.de"  # newer
    assert field(plan(s, a, b, policy=Policy(Rule.NON_EMPTY)), "email").value == "a@x.de"
    assert field(plan(s, b, a, policy=Policy(Rule.NON_EMPTY)), "email").value == "b@x.de"


def test_field_sources_keep_other_entries_and_drop_overridden_ones():
    s = profile(1, email="old@x.de",
                sources={"email": ("crm", T0), "first_name": ("crm", T0)})  # fmt: skip
    s = Profile(s.id, {**s.values, "first_name": "Ada"}, s.origins, s.created_at, s.updated_at,
                {**s.raw_sources, "nickname": {"source": "x", "at": T0.isoformat()}})  # fmt: skip
    m = profile(2, T0 + timedelta(days=2), email="new@x.de")  # unrecorded but newer
    assert plan(s, m).field_sources() == {
        "first_name": {"source": "crm", "at": T0.isoformat()},
        "nickname": {"source": "x", "at": T0.isoformat()},
    }


def test_moves_dropped_duplicates_evidence_and_created_at():
    s = profile(1, first_name="Ada", last_name="King", email="a@x.de")
    m = profile(2, first_name="Ada", last_name="King", email="a@x.de")
    odd = profile(3, first_name="Bob", last_name="Stone", birth_date=date(1990, 1, 1))
    s = Profile(1, {**s.values, "birth_date": date(1980, 1, 1)}, {}, s.created_at, s.updated_at)
    dup = Duplicate("purchases", "shop / o-1", 1, 10, 2, 11)
    p = plan(s, m, odd, totals={2: RowCounts(3, 2, 1, 1)}, aliases={2: 4}, duplicates=[dup])
    assert p.moves[0].moved == RowCounts(2, 2, 1, 1)
    assert p.moves[0].dropped == RowCounts(1, 0, 0, 0)
    assert p.moves[0].aliases == 4
    assert p.moves[1].moved == RowCounts()
    assert p.created_at == T0 - timedelta(days=3)
    assert [c.score for c in p.evidence] == [1.0, 0.0]
    assert p.warnings == ("customer 3: different birth dates from the survivor",)
    recorded = p.to_json()
    assert recorded["duplicates"] == [dup.to_json()]
    assert recorded["moves"][0]["moved"] == {
        "purchases": 2, "interactions": 2, "identities": 1, "consents": 1,
    }  # fmt: skip
    assert field(p, "birth_date").to_json()["value"] == "1980-01-01"
    assert p.evidence_json()[0]["evidence"][0] == {
        "field": "name", "aValue": "Ada King", "bValue": "Ada King", "similarity": 1.0,
        "kind": "exact",
    }  # fmt: skip


def test_unreadable_field_sources_count_as_unrecorded():
    p = Profile.from_row({
        "id": 1, "first_name": "A", "last_name": None, "email": None, "phone": None,
        "country": None, "birth_date": None, "created_at": T0, "updated_at": T0,
        "field_sources": {"first_name": {"source": "crm"}, "email": "nonsense"},
    })  # fmt: skip
    assert p.origins == {}


@pytest.mark.parametrize(
    ("survivor", "merged", "errors"),
    [
        ("1", [], [("mergedIds", "empty")]),
        ("x", ["2"], [("survivorId", "invalid_id")]),
        ("1", ["2", "1", "2", "-3"], [
            ("mergedIds.1", "is_survivor"), ("mergedIds.2", "duplicate"),
            ("mergedIds.3", "invalid_id"),
        ]),
        ("1", [str(i) for i in range(2, 60)], [("mergedIds", "too_many")]),
    ],
)  # fmt: skip
def test_parse_request_refusals(survivor, merged, errors):
    request, found = parse_request(survivor, merged)
    assert request is None
    assert [(e.field, e.code) for e in found] == errors


def test_parse_request_and_existence():
    request, errors = parse_request(" 1", ["3", "2"])
    assert errors == []
    assert request == MergeRequest(1, (3, 2))
    assert request.all_ids == [1, 3, 2]
    found = check_exists(request, existing={1, 2}, aliases={3: (7, 9)})
    assert [(e.field, e.code, e.message) for e in found] == [
        ("mergedIds.0", "already_merged", "customer 3 was merged into customer 7 (merge 9)"),
    ]
    found = check_exists(MergeRequest(5, (2,)), existing={2}, aliases={})
    assert [(e.field, e.code) for e in found] == [("survivorId", "unknown_customer")]


def state(**changes) -> UnmergeState:
    fields = {
        "merge_id": 4, "survivor_id": 1, "merged_ids": (2,), "undone_at": None,
        "later_merge_id": None, "survivor_exists": True, "survivor_unchanged": True,
        "ids_taken": (), "rows_missing": 0, **changes,
    }  # fmt: skip
    return UnmergeState(**fields)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"undone_at": T0}, "already_undone"),
        ({"later_merge_id": 9}, "later_merge"),
        ({"survivor_exists": False, "survivor_unchanged": False}, "survivor_missing"),
        ({"ids_taken": (2,)}, "ids_taken"),
        ({"survivor_unchanged": False}, "survivor_changed"),
        ({"rows_missing": 3}, "rows_changed"),
    ],
)
def test_unmerge_conflicts(changes, code):
    conflict = unmerge_conflict(state(**changes))
    assert conflict is not None
    assert conflict.code == code


def test_unmerge_possible():
    assert unmerge_conflict(state()) is None
    assert "undo merge 9 first" in unmerge_conflict(state(later_merge_id=9)).message
