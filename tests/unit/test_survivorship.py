from __future__ import annotations

from datetime import UTC, datetime

from domain.survivorship import FieldSource, Policy, Rule, decide

OLD = FieldSource("shop", datetime(2024, 1, 1, tzinfo=UTC))
NEW = FieldSource("web", datetime(2025, 1, 1, tzinfo=UTC))


def test_most_recent_takes_the_newer_value():
    d = decide("email", "a@x.io", OLD, "b@x.io", NEW, Policy())
    assert (d.value, d.origin, d.changed) == ("b@x.io", NEW, True)
    d = decide("email", "b@x.io", NEW, "a@x.io", OLD, Policy())
    assert (d.value, d.changed) == ("b@x.io", False)


def test_most_trusted_prefers_the_trusted_source_even_if_older():
    policy = Policy(Rule.MOST_TRUSTED, ("shop", "web"))
    d = decide("email", "a@x.io", OLD, "b@x.io", NEW, policy)
    assert (d.value, d.changed) == ("a@x.io", False)
    assert "shop is trusted over web" in d.reason


def test_non_empty_keeps_the_first_value_but_fills_gaps():
    policy = Policy(Rule.NON_EMPTY)
    assert decide("email", "a@x.io", OLD, "b@x.io", NEW, policy).value == "a@x.io"
    assert decide("email", None, None, "b@x.io", NEW, policy).value == "b@x.io"


def test_an_empty_value_never_wins():
    for rule in Rule:
        d = decide("phone", "+4930123456", OLD, None, NEW, Policy(rule))
        assert (d.value, d.changed) == ("+4930123456", False)
