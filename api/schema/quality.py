"""GraphQL view of the data-quality report (being written)."""

from __future__ import annotations

import strawberry


@strawberry.type
class QualityQueries:
    @strawberry.field(description="Placeholder until the data-quality report lands.")
    def data_quality_pending(self) -> bool:
        return True
