"""The GraphQL schema: one module per area, merged here."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.schema.analytics import AnalyticsQueries
from api.schema.commerce import ProductQueries
from api.schema.customers import CustomerQueries
from api.schema.governance import GovernanceMutations, GovernanceQueries
from api.schema.identity import IdentityMutations, IdentityQueries
from api.schema.keys import KeyMutations, KeyQueries
from api.schema.predictions import PredictionMutations, PredictionQueries
from api.schema.quality import QualityQueries
from api.schema.rfm import RfmMutations, RfmQueries
from api.schema.scalars import DecimalScalar
from api.schema.segments import SegmentMutations, SegmentQueries
from api.schema.writes import WriteMutations

Query = merge_types(
    "Query",
    (
        CustomerQueries,
        ProductQueries,
        IdentityQueries,
        QualityQueries,
        PredictionQueries,
        GovernanceQueries,
        KeyQueries,
        RfmQueries,
        SegmentQueries,
        AnalyticsQueries,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        WriteMutations,
        IdentityMutations,
        PredictionMutations,
        GovernanceMutations,
        KeyMutations,
        RfmMutations,
        SegmentMutations,
    ),
)

schema = strawberry.Schema(
    query=Query, mutation=Mutation, config=StrawberryConfig(scalar_map={Decimal: DecimalScalar})
)
