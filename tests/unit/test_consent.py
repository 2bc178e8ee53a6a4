"""Which consents let machine clients have a customer's predictions."""

from __future__ import annotations

import pytest

from domain.consent import OBJECTED, WITHHELD, prediction_withheld


@pytest.mark.parametrize(
    ("latest", "for_machines", "for_people"),
    [
        ({}, WITHHELD, None),  # never asked: no consent, which only machine clients need
        ({"email_marketing": True}, WITHHELD, None),  # other purposes do not count
        ({"personalization": True}, None, None),
        ({"profiling": True}, None, None),
        ({"personalization": True, "profiling": True}, None, None),
        ({"personalization": True, "profiling": False}, OBJECTED, OBJECTED),  # a refusal wins
        ({"personalization": False}, OBJECTED, OBJECTED),  # an objection: for everyone
    ],
)
def test_prediction_withheld(latest, for_machines, for_people):
    assert prediction_withheld(latest, machine_client=True) == for_machines
    assert prediction_withheld(latest, machine_client=False) == for_people
