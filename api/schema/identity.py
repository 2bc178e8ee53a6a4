"""Duplicate candidates and merges (being written)."""

from __future__ import annotations

import strawberry


@strawberry.type
class IdentityQueries:
    @strawberry.field(description="Placeholder until duplicate detection lands.")
    def duplicates_pending(self) -> bool:
        return True


@strawberry.type
class IdentityMutations:
    @strawberry.mutation(description="Placeholder until merges land.")
    def merges_pending(self) -> bool:
        return True
