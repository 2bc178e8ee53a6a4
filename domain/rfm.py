"""RFM: recency, frequency and monetary value as quintile scores, and the named segments they
fall in. Pure: no I/O (the scores are computed set-based in SQL, ``sql/queries/rfm.sql``).

Scores run from 1 to 5 (5: most recent, most orders, most spent). Customers with equal values
get equal scores: a customer's score comes from the share of customers strictly below them
(``1 + floor(5 * percent_rank)``, capped at 5), so a block of ties takes the score of where
the block starts. That matters for frequency, where most customers often have one order:
they all score 1 instead of being split arbitrarily across quintiles.

The segment follows the usual map on recency and frequency (monetary value rides along with
frequency in most maps and is reported, not used to name the segment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class RfmSegment(StrEnum):
    CHAMPIONS = "champions"
    LOYAL = "loyal"
    POTENTIAL_LOYALISTS = "potential_loyalists"
    NEW = "new"
    PROMISING = "promising"
    NEED_ATTENTION = "need_attention"
    ABOUT_TO_SLEEP = "about_to_sleep"
    AT_RISK = "at_risk"
    CANT_LOSE_THEM = "cant_lose_them"
    HIBERNATING = "hibernating"
    LOST = "lost"


def segment_of(r: int, f: int) -> RfmSegment:
    """The named segment of recency score ``r`` and frequency score ``f`` (1..5 each)."""
    if not (1 <= r <= 5 and 1 <= f <= 5):
        raise ValueError(f"RFM scores run from 1 to 5, got r={r}, f={f}")
    if r == 5 and f >= 4:
        return RfmSegment.CHAMPIONS
    if r >= 3 and f >= 4:
        return RfmSegment.LOYAL
    if r >= 4 and f in (2, 3):
        return RfmSegment.POTENTIAL_LOYALISTS
    if r == 5 and f == 1:
        return RfmSegment.NEW
    if r == 4 and f == 1:
        return RfmSegment.PROMISING
    if r == 3 and f == 3:
        return RfmSegment.NEED_ATTENTION
    if r == 3 and f <= 2:
        return RfmSegment.ABOUT_TO_SLEEP
    if r <= 2 and f == 5:
        return RfmSegment.CANT_LOSE_THEM
    if r <= 2 and f >= 3:
        return RfmSegment.AT_RISK
    if r == 1 and f == 1:
        return RfmSegment.LOST
    return RfmSegment.HIBERNATING  # r <= 2, f <= 2


def segment_map() -> tuple[list[int], list[int], list[str]]:
    """Every (r, f) pair and its segment, as three arrays for the SQL that assigns them."""
    pairs = [(r, f) for r in range(1, 6) for f in range(1, 6)]
    return [r for r, _ in pairs], [f for _, f in pairs], [segment_of(r, f).value for r, f in pairs]


@dataclass(frozen=True, slots=True)
class Rfm:
    """A customer's RFM as of a time: the raw values and their scores."""

    as_of: datetime
    recency_days: int  # whole days since the last purchase before `as_of`
    frequency: int  # orders before `as_of`
    monetary: Decimal  # spent before `as_of`
    r: int
    f: int
    m: int
    segment: RfmSegment

    @property
    def code(self) -> str:
        """The three scores as one code, e.g. ``"545"``."""
        return f"{self.r}{self.f}{self.m}"


@dataclass(frozen=True, slots=True)
class SegmentSize:
    """How many customers an RFM segment holds, and what they spent."""

    segment: RfmSegment
    customers: int
    monetary: Decimal
    average_recency_days: float
    average_frequency: float
