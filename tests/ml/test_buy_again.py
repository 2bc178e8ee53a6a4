"""Buy again (ml/buy_again.py) on small hand-built logs: the values of the cycles, the due
dates and the order of the scores; the baselines it is compared with."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import sparse

from ml import buy_again
from ml.buy_again import RepurchaseLog, product_cycles, score

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)


def log(*rows: tuple[int, int, int, float, float, float]) -> RepurchaseLog:
    """Rows of (customer, product, orders, days since last, days since first, recent orders)."""
    table = np.array(rows, dtype=float)
    keys = table[:, 0].astype(np.int64)
    return RepurchaseLog.from_rows(AS_OF, keys, table[:, 1:])


def test_product_cycles_are_the_smoothed_repeat_rate_and_the_median_interval():
    market = log(
        (1, 10, 5, 2.0, 30.0, 4.0),  # every 7 days
        (2, 10, 3, 1.0, 21.0, 2.5),  # every 10 days
        (3, 10, 2, 5.0, 17.0, 1.8),  # every 12 days
        (4, 10, 1, 3.0, 3.0, 1.0),
        (1, 20, 1, 9.0, 9.0, 0.9),
        (2, 20, 1, 40.0, 40.0, 0.7),
    )
    cycles = product_cycles(market)
    assert cycles.product_ids.tolist() == [10, 20]
    assert cycles.buyers.tolist() == [4.0, 2.0]
    prior = 3 / 6  # three of the six (customer, product) pairs were re-bought
    assert cycles.prior_repeat_rate == prior
    assert cycles.repeat_rate[0] == pytest.approx((3 + 5 * prior) / (4 + 5))
    assert cycles.repeat_rate[1] == pytest.approx((0 + 5 * prior) / (2 + 5))
    assert cycles.median_interval[0] == 10.0
    assert np.isnan(cycles.median_interval[1])  # nobody re-bought it
    rate, interval = cycles.lookup(np.array([20, 99]))
    assert rate[1] == prior
    assert np.isnan(interval[1])


def test_an_item_due_ranks_above_one_long_overdue_and_says_when_it_is_due():
    # Same product statistics, same weighted orders: only the timing differs.
    market = log((1, 10, 5, 7.0, 35.0, 3.0), (1, 20, 5, 70.0, 98.0, 3.0), (2, 10, 2, 0.0, 7.0, 2.0),
                 (2, 20, 2, 0.0, 7.0, 2.0))  # fmt: skip
    cycles = product_cycles(market)
    mine = log((1, 10, 5, 7.0, 35.0, 3.0), (1, 20, 5, 70.0, 98.0, 3.0))
    scored = score(mine, cycles)
    # Own cycle 7 days (4 intervals) shrunk by one interval of the product's median (7): 7.
    assert scored.cycle_days.tolist() == [7.0, 7.0]
    assert scored.days_until_due.tolist() == [0.0, -63.0]  # due today; nine weeks overdue
    rate = cycles.repeat_rate[0]
    assert scored.scores[0] == pytest.approx(3.0 * rate)
    assert scored.scores[1] == pytest.approx(3.0 * rate / (1 + 0.05 * (70 / 7 - 1)))
    assert scored.top(10)[1].tolist() == [0, 1]


def test_habitual_and_recent_products_rank_first():
    # Product 10 is re-bought by most of its buyers, 20 by none (a one-off).
    market = log(*[(c, 10, 4, 3.0, 30.0, 3.0) for c in range(1, 6)],
                 *[(c, 20, 1, 3.0, 3.0, 1.0) for c in range(1, 6)])  # fmt: skip
    cycles = product_cycles(market)
    mine = log((9, 10, 2, 10.0, 20.0, 1.5), (9, 20, 2, 10.0, 20.0, 1.5),
               (9, 30, 2, 200.0, 210.0, 0.3))  # fmt: skip
    scored = score(mine, cycles)
    assert scored.top(2)[9].tolist() == [0, 1]  # the habitual one, then the one-off; not 30
    # An item bought long ago weighs less than the same count bought recently.
    assert scored.scores[2] < scored.scores[1]


def test_a_single_order_takes_the_products_cycle_or_the_customers_rhythm():
    market = log((1, 10, 3, 0.0, 28.0, 2.5), (2, 10, 3, 0.0, 12.0, 2.5))  # 14 and 6 days
    cycles = product_cycles(market)
    mine = log((5, 10, 1, 4.0, 4.0, 1.0), (5, 30, 1, 4.0, 4.0, 1.0), (5, 40, 3, 1.0, 21.0, 2.0))
    scored = score(mine, cycles)
    # Product 10: its median (10 days). Product 30, unknown: the customer's median over what
    # they re-bought (product 40, every 10 days). Product 40: (2 x 10 + 1 x its prior) / 3,
    # its prior being the customer's own median again (nobody else bought it).
    assert scored.cycle_days.tolist() == [10.0, 10.0, 10.0]
    assert scored.days_until_due.tolist() == [6.0, 6.0, 9.0]


def test_top_lists_per_customer_best_first_ties_to_the_more_recent():
    mine = log((1, 10, 2, 5.0, 9.0, 1.0), (1, 20, 2, 1.0, 9.0, 1.0), (2, 10, 1, 1.0, 1.0, 1.0))
    cycles = product_cycles(mine)
    scored = buy_again.BuyAgainScores(mine, np.array([1.0, 1.0, 2.0]), np.ones(3), np.zeros(3))
    assert {c: rows.tolist() for c, rows in scored.top(5).items()} == {1: [1, 0], 2: [2]}
    assert len(score(mine, cycles).top(1)[1]) == 1
    # Nobody asked has bought anything (an export of a customer without purchases).
    empty = RepurchaseLog.from_rows(AS_OF, np.empty(0, np.int64), np.empty((0, 5)))
    assert score(empty, cycles).top(5) == {}


def test_baselines_rank_as_they_say():
    customers, products = np.array([1, 2, 3]), np.array([10, 20, 30])
    mine = log((1, 10, 3, 5.0, 20.0, 2.0), (1, 20, 1, 1.0, 1.0, 1.0), (2, 10, 1, 2.0, 2.0, 1.0),
               (2, 30, 1, 2.0, 2.0, 1.0), (3, 30, 2, 3.0, 9.0, 1.0))  # fmt: skip
    bought = buy_again.interaction_matrix(mine, customers, products)
    assert bought.toarray().tolist() == [[3, 1, 0], [1, 0, 1], [0, 0, 2]]
    recency = sparse.csr_matrix(np.array([[6.0, 2, 0], [3, 0, 3], [0, 0, 4]]))
    own = buy_again.own_most_bought(bought, recency)
    assert [r.tolist() for r in buy_again.top_lists(own, products, 5)] == [[10, 20], [10, 30],
                                                                            [30]]  # fmt: skip
    assert buy_again.popularity(bought).tolist() == pytest.approx([2 / 3, 1 / 3, 2 / 3])
    cooc = buy_again.co_occurrence(bought, bought)
    # Customer 3 bought 30; of 30's two buyers one bought 10, none 20.
    assert cooc[2].tolist() == [0.5, 0.0, 0.0]
    unseen = bought.toarray() == 0
    new = buy_again.top_lists(cooc, products, 1, allowed=unseen)
    assert [r.tolist() for r in new] == [[30], [20], [10]]
    users, items = buy_again.als(bought, factors=3, iterations=15)
    fit = users @ items.T
    # ALS reproduces the preferences it was fitted on: bought cells above unbought ones.
    assert fit[0, 0] > fit[0, 2]
    assert fit[2, 2] > fit[2, 1]
