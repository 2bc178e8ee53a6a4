"""What consent allows. Pure: no I/O.

Predictions about a person (churn risk, next purchase, recommendations) are profiling in the
GDPR's sense. Two rules follow:

* A customer whose latest decision for `personalization` or `profiling` is a refusal has
  objected to profiling (art. 21): the models neither learn from nor score them, for anyone
  (:func:`refused_profiling`). The bulk paths read the same rule from SQL, the view
  ``profiling_refusals`` (migration 0011); a test checks the two agree.
* Machine clients (the personalization role) act on predictions automatically (art. 22), so
  they get a customer's predictions only when that customer agreed: the latest decision for
  `personalization` or `profiling` is a grant, and neither's is a refusal. People using the
  API (app, analyst) also see the predictions of customers who never decided.
"""

from __future__ import annotations

from collections.abc import Mapping

PROFILING_PURPOSES = ("personalization", "profiling")

WITHHELD = (
    "no consent to personalization or profiling: predictions are withheld from machine clients"
)
OBJECTED = "the customer objected to profiling (GDPR art. 21): no predictions are made about them"


def refused_profiling(latest: Mapping[str, bool]) -> bool:
    """Whether the latest decision per purpose objects to profiling (either purpose refused)."""
    return any(latest.get(p) is False for p in PROFILING_PURPOSES)


def prediction_withheld(latest: Mapping[str, bool], *, machine_client: bool) -> str | None:
    """Why a caller gets no predictions given the customer's latest decision per purpose, or
    None: nobody gets them after an objection, and machine clients only after a grant."""
    if refused_profiling(latest):
        return OBJECTED
    if machine_client and not any(p in latest for p in PROFILING_PURPOSES):
        return WITHHELD
    return None
