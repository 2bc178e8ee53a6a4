"""What a served version takes from its registry tags: the horizon it was trained on and the
calibration of its probabilities; versions recorded before either serve as they always did."""

from __future__ import annotations

import numpy as np
import pytest

from ml.calibration import Calibration
from ml.serving.heads import Head
from ml.serving.models import ServedModel
from ml.serving.scoring import churn_probabilities, next_purchase_arrays


def served(task, tags: dict[str, str]) -> ServedModel:
    heads = {head: Head(booster) for head, booster in task.heads.items()}
    return ServedModel(task.task, f"cdm-{task.task}", 1, "run", heads, tags)


def test_the_wait_is_capped_at_the_version_s_own_horizon(trained):
    task = trained["next_purchase"]
    x = np.vstack([task.input_example] * 2)
    raw_days = task.heads["days"].predict(x)
    short = served(task, {"horizon_days": "10.0"})
    _, _, days = next_purchase_arrays(short, x)
    assert short.horizon_days == 10.0
    assert days == pytest.approx(np.clip(raw_days, 0.0, 10.0))
    assert days.max() <= 10.0
    old = served(task, {})  # recorded before the horizon was tagged: trained on 90 days
    assert old.horizon_days == 90.0
    assert next_purchase_arrays(old, x)[2] == pytest.approx(np.clip(raw_days, 0.0, 90.0))


def test_probabilities_go_through_the_version_s_calibration(trained):
    task = trained["churn"]
    x = task.input_example
    raw = task.heads["churn"].predict(x)
    shifted = Calibration("platt", (1.0, 1.0))  # one more unit of log-odds
    model = served(task, {"calibration.churn": shifted.to_json()})
    expected = 1 / (1 + np.exp(-(np.log(raw / (1 - raw)) + 1.0)))
    assert churn_probabilities(model, x) == pytest.approx(expected)
    assert churn_probabilities(served(task, {}), x) == pytest.approx(raw)


def test_expected_counts_go_through_the_version_s_scale(trained):
    task = trained["next_purchase"]
    x = task.input_example
    raw = task.heads["count"].predict(x)
    model = served(task, {"calibration.count": Calibration("scale", (1.25,)).to_json()})
    assert next_purchase_arrays(model, x)[1] == pytest.approx(1.25 * raw)
    assert next_purchase_arrays(served(task, {}), x)[1] == pytest.approx(raw)
