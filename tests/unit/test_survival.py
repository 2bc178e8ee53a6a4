"""The hazard form's arithmetic (ml/survival.py): from step hazards and rates to the outlook
over any horizon, checked against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.survival import STEP_DAYS, outlook, with_step


def constant(value: float):
    return lambda rows: np.full(len(rows), value)


def test_a_constant_hazard_gives_the_geometric_survival_and_the_exponential_wait():
    x = np.zeros((3, 2))
    h, horizon = 0.2, 75.0  # two whole steps and half of a third
    seen = outlook(constant(h), x, horizon, steps_seen=6, rate=constant(0.5))
    assert seen.p_none == pytest.approx(np.full(3, (1 - h) ** 2.5))
    assert seen.p30 == pytest.approx(np.full(3, h))
    assert seen.count == pytest.approx(np.full(3, 0.5 * 2.5))
    # A constant hazard per step is an exponential wait: E[min(T, H)] = (1 - e^{-lH}) / l.
    rate = -math.log1p(-h) / STEP_DAYS
    assert seen.wait == pytest.approx(np.full(3, (1 - math.exp(-rate * horizon)) / rate))


def test_steps_beyond_those_seen_are_read_at_the_last_one():
    asked: list[float] = []

    def hazard(rows: np.ndarray) -> np.ndarray:
        step = rows[0, -1]
        asked.append(step)
        return np.where(rows[:, -1] == 0, 0.5, 0.1)

    seen = outlook(hazard, np.zeros((2, 1)), 12 * STEP_DAYS, steps_seen=2)
    assert asked == [0.0, 1.0]  # two forests' worth of predictions for twelve steps
    assert seen.p_none == pytest.approx(np.full(2, 0.5 * 0.9**11))
    assert seen.count == pytest.approx(np.zeros(2))  # no rate booster: no count


def test_the_step_index_is_the_last_input_column():
    rows = with_step(np.arange(6.0).reshape(3, 2), 4)
    assert rows.tolist() == [[0, 1, 4], [2, 3, 4], [4, 5, 4]]


def test_a_wait_is_never_longer_than_the_horizon_and_certain_orders_come_at_once():
    seen = outlook(constant(1.0), np.zeros((1, 1)), 400.0, steps_seen=3)
    assert seen.p_none[0] == pytest.approx(0.0, abs=1e-6)
    assert 0 <= seen.wait[0] < 2.0
    never = outlook(constant(0.0), np.zeros((1, 1)), 400.0, steps_seen=3)
    assert never.wait[0] == pytest.approx(400.0)
    assert never.p_none[0] == pytest.approx(1.0)
