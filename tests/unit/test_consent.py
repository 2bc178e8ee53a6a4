"""Which consents let machine clients have a customer's predictions."""

from __future__ import annotations

import pytest

from domain.consent import WITHHELD, prediction_withheld


@pytest.mark.parametrize(
    ("latest", "withheld"),
    [
        ({}, True),  # never asked: no consent
        ({"email_marketing": True}, True),  # other purposes do not count
        ({"personalization": True}, False),
        ({"profiling": True}, False),
        ({"personalization": True, "profiling": True}, False),
        ({"personalization": True, "profiling": False}, True),  # a refusal wins
        ({"personalization": False}, True),
    ],
)
def test_prediction_withheld(latest, withheld):
    assert prediction_withheld(latest) == (WITHHELD if withheld else None)
