"""The customer list statement binds every client value as a parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from domain.customer_queries import CustomerFilter, CustomerOrder, CustomerSortField, SortDirection
from sql.customer_list import customer_count_statement, customer_page_statement

EVIL = "'; DROP TABLE customers; --"


def test_client_values_never_reach_the_sql_text():
    flt = CustomerFilter(
        country="DE", search=EVIL, min_total_spend=Decimal(5),
        purchased_since=datetime(2025, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    sql, params = customer_page_statement(flt, CustomerOrder(), ("x", 1), 21)
    assert "DROP" not in sql
    assert params[0] == "DE"
    assert "%'; drop table customers; --%" in params
    assert sql.count("$") == len(params)
    count_sql, count_params = customer_count_statement(flt)
    assert "DROP" not in count_sql
    assert count_sql.count("$") == len(count_params) == 4


def test_orderings_use_the_right_keyset_direction():
    asc = CustomerOrder(CustomerSortField.TOTAL_SPEND, SortDirection.ASC)
    sql, _ = customer_page_statement(CustomerFilter(), asc, (Decimal(1), 5), 10)
    assert "(coalesce(s.total_spend, 0), c.id) > ($1, $2)" in sql
    assert "ORDER BY coalesce(s.total_spend, 0) ASC, c.id ASC" in sql
    sql, _ = customer_page_statement(CustomerFilter(), CustomerOrder(), None, 10)
    assert "customer_purchase_stats" not in sql  # no join unless needed
