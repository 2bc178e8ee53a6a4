"""The GraphQL schema: one module per area, merged here."""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from api.schema.commerce import ProductQueries
from api.schema.customers import CustomerQueries

Query = merge_types("Query", (CustomerQueries, ProductQueries))

schema = strawberry.Schema(query=Query)
