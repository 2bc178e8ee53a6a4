"""asyncpg implementations of the domain's storage ports: records in, domain objects out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import asyncpg

from domain.commerce import Product, Purchase, PurchaseSummary
from domain.customer_queries import CustomerFilter, CustomerOrder, TimeWindow, contains_pattern
from domain.customers import Consent, Customer, Identity, IdentityKind
from domain.interactions import Interaction
from domain.pagination import Page, PageRequest
from domain.predictions import StoredScores, StoredScoresSummary
from domain.rfm import Rfm
from domain.survivorship import FieldSource
from sql.customer_list import customer_count_statement, customer_page_statement
from sql.executor import Database
from sql.queries import query
from sql.rfm import rfm_of


def _customer(r: asyncpg.Record) -> Customer:
    return Customer(
        r["id"], r["first_name"], r["last_name"], r["email"], r["phone"], r["country"],
        r["birth_date"], r["created_at"], r["updated_at"],
        {name: FieldSource.from_json(v) for name, v in r["field_sources"].items()},
    )  # fmt: skip


# These statements select their columns in the dataclass's field order (tests check the
# mapping), so a record unpacks straight into the domain object: the hot path of every page.
def _purchase(r: asyncpg.Record) -> Purchase:
    return Purchase(*r[:12])  # the purchase columns; product columns may follow


def _interaction(r: asyncpg.Record) -> Interaction:
    return Interaction(*r)


def _product(r: asyncpg.Record) -> Product:
    return Product(*r)


async def all_products(conn: asyncpg.Connection) -> dict[int, Product]:
    """Every product by id."""
    return {r["id"]: _product(r) for r in await conn.fetch(query("all_products"))}


def _window_args(window: TimeWindow) -> tuple[object, ...]:
    after_at, after_id = window.after if window.after else (None, None)
    # One row more than asked tells whether another page follows.
    return window.since, window.until, after_at, after_id, window.first + 1


def _group(rows: Sequence[asyncpg.Record], build: object) -> dict[int, list]:
    grouped: dict[int, list] = defaultdict(list)
    for r in rows:
        grouped[r["customer_id"]].append(build(r))  # type: ignore[operator]
    return grouped


def _like(search: str | None) -> str | None:
    return contains_pattern(search) if search is not None else None


class CustomerRepository:
    """Customers and their identities, consents, purchases and interactions."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    async def by_ids(self, ids: Sequence[int]) -> dict[int, Customer]:
        """Customers by requested id: a merged id maps to its survivor; unknown ids are absent."""
        rows = await self.db.fetch("customers_by_ids", list(ids))
        found = {r["requested_id"]: _customer(r) for r in rows}
        self.db.read_customers(c.id for c in found.values())
        return found

    async def ids_by_external_id(self, value: str, source: str | None) -> list[int]:
        """Customers known by this external id (from `source`, or from any source)."""
        if source is None:
            rows = await self.db.fetch("customer_ids_by_external_id", value)
        else:
            rows = await self.db.fetch("customer_ids_by_source_external_id", source, value)
        return [r["customer_id"] for r in rows]

    async def ids_by_external_ids(self, values: list[str], source: str | None) -> list[int]:
        """Customers known by these external ids, in the order given (unknown ones left out)."""
        rows = await self.db.fetch("customer_ids_by_external_ids", values, source)
        return [r["customer_id"] for r in rows]

    async def stored_scores(self, ids: Sequence[int]) -> dict[int, StoredScores]:
        """Materialised scores per customer (customers never scored are absent)."""
        rows = await self.db.fetch("stored_scores_by_customer_ids", list(ids))
        found = {}
        for r in rows:
            values = dict(r)
            products = tuple(values.pop("recommended_product_ids") or ())
            found[r["customer_id"]] = StoredScores(**values, recommended_product_ids=products)
        return found

    async def rfm(self, ids: Sequence[int]) -> dict[int, Rfm]:
        """The stored RFM snapshot of these customers (absent: not in it)."""
        rows = await self.db.fetch("rfm_by_customer_ids", list(ids))
        return {r["customer_id"]: rfm_of(r) for r in rows}

    async def stored_scores_summary(self) -> StoredScoresSummary:
        """How many customers have stored scores, as of when, from which model versions."""
        (row,) = await self.db.fetch("stored_scores_summary")
        return StoredScoresSummary(**dict(row))

    async def page(
        self, flt: CustomerFilter, order: CustomerOrder, request: PageRequest
    ) -> Page[Customer]:
        """One page of the filtered, ordered customer list."""
        sql, args = customer_page_statement(flt, order, request.after, request.first + 1)
        rows = await self.db.fetch_composed(sql, args)
        rows_on_page = rows[: request.first]
        self.db.read_customers(r["id"] for r in rows_on_page)
        return Page(
            items=[_customer(r) for r in rows_on_page],
            keys=[(r["sort_value"], r["id"]) for r in rows_on_page],
            ordering=order.key,
            has_next_page=len(rows) > request.first,
            has_previous_page=request.after is not None,
        )

    async def count(self, flt: CustomerFilter) -> int:
        """How many customers match the filter."""
        sql, args = customer_count_statement(flt)
        return int(await self.db.fetchval_composed(sql, args))  # type: ignore[arg-type]

    async def identities(self, ids: Sequence[int]) -> dict[int, list[Identity]]:
        """Identities per customer."""
        rows = await self.db.fetch("identities_by_customer_ids", list(ids))
        return _group(
            rows,
            lambda r: Identity(
                r["id"], r["customer_id"], IdentityKind(r["kind"]), r["source"], r["value"],
                r["created_at"],
            ),
        )  # fmt: skip

    async def current_consents(self, ids: Sequence[int]) -> dict[int, list[Consent]]:
        """The newest consent decision per purpose, per customer."""
        rows = await self.db.fetch("current_consents_by_customer_ids", list(ids))
        return _group(
            rows,
            lambda r: Consent(
                r["customer_id"], r["purpose"], r["granted"], r["source"], r["recorded_at"]
            ),
        )

    async def purchase_summaries(self, ids: Sequence[int]) -> dict[int, PurchaseSummary]:
        """Lifetime purchase aggregates per customer (absent: no purchases)."""
        rows = await self.db.fetch("purchase_summaries_by_customer_ids", list(ids))
        return {
            r["customer_id"]: PurchaseSummary(
                r["customer_id"], r["purchase_count"], r["order_count"], r["total_spend"],
                r["first_purchase_at"], r["last_purchase_at"], r["distinct_products"],
                r["distinct_categories"], tuple(r["currencies"]),
            )
            for r in rows
        }  # fmt: skip

    async def purchases(
        self, ids: Sequence[int], window: TimeWindow, *, with_products: bool = False
    ) -> tuple[dict[int, list[Purchase]], dict[int, Product]]:
        """Per customer, up to ``window.first + 1`` purchases of the window, newest first;
        and, if asked, the products of those purchases (fetched in the same statement)."""
        rows = await self.db.fetch(
            "purchases_page_by_customer_ids", list(ids), *_window_args(window), with_products
        )
        products = {
            r["product_id"]: Product(
                r["product_id"], r["sku"], r["name"], r["category"], r["price"],
                r["product_currency"], r["product_created_at"],
            )
            for r in rows
            if with_products and r["product_id"] is not None
        }  # fmt: skip
        return _group(rows, _purchase), products

    async def purchase_counts(self, ids: Sequence[int], window: TimeWindow) -> dict[int, int]:
        """Per customer, how many purchases fall in the window's time bounds."""
        rows = await self.db.fetch(
            "purchase_counts_by_customer_ids", list(ids), window.since, window.until
        )
        return {r["customer_id"]: r["n"] for r in rows}

    async def interactions(
        self, ids: Sequence[int], window: TimeWindow
    ) -> dict[int, list[Interaction]]:
        """Per customer, up to ``window.first + 1`` interactions of the window, newest first."""
        kinds = list(window.kinds) if window.kinds is not None else None
        rows = await self.db.fetch(
            "interactions_page_by_customer_ids", list(ids), *_window_args(window), kinds
        )
        return _group(rows, _interaction)

    async def interaction_counts(self, ids: Sequence[int], window: TimeWindow) -> dict[int, int]:
        """Per customer, how many interactions fall in the window's bounds and kinds."""
        kinds = list(window.kinds) if window.kinds is not None else None
        rows = await self.db.fetch(
            "interaction_counts_by_customer_ids", list(ids), window.since, window.until, kinds
        )
        return {r["customer_id"]: r["n"] for r in rows}


PRODUCT_ORDERING = "products:id"


class ProductRepository:
    """The product catalogue."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    async def by_ids(self, ids: Sequence[int]) -> dict[int, Product]:
        """Products by id."""
        rows = await self.db.fetch("products_by_ids", list(ids))
        return {r["id"]: _product(r) for r in rows}

    async def by_sku(self, sku: str) -> Product | None:
        """The product with this SKU, if any."""
        rows = await self.db.fetch("product_by_sku", sku)
        return _product(rows[0]) if rows else None

    async def page(
        self, category: str | None, search: str | None, request: PageRequest
    ) -> Page[Product]:
        """Products in id order, optionally of one category or matching a search."""
        after_id = request.after[0] if request.after else None
        rows = await self.db.fetch(
            "products_page", category, _like(search), after_id, request.first + 1
        )
        on_page = rows[: request.first]
        return Page(
            items=[_product(r) for r in on_page],
            keys=[(r["id"],) for r in on_page],
            ordering=PRODUCT_ORDERING,
            has_next_page=len(rows) > request.first,
            has_previous_page=request.after is not None,
        )

    async def count(self, category: str | None, search: str | None) -> int:
        """How many products match (the whole catalogue from its counter, no scan)."""
        if category is None and search is None:
            return int(await self.db.fetchval("products_count_all"))  # type: ignore[arg-type]
        return int(await self.db.fetchval("products_count", category, _like(search)))  # type: ignore[arg-type]
