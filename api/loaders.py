"""Per-request DataLoaders: one per (entity, key), created on first use.

Every nested field goes through one of these, so a response costs one statement per
loader (per distinct window for history pages), whatever the number of customers in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiodataloader import DataLoader, Loader, dispatch_queue

from domain.commerce import Product, Purchase, PurchaseSummary
from domain.customer_queries import TimeWindow
from domain.customers import Consent, Customer, Identity
from domain.interactions import Interaction
from domain.predictions import StoredScores
from domain.rfm import Rfm
from sql.repositories import CustomerRepository, ProductRepository

K = TypeVar("K")
V = TypeVar("V")


class BatchLoader(DataLoader[K, V]):
    """aiodataloader's DataLoader, scheduling each dispatch with one task instead of two.

    The dispatch still runs two loop iterations after the first load, as aiodataloader's own
    scheduling does, so loads issued a step later join the same batch.
    """

    def do_resolve_reject(self, key: K, future: asyncio.Future[V]) -> None:
        """Queue the load; the first load of a batch schedules its dispatch."""
        self._queue.append(Loader(key=key, future=future))
        if len(self._queue) == 1:
            self.loop.call_soon(self.loop.call_soon, dispatch_queue, self)


def _loader(
    fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]], missing: Callable[[K], V]
) -> DataLoader[K, V]:
    async def batch(keys: list[K]) -> list[V]:
        found = await fetch(keys)
        return [found[k] if k in found else missing(k) for k in keys]

    # Passing the running loop spares aiodataloader its get_event_loop() lookup per loader.
    return BatchLoader(batch, loop=asyncio.get_running_loop())


def _none(_key: object) -> None:
    return None


def _empty(_key: object) -> list:
    return []


def _zero(_key: object) -> int:
    return 0


class Loaders:
    """The loaders of one request, each made on first use."""

    def __init__(self, customers: CustomerRepository, products: ProductRepository) -> None:
        self._customers = customers
        self._products = products
        self._made: dict[object, DataLoader] = {}

    def _get(
        self,
        key: object,
        fetch: Callable[[Sequence[Any]], Awaitable[dict[Any, V]]],
        missing: Callable[[Any], V],
    ) -> DataLoader[Any, V]:
        # A plain dict, not functools.cached_property: that takes a lock on every first access
        # (Python 3.11), and loaders are made on every request.
        loader = self._made.get(key)
        if loader is None:
            loader = self._made[key] = _loader(fetch, missing)
        return loader

    @property
    def customer_by_id(self) -> DataLoader[int, Customer | None]:
        """Customers by id (None for unknown ids)."""
        return self._get("customer", self._customers.by_ids, _none)

    @property
    def product_by_id(self) -> DataLoader[int, Product | None]:
        """Products by id."""
        return self._get("product", self._products.by_ids, _none)

    @property
    def identities_by_customer(self) -> DataLoader[int, list[Identity]]:
        """Identities per customer id."""
        return self._get("identities", self._customers.identities, _empty)

    @property
    def consents_by_customer(self) -> DataLoader[int, list[Consent]]:
        """Current consents per customer id."""
        return self._get("consents", self._customers.current_consents, _empty)

    @property
    def stored_scores_by_customer(self) -> DataLoader[int, StoredScores | None]:
        """Materialised scores per customer id (None if never scored)."""
        return self._get("stored_scores", self._customers.stored_scores, _none)

    @property
    def rfm_by_customer(self) -> DataLoader[int, Rfm | None]:
        """The stored RFM per customer id (None: not in the snapshot)."""
        return self._get("rfm", self._customers.rfm, _none)

    @property
    def purchase_summary_by_customer(self) -> DataLoader[int, PurchaseSummary]:
        """Purchase aggregates per customer id."""
        return self._get(
            "purchase_summary", self._customers.purchase_summaries, PurchaseSummary.empty
        )

    def purchases(
        self, window: TimeWindow, *, with_products: bool = False
    ) -> DataLoader[int, list[Purchase]]:
        """A page of purchases per customer id, for one window; `with_products` also fills
        `product_by_id` with their products from the same statement."""
        repo = self._customers

        async def fetch(ids: Sequence[int]) -> dict[int, list[Purchase]]:
            purchases, products = await repo.purchases(ids, window, with_products=with_products)
            if products:
                product_loader = self.product_by_id
                for product_id, product in products.items():
                    product_loader.prime(product_id, product)
            return purchases

        return self._get(("purchases", window, with_products), fetch, _empty)

    def purchase_count(self, window: TimeWindow) -> DataLoader[int, int]:
        """Purchases in the window's time bounds, per customer id."""
        repo = self._customers
        return self._get(
            ("purchase_count", window), lambda ids: repo.purchase_counts(ids, window), _zero
        )

    def interactions(self, window: TimeWindow) -> DataLoader[int, list[Interaction]]:
        """A page of interactions per customer id, for one window."""
        repo = self._customers
        return self._get(
            ("interactions", window), lambda ids: repo.interactions(ids, window), _empty
        )

    def interaction_count(self, window: TimeWindow) -> DataLoader[int, int]:
        """Interactions in the window's bounds and kinds, per customer id."""
        repo = self._customers
        return self._get(
            ("interaction_count", window), lambda ids: repo.interaction_counts(ids, window), _zero
        )
