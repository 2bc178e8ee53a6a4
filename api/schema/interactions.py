"""GraphQL view of interactions."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from domain import interactions


@strawberry.type(name="Interaction", description="One event of a customer's history.")
class InteractionType:
    id: strawberry.ID
    occurred_at: datetime
    channel: str
    kind: str
    properties: JSON
    source: str
    external_id: str

    @classmethod
    def from_domain(cls, i: interactions.Interaction) -> InteractionType:
        """The view of a domain interaction."""
        return cls(
            id=strawberry.ID(str(i.id)), occurred_at=i.occurred_at, channel=i.channel,
            kind=i.kind, properties=i.properties, source=i.source, external_id=i.external_id,
        )  # fmt: skip
