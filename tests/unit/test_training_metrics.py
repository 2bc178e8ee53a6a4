"""Evaluation metrics against brute-force definitions and hand-computed answers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ml.training.metrics import (
    binary_metrics,
    concordance_index,
    expected_calibration_error,
    ranking_metrics,
)


def brute_force_c_index(time, observed, predicted):
    concordant = comparable = 0.0
    for i, j in itertools.permutations(range(len(time)), 2):
        if observed[i] and time[i] < time[j]:
            comparable += 1
            if predicted[i] < predicted[j]:
                concordant += 1
            elif predicted[i] == predicted[j]:
                concordant += 0.5
    return concordant / comparable


@pytest.mark.parametrize("seed", range(5))
def test_concordance_index_matches_the_definition_with_ties_and_censoring(seed):
    rng = np.random.default_rng(seed)
    n = 60
    time = rng.integers(0, 20, n).astype(float)  # many tied times
    observed = rng.random(n) < 0.6
    time[~observed] = 20.0  # censored at the horizon, as in training
    predicted = np.round(time + rng.normal(0, 5, n))  # tied predictions too
    assert concordance_index(time, observed, predicted) == pytest.approx(
        brute_force_c_index(time, observed, predicted)
    )


def test_concordance_extremes():
    time = np.array([1.0, 2.0, 3.0, 4.0])
    observed = np.array([True, True, True, False])
    assert concordance_index(time, observed, time) == 1.0
    assert concordance_index(time, observed, -time) == 0.0


def test_ranking_metrics_by_hand():
    recommended = [np.array([1, 2, 3]), np.array([4, 5, 6]), np.array([7, 8, 9])]
    relevant = [{2}, {9, 4}, set()]  # the third user bought nothing: skipped
    result = ranking_metrics(recommended, relevant, k=3)
    assert result["users"] == 2
    assert result["precision_at_3"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert result["recall_at_3"] == pytest.approx((1 + 1 / 2) / 2)
    ndcg_1 = (1 / math.log2(3)) / 1.0
    ndcg_2 = 1.0 / (1 + 1 / math.log2(3))
    assert result["ndcg_at_3"] == pytest.approx((ndcg_1 + ndcg_2) / 2)


def test_calibration_error_is_zero_when_rates_match_and_reports_the_gap_otherwise():
    y = np.array([1, 0, 0, 0, 0] * 20, dtype=float)
    assert expected_calibration_error(y, np.full(100, 0.2)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.3)
    metrics = binary_metrics(y, np.full(100, 0.2))
    assert metrics["roc_auc"] == 0.5
    assert metrics["brier"] == pytest.approx(0.16)
    assert metrics["base_rate"] == pytest.approx(0.2)
