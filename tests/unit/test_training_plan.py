"""Rolling cutoffs never let a training label window reach the evaluation window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ml.training.plan import TrainingPlan, parse_duration

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def test_cutoffs_are_time_ordered_and_label_windows_end_by_the_evaluation_cutoff():
    plan = TrainingPlan(
        as_of=AS_OF, horizon=timedelta(days=90), training_cutoffs=3, step=timedelta(days=30)
    )
    assert plan.evaluation_cutoff == AS_OF - timedelta(days=90)
    assert plan.cutoffs == [  # 240, 210 and 180 days before as_of
        datetime(2026, 3, 6, tzinfo=UTC),
        datetime(2026, 4, 5, tzinfo=UTC),
        datetime(2026, 5, 5, tzinfo=UTC),
    ]
    assert plan.cutoffs == sorted(plan.cutoffs)
    # Every training window [cutoff, cutoff + horizon) ends by the evaluation cutoff, and the
    # evaluation window ends exactly at as_of: nothing after as_of is ever read.
    assert all(c + plan.horizon <= plan.evaluation_cutoff for c in plan.cutoffs)
    assert plan.cutoffs[-1] + plan.horizon == plan.evaluation_cutoff
    assert plan.evaluation_cutoff + plan.horizon == AS_OF


@pytest.mark.parametrize(("text", "days"), [("90d", 90), ("12w", 84), (" 7D ", 7), ("1d", 1)])
def test_durations(text, days):
    assert parse_duration(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["90", "0d", "-3d", "3m", "d", "1.5d"])
def test_bad_durations_say_what_is_expected(text):
    with pytest.raises(ValueError, match="is not a duration like 90d or 12w"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"as_of": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"training_cutoffs": 0}, "between 1 and 24"),
        ({"max_customers": 10}, "at least 100"),
        ({"horizon": timedelta(hours=1)}, "at least one day"),
    ],
)
def test_bad_plans_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainingPlan(**{"as_of": AS_OF, **overrides})
