"""Per-request DataLoaders: one per (entity, key), created on first use.

Every nested field goes through one of these, so a response costs one statement per
loader (per distinct window for history pages), whatever the number of customers in it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from typing import TypeVar

from aiodataloader import DataLoader

from domain.commerce import Product, Purchase, PurchaseSummary
from domain.customer_queries import TimeWindow
from domain.customers import Consent, Customer, Identity
from domain.interactions import Interaction
from sql.repositories import CustomerRepository, ProductRepository

K = TypeVar("K")
V = TypeVar("V")


def _loader(
    fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]], missing: Callable[[K], V]
) -> DataLoader[K, V]:
    async def batch(keys: list[K]) -> list[V]:
        found = await fetch(keys)
        return [found[k] if k in found else missing(k) for k in keys]

    return DataLoader(batch)


def _none(_key: object) -> None:
    return None


def _empty(_key: object) -> list:
    return []


def _zero(_key: object) -> int:
    return 0


class Loaders:
    """The loaders of one request."""

    def __init__(self, customers: CustomerRepository, products: ProductRepository) -> None:
        self._customers = customers
        self._products = products
        self._windowed: dict[tuple[str, TimeWindow], DataLoader] = {}

    @cached_property
    def customer_by_id(self) -> DataLoader[int, Customer | None]:
        """Customers by id (None for unknown ids)."""
        return _loader(self._customers.by_ids, _none)

    @cached_property
    def product_by_id(self) -> DataLoader[int, Product | None]:
        """Products by id."""
        return _loader(self._products.by_ids, _none)

    @cached_property
    def identities_by_customer(self) -> DataLoader[int, list[Identity]]:
        """Identities per customer id."""
        return _loader(self._customers.identities, _empty)

    @cached_property
    def consents_by_customer(self) -> DataLoader[int, list[Consent]]:
        """Current consents per customer id."""
        return _loader(self._customers.current_consents, _empty)

    @cached_property
    def purchase_summary_by_customer(self) -> DataLoader[int, PurchaseSummary]:
        """Purchase aggregates per customer id."""
        return _loader(self._customers.purchase_summaries, PurchaseSummary.empty)

    def _window(
        self,
        name: str,
        window: TimeWindow,
        fetch: Callable[[Sequence[int], TimeWindow], Awaitable[dict[int, V]]],
        missing: Callable[[int], V],
    ) -> DataLoader[int, V]:
        key = (name, window)
        loader = self._windowed.get(key)
        if loader is None:
            loader = _loader(lambda ids: fetch(ids, window), missing)
            self._windowed[key] = loader
        return loader

    def purchases(self, window: TimeWindow) -> DataLoader[int, list[Purchase]]:
        """A page of purchases per customer id, for one window."""
        return self._window("purchases", window, self._customers.purchases, _empty)

    def purchase_count(self, window: TimeWindow) -> DataLoader[int, int]:
        """Purchases in the window's time bounds, per customer id."""
        return self._window("purchase_count", window, self._customers.purchase_counts, _zero)

    def interactions(self, window: TimeWindow) -> DataLoader[int, list[Interaction]]:
        """A page of interactions per customer id, for one window."""
        return self._window("interactions", window, self._customers.interactions, _empty)

    def interaction_count(self, window: TimeWindow) -> DataLoader[int, int]:
        """Interactions in the window's bounds and kinds, per customer id."""
        return self._window("interaction_count", window, self._customers.interaction_counts, _zero)
