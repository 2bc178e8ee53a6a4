"""The customer list statement, composed from fixed fragments.

Each filter a client sets adds one constant SQL fragment and binds its value as a parameter:
client input never becomes SQL text. Composing (rather than one statement with
``$n IS NULL OR ...`` guards) gives PostgreSQL a statement per filter combination, so each is
planned for the indexes it can use (country, created range, trigram search) and stays cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.customer_queries import CustomerFilter, CustomerOrder, CustomerSortField, SortDirection
from domain.pagination import SortValue

_COLUMNS = (
    "c.id, c.first_name, c.last_name, c.email, c.phone, c.country, c.birth_date, "
    "c.created_at, c.updated_at, c.field_sources"
)
_SORT_EXPRESSIONS = {
    CustomerSortField.CREATED_AT: "c.created_at",
    CustomerSortField.TOTAL_SPEND: "coalesce(s.total_spend, 0)",
    # Customers who never bought sort as if their last purchase were infinitely long ago.
    CustomerSortField.LAST_PURCHASE_AT: "coalesce(s.last_purchase_at, '-infinity'::timestamptz)",
    # Unscored customers sort below every score; numeric so that cursors carry it exactly.
    CustomerSortField.CHURN_RISK: "coalesce(cs.churn_probability, -1)::numeric",
}
_STATS_JOIN = " LEFT JOIN customer_purchase_stats s ON s.customer_id = c.id"
_SCORES_JOIN = " LEFT JOIN customer_scores cs ON cs.customer_id = c.id"


@dataclass
class _Builder:
    conditions: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)
    needs_stats: bool = False
    needs_scores: bool = False

    def bind(self, value: object) -> str:
        self.params.append(value)
        return f"${len(self.params)}"


def _where(flt: CustomerFilter, b: _Builder) -> None:
    b.conditions.append("c.erased_at IS NULL")  # tombstones of erased people are not listed
    if flt.country is not None:
        b.conditions.append(f"c.country = {b.bind(flt.normalized_country)}")
    if flt.created_after is not None:
        b.conditions.append(f"c.created_at >= {b.bind(flt.created_after)}")
    if flt.created_before is not None:
        b.conditions.append(f"c.created_at < {b.bind(flt.created_before)}")
    if flt.purchased_since is not None or flt.purchased_until is not None:
        window = []
        if flt.purchased_since is not None:
            window.append(f"p.purchased_at >= {b.bind(flt.purchased_since)}")
        if flt.purchased_until is not None:
            window.append(f"p.purchased_at < {b.bind(flt.purchased_until)}")
        exists = "EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = c.id AND {})"
        b.conditions.append(exists.format(" AND ".join(window)))
    if flt.min_total_spend is not None:
        b.needs_stats = True
        b.conditions.append(f"coalesce(s.total_spend, 0) >= {b.bind(flt.min_total_spend)}")
    if flt.search_pattern is not None:
        b.conditions.append(f"c.search_text LIKE {b.bind(flt.search_pattern)}")
    if flt.min_churn_risk is not None:
        b.needs_scores = True
        b.conditions.append(f"cs.churn_probability >= {b.bind(flt.min_churn_risk)}")
    if flt.max_churn_risk is not None:
        b.needs_scores = True
        b.conditions.append(f"cs.churn_probability <= {b.bind(flt.max_churn_risk)}")


def _from(b: _Builder) -> str:
    return (
        "FROM customers c"
        + (_STATS_JOIN if b.needs_stats else "")
        + (_SCORES_JOIN if b.needs_scores else "")
    )


def _where_clause(b: _Builder) -> str:
    return (" WHERE " + " AND ".join(b.conditions)) if b.conditions else ""


def customer_page_statement(
    flt: CustomerFilter,
    order: CustomerOrder,
    after: tuple[SortValue, ...] | None,
    limit: int,
) -> tuple[str, list[object]]:
    """A statement returning up to `limit` customers after the cursor key, with `sort_value`."""
    b = _Builder()
    _where(flt, b)
    sort = _SORT_EXPRESSIONS[order.field]
    if order.field is CustomerSortField.CHURN_RISK:
        b.needs_scores = True
    elif order.field is not CustomerSortField.CREATED_AT:
        b.needs_stats = True
    direction = "DESC" if order.direction is SortDirection.DESC else "ASC"
    if after is not None:
        op = "<" if order.direction is SortDirection.DESC else ">"
        sort_value, last_id = after
        b.conditions.append(f"({sort}, c.id) {op} ({b.bind(sort_value)}, {b.bind(last_id)})")
    sql = (
        f"SELECT {_COLUMNS}, {sort} AS sort_value {_from(b)}{_where_clause(b)} "
        f"ORDER BY {sort} {direction}, c.id {direction} LIMIT {b.bind(limit)}"
    )
    return sql, b.params


# Exact counts kept by triggers (migration 0012): the sum of a few delta rows, not a scan.
_COUNTED = "SELECT coalesce(sum(d.delta), 0)::bigint AS count FROM count_deltas d WHERE "
_COUNTED_ALL = _COUNTED + "d.counter = 'customers' AND d.key = ''"
_COUNTED_BY_COUNTRY = _COUNTED + "d.counter = 'customers_by_country' AND d.key = $1::text"


def customer_count_statement(flt: CustomerFilter) -> tuple[str, list[object]]:
    """A statement counting the customers that match the filter.

    One SELECT of one bigint column ``count`` with positional parameters, whichever form:
    with no filter, or only a country, it reads the counters migration 0012 keeps; any other
    filter counts the matching rows through the filter's index.
    """
    sql, params, _ = customer_count(flt)
    return sql, params


def customer_count(flt: CustomerFilter) -> tuple[str, list[object], bool]:
    """customer_count_statement's statement and parameters, and whether it scans rows of
    `customers` and of no other table (so that the generation of migration 0015 tells when
    it may have changed): a search, a created range. Not the counters' reads (already cheap),
    nor filters on purchases, spend or scores."""
    b = _Builder()
    _where(flt, b)
    other_tables = b.needs_stats or b.needs_scores
    if not other_tables:
        if len(b.conditions) == 1:  # only "not erased", which the counter already means
            return _COUNTED_ALL, [], False
        if len(b.conditions) == 2 and flt.country is not None:
            return _COUNTED_BY_COUNTRY, [flt.normalized_country], False
    purchases = flt.purchased_since is not None or flt.purchased_until is not None
    alone = not (other_tables or purchases)
    return f"SELECT count(*) {_from(b)}{_where_clause(b)}", b.params, alone
