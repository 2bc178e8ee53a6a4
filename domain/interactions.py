"""Interactions: what a customer did on a channel (a page view, an e-mail click, a ticket ...)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Interaction:
    """One event in a customer's history."""

    id: int
    customer_id: int
    occurred_at: datetime
    channel: str
    kind: str
    properties: dict[str, Any]
    source: str
    external_id: str
