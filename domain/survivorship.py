"""Survivorship: when sources disagree about a profile field, which value wins, and why.

Every profile field remembers the source that gave its value and when (`FieldSource`). A new
value competes with the current one under a configurable rule:

- ``most_recent``: the newer observation wins;
- ``most_trusted``: the source earlier in the trust order wins (the newer one on a tie, and
  any source beats one not in the list);
- ``non_empty``: the first value stays; a new value only fills an empty field.

Under every rule an empty value never replaces a present one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

PROFILE_FIELDS = ("first_name", "last_name", "email", "phone", "country", "birth_date")


class Rule(StrEnum):
    """How a conflict between two values of one field is decided."""

    MOST_RECENT = "most_recent"
    MOST_TRUSTED = "most_trusted"
    NON_EMPTY = "non_empty"


@dataclass(frozen=True, slots=True)
class FieldSource:
    """Where a field's value came from."""

    source: str
    at: datetime

    def to_json(self) -> dict[str, str]:
        """As stored in ``customers.field_sources``."""
        return {"source": self.source, "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FieldSource:
        """From ``customers.field_sources``."""
        return cls(str(raw["source"]), datetime.fromisoformat(str(raw["at"])))


@dataclass(frozen=True, slots=True)
class Policy:
    """The rule in force and, for ``most_trusted``, the sources from most to least trusted."""

    rule: Rule = Rule.MOST_RECENT
    trust: tuple[str, ...] = ()

    def rank(self, source: str) -> int:
        """Lower is more trusted; sources not listed rank last."""
        return self.trust.index(source) if source in self.trust else len(self.trust)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one field."""

    field: str
    value: Any
    origin: FieldSource | None
    changed: bool
    reason: str


def decide(
    field: str,
    current: Any,
    current_origin: FieldSource | None,
    incoming: Any,
    incoming_origin: FieldSource,
    policy: Policy,
) -> Decision:
    """Which of the current and the incoming value the field keeps."""
    if incoming is None:
        return Decision(field, current, current_origin, False, "no new value")
    if current is None:
        return Decision(field, incoming, incoming_origin, True, "field was empty")
    if current == incoming:
        # Same value: keep the older provenance (it was known first) unless it had none.
        origin = current_origin or incoming_origin
        return Decision(field, current, origin, origin != current_origin, "same value")
    if current_origin is None:
        return Decision(field, incoming, incoming_origin, True, "current value has no source")
    if policy.rule is Rule.NON_EMPTY:
        return Decision(field, current, current_origin, False, "non_empty: first value stays")
    if policy.rule is Rule.MOST_TRUSTED:
        new_rank, old_rank = policy.rank(incoming_origin.source), policy.rank(current_origin.source)
        if new_rank != old_rank:
            wins = new_rank < old_rank
            better, worse = (
                (incoming_origin, current_origin) if wins else (current_origin, incoming_origin)
            )
            reason = f"most_trusted: {better.source} is trusted over {worse.source}"
            return _pick(field, wins, current, current_origin, incoming, incoming_origin, reason)
    wins = incoming_origin.at >= current_origin.at
    reason = "most_recent: newer observation" if wins else "most_recent: current value is newer"
    if policy.rule is Rule.MOST_TRUSTED:
        reason = "most_trusted: equally trusted, " + reason.split(": ", 1)[1]
    return _pick(field, wins, current, current_origin, incoming, incoming_origin, reason)


def _pick(
    field: str, incoming_wins: bool, current: Any, current_origin: FieldSource | None,
    incoming: Any, incoming_origin: FieldSource, reason: str,
) -> Decision:  # fmt: skip
    if incoming_wins:
        return Decision(field, incoming, incoming_origin, True, reason)
    return Decision(field, current, current_origin, False, reason)


def merge_profile(
    current: Mapping[str, Any],
    origins: Mapping[str, FieldSource],
    incoming: Mapping[str, Any],
    incoming_origin: FieldSource,
    policy: Policy,
    fields: Sequence[str] = PROFILE_FIELDS,
) -> list[Decision]:
    """A decision per profile field for an incoming record from one source."""
    return [
        decide(f, current.get(f), origins.get(f), incoming.get(f), incoming_origin, policy)
        for f in fields
    ]
