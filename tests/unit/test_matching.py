"""Duplicate scoring: similarities, the score formula, vetoes and evidence."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.customers import Customer
from domain.matching import (
    MAX_PAIR_BUDGET,
    MIN_PAIR_BUDGET,
    MatchKind,
    canonical_email,
    compare,
    email_similarity,
    name_similarity,
    normalise_name,
    pair_budget,
    phone_similarity,
    rank_candidates,
)

T = datetime(2025, 1, 1, tzinfo=UTC)


def person(
    pk: int, first: str | None = "Anna", last: str | None = "Schmidt", *, email: str | None = None,
    phone: str | None = None, country: str | None = "DE", born: date | None = None,
) -> Customer:  # fmt: skip
    return Customer(pk, first, last, email, phone, country, born, T, T)


def fields(c) -> list[tuple[str, float, str]]:
    return [(e.field, e.similarity, e.kind.value) for e in c.evidence]


def test_names_are_compared_without_accents_case_or_punctuation():
    assert normalise_name("  Jürgen-Müller ") == "jurgen muller"
    assert normalise_name("ÉLODIE") == "elodie"
    assert name_similarity(person(1, "Jürgen", "Müller"), person(2, "jurgen", "MULLER")) == 1.0


def test_both_name_parts_must_agree():
    # A product, not an average: the same last name with another first name is weak.
    assert name_similarity(person(1, "Anna"), person(2, "Paul")) == 0.5
    assert name_similarity(person(1, "Jon", "Smith"), person(2, "John", "Smith")) == 0.9333
    # First and last name swapped by a form.
    assert name_similarity(person(1, "Anna", "Schmidt"), person(2, "Schmidt", "Anna")) == 1.0


def test_one_known_name_part_is_capped_and_no_name_is_not_comparable():
    assert name_similarity(person(1, None, "Schmidt"), person(2, "Anna", "Schmidt")) == 0.9
    assert name_similarity(person(1, None, None), person(2)) is None


def test_canonical_email():
    assert canonical_email("Anna.Schmidt+shop@googlemail.com") == "annaschmidt@gmail.com"
    assert canonical_email("anna.schmidt+news@web.de") == "anna.schmidt@web.de"


def test_email_similarity():
    assert email_similarity("a@x.de", "a@x.de") == (1.0, MatchKind.EXACT)
    assert email_similarity("anna.s@gmail.com", "annas+x@gmail.com") == (0.97, MatchKind.FUZZY)
    # The same local part at another provider.
    assert email_similarity("anna.schmidt@gmail.com", "anna.schmidt@web.de")[0] == 0.85
    assert email_similarity("anna.schmidt@gmail.com", "annaschmidt@web.de")[0] == 0.85
    # Typos: one edit (a transposition is one), or two in a long address.
    assert email_similarity("grace@navy.mil", "grcae@navy.mil") == (0.9, MatchKind.FUZZY)
    assert email_similarity("anna.schmidt@web.de", "anna.schmitt@web.de")[0] == 0.9
    assert email_similarity("margarethe.oberhuber@aon.at", "margarete.oberhubr@aon.at")[0] == 0.8
    # Short addresses one letter apart are different mailboxes.
    assert email_similarity("al@x.de", "ab@x.de")[0] < 0.8


def test_addresses_sharing_only_a_name_do_not_agree():
    similarity, kind = email_similarity(
        "oskar.andersson.2007@example.org", "oskar.andersson.15237@example.com"
    )
    assert kind is MatchKind.FUZZY
    assert 0.6 < similarity < 0.8  # alike, yet evidence against (below AGREEMENT)
    assert email_similarity("info@firma.de", "kontakt@andere.com")[0] < 0.5
    # Two edits, but in the numbers: namesakes, not a typo.
    assert email_similarity("hugo.costa.2351@example.org", "hugo.costa.2554@example.org")[0] < 0.8


def test_phone_similarity():
    assert phone_similarity("+4930123456", "+4930123456") == (1.0, MatchKind.EXACT)
    assert phone_similarity("+4930123456", "+4330123456") == (0.9, MatchKind.FUZZY)  # prefix
    assert phone_similarity("+4930123456", "+4930123457") == (0.9, MatchKind.FUZZY)  # a digit
    assert phone_similarity("+441234567890", "+441234567809") == (0.9, MatchKind.FUZZY)  # swap
    assert phone_similarity("+4930123456", "+4930123499") == (0.6, MatchKind.FUZZY)
    assert phone_similarity("+4915469314152", "+4915778584183")[0] < 0.5


@pytest.mark.parametrize(
    ("a", "b", "score"),
    [
        # Same name and e-mail: certain.
        (person(1, email="a@x.de"), person(2, email="a@x.de"), 1.0),
        # A typo in the first name, the same phone.
        (
            person(1, "Jon", "Smith", phone="+4930123456"),
            person(2, "John", "Smith", phone="+4930123456"),
            0.9667,
        ),
        # The same name and nothing else to go by: missing evidence counts 0.5.
        (person(1), person(2), 0.75),
        # The same name, clearly different e-mails: evidence against.
        (person(1, email="a@x.de"), person(2, email="zzz@y.de"), 0.5),
        # No names, the same e-mail.
        (person(1, None, None, email="a@x.de"), person(2, email="a@x.de"), 0.75),
        # Another country costs 10 %.
        (person(1, email="a@x.de"), person(2, email="a@x.de", country="FR"), 0.9),
        # A household sharing a phone.
        (person(1, "Anna", phone="+4930123456"), person(2, "Paul", phone="+4930123456"), 0.75),
        # The same birth date corroborates a name...
        (person(1, born=date(1990, 5, 1)), person(2, born=date(1990, 5, 1)), 0.9),
        # ... less so when e-mail and phone both disagree: 0.5 + 0.5 x 0.8 x 0.85².
        (
            person(1, born=date(1990, 5, 1), email="a@x.de", phone="+4930123456"),
            person(2, born=date(1990, 5, 1), email="zzz@y.de", phone="+4940999999"),
            0.789,
        ),
    ],
)
def test_scores(a, b, score):
    assert compare(a, b).score == score


def test_the_best_identifier_counts_and_a_conflicting_one_costs():
    # Different e-mails (people have several) but the same phone: 0.5 + 0.5 x 0.85.
    c = compare(person(1, email="a@x.de", phone="+4930123456"),
                person(2, email="zzz@y.de", phone="+4930123456"))  # fmt: skip
    assert c.score == 0.925
    assert fields(c) == [
        ("name", 1.0, "exact"), ("email", 0.4286, "fuzzy"), ("phone", 1.0, "exact"),
        ("country", 1.0, "exact"),
    ]  # fmt: skip


def test_different_birth_dates_veto():
    c = compare(person(1, born=date(1990, 1, 1)), person(2, born=date(1991, 1, 1)))
    assert c.veto == "different birth dates"
    assert ("birth_date", 0.0, "fuzzy") in fields(c)


def test_evidence_only_lists_fields_known_on_both_sides():
    c = compare(person(1, email="a@x.de", country=None), person(2, phone="+4930123456"))
    assert fields(c) == [("name", 1.0, "exact")]
    swapped = compare(person(1, "Anna", "Schmidt"), person(2, "Schmidt", "Anna"))
    assert swapped.evidence[0].a_value == "Anna Schmidt"
    assert swapped.evidence[0].b_value == "Schmidt Anna"
    assert swapped.evidence[0].kind is MatchKind.FUZZY  # alike, not identical


def test_rank_candidates_filters_vetoes_and_low_scores_and_orders():
    pairs = [
        (person(1), person(2), ["name"]),  # 0.75
        (person(3, email="a@x.de"), person(4, email="a@x.de"), ["email"]),  # 1.0
        (person(5, born=date(1990, 1, 1), email="b@x.de"),
         person(6, born=date(1991, 1, 1), email="b@x.de"), ["email"]),  # vetoed
        (person(7, phone="+4930123456"), person(8, phone="+4930123456"), ["phone_suffix"]),  # 1.0
    ]  # fmt: skip
    ranked = rank_candidates(pairs, 0.7, 10)
    assert [(c.a.id, c.b.id, c.comparison.score) for c in ranked] == [
        (3, 4, 1.0), (7, 8, 1.0), (1, 2, 0.75),
    ]  # fmt: skip
    assert ranked[0].keys == ("email",)
    assert [c.a.id for c in rank_candidates(pairs, 0.8, 1)] == [3]


def test_pair_budget():
    assert pair_budget(1) == MIN_PAIR_BUDGET
    assert pair_budget(100) == 10_000
    assert pair_budget(10**6) == MAX_PAIR_BUDGET
