"""Ranks within sparse rows against a dense stable sort of the same rows."""

from __future__ import annotations

import numpy as np

from ml.row_ranks import cell_keys, lookup, rank_rows


def test_ranks_of_every_eligible_cell_match_a_stable_sort_of_the_dense_rows():
    rng = np.random.default_rng(3)
    rows, width = 50, 30
    dense = np.where(rng.random((rows, width)) < 0.3, rng.choice([0.5, 1.0, 2.0], (rows, width)), 0)
    excluded = rng.random((rows, width)) < 0.2
    r, c = np.nonzero(dense)
    ranked = rank_rows(
        cell_keys(r, c, width), dense[r, c], np.sort(cell_keys(*np.nonzero(excluded), width)),
        rows, width,
    )  # fmt: skip
    masked = np.where(excluded, -np.inf, dense)
    expected = np.empty((rows, width))
    np.put_along_axis(
        expected, np.argsort(-masked, axis=1, kind="stable"), np.arange(1.0, width + 1), axis=1
    )
    er, ec = np.nonzero(~excluded)
    assert np.array_equal(ranked.rank(er, ec), expected[er, ec])
    top = ranked.top(3)
    want = (expected <= 3) & ~excluded & (dense > 0)
    assert np.array_equal(top, cell_keys(*np.nonzero(want), width))


def test_lookup_finds_stored_cells_and_defaults_the_rest():
    keys = np.array([2, 5, 9])
    got = lookup(keys, np.array([0.2, 0.5, 0.9]), np.array([0, 5, 9, 10, 2]), -1.0)
    assert got.tolist() == [-1.0, 0.5, 0.9, -1.0, 0.2]
    assert lookup(np.empty(0, np.int64), np.empty(0), np.array([1]), 7.0).tolist() == [7.0]
