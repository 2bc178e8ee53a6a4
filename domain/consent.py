"""What consent allows. Pure: no I/O.

Predictions about a person (churn risk, next purchase, recommendations) are profiling in the
GDPR's sense. Machine clients (the personalization role) act on them automatically, so they
get a customer's predictions only when that customer agreed: the latest decision for
`personalization` or `profiling` is a grant, and neither's latest decision is a refusal (a
refusal of either wins). People using the API (app, analyst) still see them.
"""

from __future__ import annotations

from collections.abc import Mapping

PROFILING_PURPOSES = ("personalization", "profiling")

WITHHELD = (
    "no consent to personalization or profiling: predictions are withheld from machine clients"
)


def prediction_withheld(latest: Mapping[str, bool]) -> str | None:
    """Why predictions are withheld given the latest decision per purpose, or None."""
    decisions = [latest[p] for p in PROFILING_PURPOSES if p in latest]
    if decisions and all(decisions):
        return None
    return WITHHELD
