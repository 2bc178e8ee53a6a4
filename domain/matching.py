"""Duplicate detection: how alike two customer profiles are, and the evidence for it.

Finding candidates happens in two steps. The database proposes pairs by *blocking* (see
``sql/queries/identity.sql``): two customers are only compared when they share a cheap key,
so the work grows with the size of the blocks rather than with the square of the table:

- ``email``: the same address;
- ``email_local``: the same canonical local part, at least 3 characters (``anna.schmidt+shop``
  and ``annaschmidt`` at Gmail; see `canonical_email`), at any domain;
- ``phone_suffix``: the same last 8 digits (the same line written with another country
  prefix, or a typo in the prefix);
- ``name``: the same lower-cased first and last name;
- ``name_prefix``: the same first 4 letters of the last name, first letter of the first name
  and country (catches typos further on in a last name);
- ``email_neighbour``: the next address in byte order, when their trigram similarity is at
  least `NEIGHBOUR_SIMILARITY` (sorted neighbourhood: a typo late in an address);
- for one customer (``customerId``) instead: the same e-mail or phone, the same local part,
  and ``similar_text``: pg_trgm similarity of at least `TEXT_SIMILARITY` between the
  name-and-e-mail texts (``search_text %``, served by the existing trigram index), which also
  finds typos in the first letters of a name.

A key shared by more than `MAX_BLOCK_SIZE` customers (``info@``), or a name key shared by more
than `MAX_NAME_BLOCK_SIZE` (``John Smith``), proposes no pairs: it says little about identity
and would make the pair count quadratic. Pairs whose birth dates are both known and differ are
never proposed, and at most `pair_budget` pairs are scored: those sharing most identifier keys
(e-mail, phone) first, then the most alike neighbouring addresses, then those sharing most
name keys.
Merged customers no longer exist as rows, so they never appear; a merged ``customerId``
stands for its survivor.

Scoring (`compare`), each similarity between 0 and 1:

- **name**: Jaro-Winkler similarity of the first names times that of the last names
  (accents, case and punctuation ignored), or of first and last swapped if that is higher.
  Both parts must agree: a product punishes "Anna Schmidt" vs "Paul Schmidt" (0.5) where
  an average would not. With only one part known on both sides, that part, capped at 0.9.
- **email**: identical is exact (1.0); the same canonical mailbox 0.97; the same local part
  at another domain 0.85; one typo apart (a transposition counts one) 0.9, two typos in an
  address of 14 characters or more 0.8, provided the numbers in both are the same (a birth
  year or counter tells namesakes apart). Anything else is `FAR` (0.75) x the Indel
  similarity: alike (``anna.smith.1984@`` vs ``anna.smith.1985@`` share the name) but not the
  same address.
- **phone** (E.164): identical is exact (1.0); the same last 8 digits 0.9; one wrong or
  swapped digit 0.9; otherwise `FAR` x the Levenshtein similarity of the digits.
- **birth_date**: equal is exact (1.0); both known and different vetoes the pair.
- **country**: equal is exact; different lowers the score by 10 %.

``score = 0.5 x name + 0.5 x identifiers``. *Identifiers* is the best agreeing e-mail or
phone (at least `AGREEMENT`, 0.8, similar) or a shared birth date (which corroborates,
`BIRTH_DATE_AGREEMENT`, 0.8, but identifies less than an address), multiplied by `CONFLICT`
(0.85) for each e-mail, phone or birth date that disagrees: people have several addresses,
so one that differs costs a little; when nothing agrees, a disagreement makes it 0 (evidence
*against*). A component that cannot be compared (no name, or no identifier known on
both sides) counts as 0.5: missing evidence neither proves nor disproves. So the same name
alone gives 0.75, with the same birth date 0.9; the same name and e-mail 1.0, with another
phone too 0.925; "Jon"/"John Smith" with one phone 0.97; namesakes with different e-mails
0.5; a household sharing a phone, "Anna"/"Paul Schmidt", 0.75.

Evidence lists every field known on both sides with its similarity, and whether the values
were identical after standardisation (``exact``) or merely alike (``fuzzy``).

Not handled: nicknames (Bob/Robert), transliterations beyond dropping accents, and a person
recorded twice with nothing in common but a common name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from rapidfuzz.distance import OSA, Indel, JaroWinkler, Levenshtein

from domain.customers import Customer

# A blocking key shared by more customers than this proposes no pairs: identifier keys
# (e-mail, phone), and name keys (a common name says even less).
MAX_BLOCK_SIZE = 50
MAX_NAME_BLOCK_SIZE = 10
# pg_trgm similarity of name-and-e-mail text above which one customer's lookup proposes a pair.
TEXT_SIMILARITY = 0.5
# pg_trgm similarity above which neighbouring addresses (in byte order) are paired.
NEIGHBOUR_SIMILARITY = 0.6
# An identifier at least this similar counts as agreeing; below, as disagreeing.
AGREEMENT = 0.8
# Values more than a typo apart are scaled by this, so they never count as agreeing.
FAR = 0.75
# Weight of an uncomparable component (missing evidence).
NEUTRAL = 0.5
# The score is multiplied by this when both countries are known and differ.
COUNTRY_PENALTY = 0.9
# How many proposed pairs are scored, at most, per candidate asked for, and overall.
PAIRS_PER_RESULT = 100
MIN_PAIR_BUDGET = 5_000
MAX_PAIR_BUDGET = 50_000
# A shared birth date corroborates a name this much (it identifies less than an e-mail).
BIRTH_DATE_AGREEMENT = 0.8
# The identifier component is multiplied by this for each e-mail, phone or birth date that
# disagrees.
CONFLICT = 0.85

# Mail providers that ignore dots in the local part.
_DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_DIGITS = re.compile(r"[0-9]+")


class MatchKind(StrEnum):
    """Whether two values were identical after standardisation or only similar."""

    EXACT = "exact"
    FUZZY = "fuzzy"


@dataclass(frozen=True, slots=True)
class Evidence:
    """How one field compares between two customers."""

    field: str
    a_value: str | None
    b_value: str | None
    similarity: float
    kind: MatchKind


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two customers compared: the score, the evidence, and a veto if they cannot be one."""

    a_id: int
    b_id: int
    score: float
    evidence: tuple[Evidence, ...]
    veto: str | None = None


def pair_budget(first: int) -> int:
    """How many blocked pairs to score when `first` candidates are wanted."""
    return max(MIN_PAIR_BUDGET, min(MAX_PAIR_BUDGET, first * PAIRS_PER_RESULT))


@lru_cache(maxsize=65_536)
def normalise_name(text: str) -> str:
    """Lower-case ASCII letters and digits, words separated by one space (accents dropped)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_ALNUM.sub(" ", plain).strip()


def canonical_email(address: str) -> str:
    """The mailbox an address delivers to: ``+tag`` dropped, dots dropped for Gmail.

    The ``email_local`` blocking key in ``sql/queries/identity.sql`` computes the same.
    """
    local, _, domain = address.lower().partition("@")
    local = local.split("+", 1)[0]
    if domain in _DOTLESS_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def _round(value: float) -> float:
    return round(value, 4)


def _jw(a: str, b: str) -> float:
    return JaroWinkler.normalized_similarity(a, b)


def name_similarity(a: Customer, b: Customer) -> float | None:
    """How alike the names are (see the module notes), None when not comparable."""
    fa, la = (normalise_name(a.first_name or ""), normalise_name(a.last_name or ""))
    fb, lb = (normalise_name(b.first_name or ""), normalise_name(b.last_name or ""))
    if fa and la and fb and lb:
        direct = _jw(fa, fb) * _jw(la, lb)
        swapped = _jw(fa, lb) * _jw(la, fb)
        return _round(max(direct, swapped))
    parts = [(x, y) for x, y in ((fa, fb), (la, lb)) if x and y]
    if not parts:
        return None
    # One part known on both sides: weaker evidence than a full name.
    return _round(min(0.9, max(_jw(x, y) for x, y in parts)))


def _written_local(address: str) -> str:
    """The local part as written, without a ``+tag``."""
    return address.partition("@")[0].split("+", 1)[0]


def _typo_distance(a: str, b: str) -> int:
    """Edits (a transposition counts one) between two strings."""
    return OSA.distance(a, b)


def email_similarity(a: str, b: str) -> tuple[float, MatchKind]:
    """How alike two (standardised, lower-case) addresses are (see the module notes)."""
    if a == b:
        return 1.0, MatchKind.EXACT
    ca, cb = canonical_email(a), canonical_email(b)
    if ca == cb:
        return 0.97, MatchKind.FUZZY
    # The same local part (as written or canonical) at another provider.
    if _written_local(a) == _written_local(b) or ca.partition("@")[0] == cb.partition("@")[0]:
        return 0.85, MatchKind.FUZZY
    shorter = min(len(ca), len(cb))
    distance = _typo_distance(ca, cb)
    # Numbers in an address (a birth year, a counter) tell namesakes apart: not typos.
    if _DIGITS.findall(ca) == _DIGITS.findall(cb):
        if distance == 1 and shorter >= 8:
            return 0.9, MatchKind.FUZZY
        if distance == 2 and shorter >= 14:
            return 0.8, MatchKind.FUZZY
    # Alike, but more than a typo apart (anna.smith.1984@ vs anna.smith.2007@): disagreement.
    return _round(FAR * Indel.normalized_similarity(ca, cb)), MatchKind.FUZZY


def phone_similarity(a: str, b: str) -> tuple[float, MatchKind]:
    """How alike two E.164 numbers are (see the module notes)."""
    if a == b:
        return 1.0, MatchKind.EXACT
    da, db = a.lstrip("+"), b.lstrip("+")
    if len(da) >= 8 and len(db) >= 8 and da[-8:] == db[-8:]:
        return 0.9, MatchKind.FUZZY
    if _typo_distance(da, db) == 1:
        return 0.9, MatchKind.FUZZY
    return _round(FAR * Levenshtein.normalized_similarity(da, db)), MatchKind.FUZZY


def compare(a: Customer, b: Customer) -> Comparison:
    """Score two customers as the same person (0..1), with the evidence and any veto."""
    evidence: list[Evidence] = []
    veto: str | None = None

    name = name_similarity(a, b)
    if name is not None:
        same = normalise_name(a.full_name or "") == normalise_name(b.full_name or "")
        evidence.append(Evidence(
            "name", a.full_name, b.full_name, name,
            MatchKind.EXACT if same else MatchKind.FUZZY,
        ))  # fmt: skip

    contacts: list[float] = []  # e-mail and phone similarities
    corroborating: list[float] = []
    if a.email and b.email:
        similarity, kind = email_similarity(a.email, b.email)
        evidence.append(Evidence("email", a.email, b.email, similarity, kind))
        contacts.append(similarity)
    if a.phone and b.phone:
        similarity, kind = phone_similarity(a.phone, b.phone)
        evidence.append(Evidence("phone", a.phone, b.phone, similarity, kind))
        contacts.append(similarity)
    if a.birth_date and b.birth_date:
        same = a.birth_date == b.birth_date
        evidence.append(Evidence(
            "birth_date", a.birth_date.isoformat(), b.birth_date.isoformat(),
            1.0 if same else 0.0, MatchKind.EXACT if same else MatchKind.FUZZY,
        ))  # fmt: skip
        if same:
            corroborating.append(BIRTH_DATE_AGREEMENT)
        else:
            veto = "different birth dates"

    agreeing = [s for s in contacts if s >= AGREEMENT] + corroborating
    conflicts = sum(1 for s in contacts if s < AGREEMENT) + (veto is not None)
    if agreeing:
        identifier = max(agreeing) * CONFLICT**conflicts
    else:
        identifier = 0.0 if conflicts else NEUTRAL
    score = 0.5 * (NEUTRAL if name is None else name) + 0.5 * identifier

    if a.country and b.country:
        same = a.country == b.country
        evidence.append(Evidence(
            "country", a.country, b.country, 1.0 if same else 0.0,
            MatchKind.EXACT if same else MatchKind.FUZZY,
        ))  # fmt: skip
        if not same:
            score *= COUNTRY_PENALTY

    return Comparison(a.id, b.id, _round(score), tuple(evidence), veto)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A likely duplicate pair: the two customers, how they compare, and the blocking keys
    they shared (why they were compared at all)."""

    a: Customer
    b: Customer
    comparison: Comparison
    keys: tuple[str, ...]


def rank_candidates(
    pairs: Iterable[tuple[Customer, Customer, Sequence[str]]], min_score: float, first: int
) -> list[Candidate]:
    """The best `first` pairs scoring at least `min_score`, vetoed pairs left out.

    Best first; ties in score by the pair's ids, so the order is stable.
    """
    kept = [
        Candidate(a, b, c, tuple(keys))
        for a, b, keys in pairs
        if (c := compare(a, b)).veto is None and c.score >= min_score
    ]
    kept.sort(key=lambda k: (-k.comparison.score, k.a.id, k.b.id))
    return kept[:first]
