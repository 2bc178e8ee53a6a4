"""The typed per-request context: the only door resolvers have to the outside world."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from api.loaders import Loaders
from cdm.settings import Settings
from sql.executor import Database
from sql.repositories import CustomerRepository, ProductRepository


@dataclass(slots=True)
class Context:
    """What a resolver may use while serving one request."""

    settings: Settings
    db: Database
    customers: CustomerRepository
    products: ProductRepository
    loaders: Loaders
    # Who is acting, as recorded in merge and audit history ("api" until keys identify callers).
    actor: str = "api"
    extensions: dict[str, object] = field(default_factory=dict)

    @classmethod
    def for_request(cls, pool: asyncpg.Pool, settings: Settings) -> Context:
        """A fresh context (new loaders, new statement count) for one request."""
        db = Database(pool)
        customers = CustomerRepository(db)
        products = ProductRepository(db)
        return cls(settings, db, customers, products, Loaders(customers, products))
