"""Any horizon from one model: a discrete-time hazard over 30-day steps, shared by training
and serving.

A model that learns "no order within h" directly needs, at every training cutoff, a whole
horizon of outcomes after it: nine months of history cannot support a 39-week question. The
hazard form splits the question into steps. From a cutoff, step ``k`` covers days
``[30k, 30k + 30)``; two boosters read a customer's features plus ``k``
(:data:`STEP_FEATURE`):

* ``hazard``: P(the first order after the cutoff falls in step k | none before it);
* ``rate``:   expected orders placed in step k.

Then, for any horizon h, P(no order within h) = prod_k (1 - hazard_k), the expected count is
sum_k rate_k, the probability of an order within 30 days is hazard_0, and the expected wait
(capped at h, the restricted mean) integrates the survival curve, with a constant hazard
within each step. Steps beyond the furthest one training observed (``steps_seen``) are read
at that last step: a constant hazard past the data, stated in the model's metadata, never
a guess dressed as an observation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

STEP_DAYS = 30.0
STEP_FEATURE = "steps_ahead"
HAZARD = "hazard"  # the method's name, as a version records it (tag ``method``)

Predict = Callable[["np.ndarray"], "np.ndarray"]


def with_step(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` with the step index ``k`` appended as the last column (the boosters' input)."""
    import numpy as np

    return np.column_stack([x, np.full(len(x), float(k))])


@dataclass(frozen=True)
class Outlook:
    """Per customer, over a horizon: P(no order), P(an order within 30 days), expected
    orders, and the expected wait until the next order capped at the horizon."""

    p_none: np.ndarray
    p30: np.ndarray
    count: np.ndarray
    wait: np.ndarray


def outlook(
    hazard: Predict,
    x: np.ndarray,
    horizon_days: float,
    *,
    steps_seen: int,
    rate: Predict | None = None,
) -> Outlook:
    """The outlook over ``horizon_days`` for each row of ``x`` (features as of the cutoff).

    ``hazard`` returns calibrated step hazards for rows of :func:`with_step`; ``rate`` expected
    orders per step (omitted: the count is not computed and is zero). Each step index beyond
    ``steps_seen - 1`` is read at that last one, so a forest is asked at most ``steps_seen``
    times whatever the horizon.
    """
    import numpy as np

    n = len(x)
    survival = np.ones(n)
    count, wait, p30 = np.zeros(n), np.zeros(n), np.zeros(n)
    cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    for k in range(math.ceil(horizon_days / STEP_DAYS - 1e-9)):
        index = min(k, max(steps_seen, 1) - 1)
        if index not in cache:
            rows = with_step(x, index)
            h = np.clip(hazard(rows), 1e-9, 1 - 1e-9)
            cache[index] = (h, rate(rows) if rate is not None else None)
        h, orders = cache[index]
        if k == 0:
            p30 = h.copy()
        share = min(1.0, horizon_days / STEP_DAYS - k)  # the last step may be partial
        stay = (1 - h) ** share
        # The integral of the survival curve over the step, at the step's constant hazard.
        wait += survival * STEP_DAYS * (1 - stay) / -np.log1p(-h)
        if orders is not None:
            count += share * orders
        survival = survival * stay
    return Outlook(p_none=survival, p30=p30, count=count, wait=np.minimum(wait, horizon_days))
