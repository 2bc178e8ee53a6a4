"""Statements that build a response's JSON in the database (issue 14).

The API's query compiler (``api/sql_compiler.py``) turns a GraphQL selection into one
statement composed from the fragments here. This module knows tables and columns, never
GraphQL: it renders *views* (a customer, a purchase ...) as maps from a domain attribute name
to the SQL expression that renders it exactly as the Python path serializes it, and it
reuses the named statements of ``sql/queries`` for the rows, correlated to the row that owns
them. Client values are always bound parameters; the only names written into SQL text are
response keys, which GraphQL's grammar restricts to ``[_A-Za-z][_0-9A-Za-z]*``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from domain.access import MaskKind
from domain.customer_queries import TimeWindow as Window
from sql.queries import query

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
_PLACEHOLDER = re.compile(r"\$(\d+)")
# json_build_object takes at most 100 arguments (PostgreSQL's FUNC_MAX_ARGS).
MAX_KEYS = 50


@dataclass(frozen=True, slots=True)
class Raw:
    """A SQL expression standing in for a named statement's parameter (e.g. ``ARRAY[c.id]``)."""

    sql: str


class Statement:
    """The positional parameters of a statement being composed."""

    __slots__ = ("kept", "params")

    def __init__(self) -> None:
        self.params: list[object] = []
        self.kept: list[int] | None = None  # after finish(): the 0-based indices kept

    def bind(self, value: object, type_: str) -> str:
        """A placeholder for ``value``, cast to ``type_`` (so no parameter's type is guessed)."""
        self.params.append(value)
        return f"${len(self.params)}::{type_}"

    def embed(self, sql: str, args: Sequence[object]) -> str:
        """``sql`` (with its own $1..$n) renumbered into this statement; a :class:`Raw`
        argument is written in place of its placeholder instead of being bound."""
        return self._fill(_split(sql), args)

    def _fill(self, template: tuple[list[str], list[int]], args: Sequence[object]) -> str:
        texts, slots = template
        numbers: list[str] = []
        for arg in args:
            if isinstance(arg, Raw):
                numbers.append(f"({arg.sql})")
            else:
                self.params.append(arg)
                numbers.append(f"${len(self.params)}")
        out = [texts[0]]
        for slot, text in zip(slots, texts[1:], strict=True):
            out.append(numbers[slot])
            out.append(text)
        return "".join(out)

    def finish(self, sql: str) -> tuple[str, list[object]]:
        """``sql`` and its parameters, without those bound for parts left out of it (a
        parameter PostgreSQL never sees would be one too many, or of no inferable type)."""
        used = sorted({int(n) for n in _PLACEHOLDER.findall(sql)})
        self.kept = [old - 1 for old in used]
        if len(used) == len(self.params):
            return sql, self.params
        renumbered = {old: new for new, old in enumerate(used, 1)}
        sql = _PLACEHOLDER.sub(lambda m: f"${renumbered[int(m.group(1))]}", sql)
        return sql, [self.params[old - 1] for old in used]

    def named(self, name: str, *args: object) -> str:
        """The named statement ``name`` of sql/queries, embedded (without its semicolon)."""
        return self._fill(_named(name), args)


def _split(sql: str) -> tuple[list[str], list[int]]:
    """``sql`` cut at its placeholders: the texts around them, and each one's 0-based index."""
    parts = _PLACEHOLDER.split(sql)
    return parts[0::2], [int(n) - 1 for n in parts[1::2]]


@cache
def _named(name: str) -> tuple[list[str], list[int]]:
    """A named statement without its comments and semicolon, cut at its placeholders."""
    lines = [line for line in query(name).splitlines() if not line.lstrip().startswith("--")]
    return _split("\n".join(lines).rstrip().rstrip(";"))


def integer(value: int) -> Raw:
    """A page size written into the statement rather than bound: under a generic plan a
    bound LIMIT is planned as if it might be large (a page of 50 newest customers became a
    sort of all of them). Only Python ints, checked against the page-size cap, get here."""
    if type(value) is not int:
        raise TypeError(f"not an int: {value!r}")
    return Raw(str(value))


def key(name: str) -> str:
    """A response key as a SQL string literal (refusing anything but a GraphQL name)."""
    if not _NAME.match(name):
        raise ValueError(f"not a GraphQL name: {name!r}")
    return f"'{name}'"


def json_object(pairs: Sequence[tuple[str, str]], hidden: tuple[str, str] | None = None) -> str:
    """``json_build_object`` of (response key, SQL expression) pairs, in order; ``hidden`` is
    one more pair whose key is ours (not a GraphQL name), taken out before answering."""
    if len(pairs) + (hidden is not None) > MAX_KEYS:
        raise ValueError(f"more than {MAX_KEYS} keys in one object")
    items = [f"{key(k)}, {v}" for k, v in pairs]
    if hidden is not None:
        items.append(f"'{hidden[0]}', {hidden[1]}")
    return "json_build_object(" + ", ".join(items) + ")"


def json_text(value: str) -> str:
    """A Python string as the JSON text ``json.dumps`` makes of it, for a cursor's payload."""
    return json.dumps(value)


def python_float(expression: str) -> str:
    """A float8 as the JSON text the Python path writes of it (orjson): ``cdm_json_float``,
    migration 0014 (PostgreSQL writes ``1`` for ``1.0``, ``1e-06`` for ``1e-6``)."""
    return f"cdm_json_float({expression})"


# -- Views: attribute name -> expression over the view's alias ({a}). ----------------------

TIME = "cdm_json_time({})"
MASKED: dict[MaskKind, str] = {
    MaskKind.NAME: "cdm_mask_name({})",
    MaskKind.EMAIL: "cdm_mask_email({})",
    MaskKind.PHONE: "cdm_mask_phone({})",
    MaskKind.TEXT: "cdm_mask_text({})",
    MaskKind.DATE: "NULL",
    MaskKind.DOCUMENT: "(CASE WHEN {} IS NULL THEN NULL ELSE '{{}}'::json END)",
}

CUSTOMER = {
    "id": "{a}.id::text",
    "first_name": "{a}.first_name",
    "last_name": "{a}.last_name",
    # Customer.full_name: the non-empty parts joined by a space, or null.
    "full_name": (
        "nullif(concat_ws(' ', nullif({a}.first_name, ''), nullif({a}.last_name, '')), '')"
    ),
    "email": "{a}.email",
    "phone": "{a}.phone",
    "country": "{a}.country",
    "birth_date": "{a}.birth_date",
    "created_at": TIME.format("{a}.created_at"),
    "updated_at": TIME.format("{a}.updated_at"),
}
PURCHASE = {
    "id": "{a}.id::text",
    "order_ref": "{a}.order_ref",
    "quantity": "{a}.quantity",
    "unit_price": "{a}.unit_price::text",
    "amount": "{a}.amount::text",
    "currency": "{a}.currency",
    "channel": "{a}.channel",
    "purchased_at": TIME.format("{a}.purchased_at"),
    "source": "{a}.source",
    "external_id": "{a}.external_id",
}
PRODUCT = {
    "id": "{a}.id::text",
    "sku": "{a}.sku",
    "name": "{a}.name",
    "category": "{a}.category",
    "price": "{a}.price::text",
    "currency": "{a}.currency",
    "created_at": TIME.format("{a}.created_at"),
}
IDENTITY = {
    "kind": "upper({a}.kind)",  # the GraphQL enum's member name
    "source": "{a}.source",
    "value": "{a}.value",
    "created_at": TIME.format("{a}.created_at"),
}
CONSENT = {
    "purpose": "{a}.purpose",
    "granted": "{a}.granted",
    "source": "{a}.source",
    "recorded_at": TIME.format("{a}.recorded_at"),
}
INTERACTION = {
    "id": "{a}.id::text",
    "occurred_at": TIME.format("{a}.occurred_at"),
    "channel": "{a}.channel",
    "kind": "{a}.kind",
    "properties": "{a}.properties",
    "source": "{a}.source",
    "external_id": "{a}.external_id",
}
STORED_SCORES = {
    "as_of": TIME.format("{a}.as_of"),
    "scored_at": TIME.format("{a}.scored_at"),
    "churn_probability": python_float("{a}.churn_probability"),
    "churn_model_version": "{a}.churn_model_version",
    "purchase_30d_probability": python_float("{a}.purchase_30d_probability"),
    "expected_purchases": python_float("{a}.expected_purchases"),
    "expected_days_to_next": python_float("{a}.expected_days_to_next"),
    "next_purchase_model_version": "{a}.next_purchase_model_version",
    "upsell_model_version": "{a}.upsell_model_version",
}
# PurchaseSummary over `s` (customer_purchase_stats, null when nothing was bought) and `d`
# (the distinct counts, joined only when one of them is selected).
SUMMARY = {
    "purchase_count": "coalesce(s.purchase_count, 0)",
    "order_count": "coalesce(d.order_count, 0)",
    "total_spend": "coalesce(s.total_spend::text, '0')",  # str(Decimal(0)) when empty
    "first_purchase_at": TIME.format("s.first_purchase_at"),
    "last_purchase_at": TIME.format("s.last_purchase_at"),
    "average_order_value": "cdm_per_order(s.total_spend, d.order_count)::text",
    "distinct_products": "coalesce(d.distinct_products, 0)",
    "distinct_categories": "coalesce(d.distinct_categories, 0)",
    "currencies": "coalesce(to_json(s.currencies), '[]'::json)",
}
# The distinct counts a summary field needs (each one a count over the customer's purchases).
SUMMARY_DISTINCT = {
    "order_count": ("order_count",),
    "average_order_value": ("order_count",),
    "distinct_products": ("distinct_products",),
    "distinct_categories": ("distinct_categories",),
}
_DISTINCT_COUNTS = {
    "order_count": "count(DISTINCT coalesce(p.order_ref, p.external_id)) AS order_count",
    "distinct_products": "count(DISTINCT p.product_id) AS distinct_products",
    "distinct_categories": "count(DISTINCT pr.category) AS distinct_categories",
}
_SUMMARY_SOURCE = (
    "FROM (SELECT {customer}.id AS customer_id) k"
    " LEFT JOIN customer_purchase_stats s ON s.customer_id = k.customer_id"
)


def summary(customer: str, obj: str, counts: Iterable[str]) -> str:
    """The purchase summary object ``obj`` (over s and d) of the customer aliased ``customer``;
    ``d`` holds only the distinct ``counts`` (of _DISTINCT_COUNTS) its fields need."""
    source = _SUMMARY_SOURCE.format(customer=customer)
    needed = [name for name in _DISTINCT_COUNTS if name in set(counts)]
    if needed:
        products = "distinct_categories" in needed  # the category is the product's
        source += (
            " LEFT JOIN LATERAL (SELECT "
            + ", ".join(_DISTINCT_COUNTS[name] for name in needed)
            + " FROM purchases p"
            + (" LEFT JOIN products pr ON pr.id = p.product_id" if products else "")
            + " WHERE p.customer_id = s.customer_id) d ON true"
        )
    return f"(SELECT {obj} {source})"


def withheld(customer: str, objected: str, no_consent: str | None) -> str:
    """Why predictions about the customer aliased ``customer`` are withheld, or null
    (domain.consent.prediction_withheld): ``objected`` after a refusal of profiling (the view
    profiling_refusals); ``no_consent``, for machine clients, when neither profiling purpose
    was ever decided. Both are placeholders of the reasons' texts."""
    reason = (
        f"CASE WHEN EXISTS (SELECT 1 FROM profiling_refusals r WHERE r.customer_id = {customer}.id)"
        f" THEN {objected}"
    )
    if no_consent is not None:
        reason += (
            f" WHEN NOT EXISTS (SELECT 1 FROM consents k WHERE k.customer_id = {customer}.id"
            f" AND k.purpose IN ('personalization', 'profiling')) THEN {no_consent}"
        )
    return reason + " END"


def stored_scores(customer: str, obj: str, withheld: str) -> str:
    """The stored scores object ``obj`` (over ``cs``), null when none or ``withheld``."""
    return (
        f"(SELECT {obj} FROM customer_scores cs"
        f" WHERE cs.customer_id = {customer}.id AND ({withheld}) IS NULL)"
    )


def recommended_products(scores: str, obj: str) -> str:
    """The products of the stored recommendations (``obj`` over ``pr``), best first."""
    return (
        f"(SELECT coalesce(json_agg({obj} ORDER BY u.o), '[]'::json)"
        f" FROM unnest({scores}.recommended_product_ids) WITH ORDINALITY u(id, o)"
        f" JOIN products pr ON pr.id = u.id)"
    )


def json_list(obj: str, rows: str, alias: str, order: str) -> str:
    """The JSON array of ``obj`` over ``rows`` (aliased ``alias``), in ``order``; [] if none."""
    return f"(SELECT coalesce(json_agg({obj} ORDER BY {order}), '[]'::json) FROM ({rows}) {alias})"


@dataclass(frozen=True, slots=True)
class History:
    """A customer's history table, newest first: purchases or interactions."""

    table: str
    alias: str
    time: str  # the column the history is ordered by (then id), newest first

    def page(
        self, st: Statement, customer: str, limit: int, window: Window,
        kinds: list[str] | None = None,
    ) -> str:  # fmt: skip
        """The numbered rows of one page (``limit`` rows at most) of the customer aliased
        ``customer``: only the conditions the window sets, so each combination is planned for
        the (customer_id, time DESC, id DESC) index, with no guard on absent parameters."""
        a, t = self.alias, f"{self.alias}.{self.time}"
        where = self._where(st, customer, window, kinds)
        if window.after is not None:
            at, last = window.after
            where += (
                f" AND ({t}, {a}.id) < ({st.bind(at, 'timestamptz')}, {st.bind(last, 'bigint')})"
            )
        order = f"{t} DESC, {a}.id DESC"
        rows = (
            f"SELECT * FROM {self.table} {a} WHERE {where}"
            f" ORDER BY {order} LIMIT {integer(limit).sql}"
        )
        return f"({numbered(rows, a, order)})"

    def count(
        self, st: Statement, customer: str, window: Window, kinds: list[str] | None = None
    ) -> str:
        """How many rows of the customer's history the window holds (any page)."""
        where = self._where(st, customer, window, kinds)
        return f"(SELECT count(*) FROM {self.table} {self.alias} WHERE {where})"

    def _where(self, st: Statement, customer: str, window: Window, kinds: list[str] | None) -> str:
        a, t = self.alias, f"{self.alias}.{self.time}"
        where = f"{a}.customer_id = {customer}.id"
        if window.since is not None:
            where += f" AND {t} >= {st.bind(window.since, 'timestamptz')}"
        if window.until is not None:
            where += f" AND {t} < {st.bind(window.until, 'timestamptz')}"
        if kinds is not None:
            where += f" AND {a}.kind = ANY ({st.bind(kinds, 'text[]')})"
        return where


PURCHASES = History("purchases", "p", "purchased_at")
INTERACTIONS = History("interactions", "i", "occurred_at")
PURCHASED_PRODUCT_JOIN = " LEFT JOIN products pr ON pr.id = p.product_id"


def remembered_count(st: Statement, count: str) -> str:
    """One row (generation, n): the customers' generation and ``count`` (a scalar subquery
    counting customers alone), or, while the generation is still the one a count was known
    at, that count without running ``count`` (PostgreSQL evaluates an uncorrelated subquery
    only when its value is first needed, and CASE stops at the first branch that holds).
    The known generation and count are the last two parameters bound here (None: unknown),
    set for each request (api/remembered_counts.py)."""
    return (
        f"SELECT g.generation, CASE WHEN g.generation = {st.bind(None, 'bigint')} "
        f"THEN {st.bind(None, 'bigint')} ELSE {count} END AS n "
        f"FROM ({st.named('customers_generation')}) g"
    )


def remembered_value(cte: str) -> str:
    """The count of a :func:`remembered_count` made the common table ``cte``."""
    return f"(SELECT n FROM {cte})"


def remembered_column(ctes: Iterable[str]) -> str:
    """One bigint[] column: the generation and the count of each :func:`remembered_count`."""
    pairs = (f"(SELECT generation FROM {r}), (SELECT n FROM {r})" for r in ctes)
    return f"ARRAY[{', '.join(pairs)}]"


def one(obj: str, rows: str, alias: str) -> str:
    """``obj`` over the row of ``rows`` (a parenthesized query or a CTE's name); null if none."""
    return f"(SELECT {obj} FROM {rows} {alias})"


def ids(rows: str, first: str | None = None) -> str:
    """The ``id`` column of ``rows`` (a CTE's name), within the page of ``first`` rows."""
    return f"SELECT id FROM {rows}" + (f" WHERE n <= {first}" if first else "")


def numbered(rows: str, alias: str, order: str) -> str:
    """``rows`` with ``n``, each row's position in ``order`` (1-based)."""
    return f"SELECT {alias}.*, row_number() OVER (ORDER BY {order}) AS n FROM ({rows}) {alias}"


class Page:
    """A numbered page of rows (one more than asked, to tell whether more follow)."""

    __slots__ = ("_cursor", "_make_cursor", "alias", "first", "rows")

    def __init__(self, rows: str, alias: str, first: str, cursor: Callable[[], str] | None) -> None:
        self.rows = rows  # numbered rows (a parenthesized query or a CTE's name)
        self.alias = alias
        self.first = first  # the placeholder of the page size
        # Made on first use: a parameter bound but never used has no type PostgreSQL can infer.
        self._make_cursor = cursor
        self._cursor: str | None = None

    @property
    def cursor(self) -> str | None:
        """A row's cursor expression, when cursors of this ordering can be rendered here."""
        if self._cursor is None and self._make_cursor is not None:
            self._cursor = self._make_cursor()
        return self._cursor

    def nodes(self, obj: str) -> str:
        """The page's nodes, as an aggregate over its rows."""
        return (
            f"coalesce(json_agg({obj} ORDER BY {self.alias}.n)"
            f" FILTER (WHERE {self.alias}.n <= {self.first}), '[]'::json)"
        )

    def has_next(self) -> str:
        """Whether a row beyond the page came back."""
        return f"(count(*) > {self.first})"

    def start_cursor(self) -> str:
        """The first node's cursor (null on an empty page)."""
        return f"min({self.cursor}) FILTER (WHERE {self.alias}.n = 1)"

    def end_cursor(self) -> str:
        """The last node's cursor (null on an empty page)."""
        return (
            f"(array_agg({self.cursor} ORDER BY {self.alias}.n DESC)"
            f" FILTER (WHERE {self.alias}.n <= {self.first}))[1]"
        )

    def select(self, obj: str, rows: bool, joins: str = "") -> str:
        """One row: ``obj``, made of this page's aggregates over its rows (``rows``) and what
        ``joins`` adds to them, or of nothing from them (a total count alone reads no page)."""
        if not rows:
            return f"(SELECT {obj})"
        # GROUP BY (): one row even when the page is empty and nothing else aggregates.
        return f"(SELECT {obj} FROM {self.rows} {self.alias}{joins} GROUP BY ())"


def cursor(prefix: str, *values: tuple[str, str]) -> str:
    """The cursor expression of encode_cursor: ``prefix`` is the placeholder of the ordering's
    JSON text; ``values`` are (tag, text expression) pairs of the row's sort key."""
    parts = " || ',' || ".join(
        f"""'["{tag}",' || to_json({expr})::text || ']'""" for tag, expr in values
    )
    return f"cdm_cursor('[' || {prefix} || ',[' || {parts} || ']]')"


PURCHASES_UNBOUNDED_COUNT = (
    "coalesce((SELECT s.purchase_count FROM customer_purchase_stats s"
    " WHERE s.customer_id = {customer}.id), 0)"
)
