"""Ranks within the rows of a sparse score matrix, without ever making a row dense.

A recommendation source scores every product for every customer, but only a few products get
a positive score (the rest score 0), and the products a customer already bought are excluded
(ranked last). The rank of a product is then its position when the row is sorted by score,
best first, ties in column order, which is what ``np.argsort(-row, kind="stable")`` gives on a
dense row where excluded cells hold ``-inf``. Here the positive cells are sorted once and the
rank of any other cell (a score of 0) is *counted*: the positive cells of its row, plus the
zero-scored eligible cells before it in column order.

Keys are ``row * width + column`` (int64): sorted keys are row-major order, so one
``np.searchsorted`` finds a cell or counts the cells before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def cell_keys(rows: np.ndarray, columns: np.ndarray, width: int) -> np.ndarray:
    """``row * width + column`` as int64: one sortable key per cell."""
    return rows.astype(np.int64) * np.int64(width) + columns.astype(np.int64)


@dataclass(frozen=True, eq=False)
class RowRanks:
    """Positive scores of the eligible cells of ``n_rows`` rows of ``width`` columns, ranked.

    ``keys`` (ascending) and ``values`` are the positive cells; ``ranks`` their 1-based rank
    in their row; ``excluded`` (ascending keys) the cells ranked after every eligible one.
    """

    n_rows: int
    width: int
    keys: np.ndarray
    values: np.ndarray
    ranks: np.ndarray
    excluded: np.ndarray

    def top(self, n: int) -> np.ndarray:
        """Keys of each row's best ``n`` positive cells (ascending)."""
        return self.keys[self.ranks <= n]

    def rank(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """1-based rank of each eligible cell (``rows``, ``columns``) in its row: best score
        first, ties in column order, cells not stored scoring 0 (float64)."""
        asked = cell_keys(rows, columns, self.width)
        row_start = cell_keys(rows, np.zeros_like(columns), self.width)
        found = np.searchsorted(self.keys, asked)
        stored = found < len(self.keys)
        stored[stored] = self.keys[found[stored]] == asked[stored]
        out = np.empty(len(asked), dtype=np.float64)
        out[stored] = self.ranks[found[stored]]
        zero = ~stored
        if zero.any():
            first = np.searchsorted(self.keys, row_start[zero])
            positive = np.searchsorted(self.keys, row_start[zero] + self.width) - first
            positive_before = found[zero] - first
            excluded_before = np.searchsorted(self.excluded, asked[zero]) - np.searchsorted(
                self.excluded, row_start[zero]
            )
            # After every positive cell; then the zero cells of the row in column order.
            out[zero] = positive + 1 + columns[zero] - positive_before - excluded_before
        return out


def rank_rows(
    keys: np.ndarray, values: np.ndarray, excluded: np.ndarray, n_rows: int, width: int
) -> RowRanks:
    """Rank the cells ``keys`` (any order, unique) scored ``values`` within their rows, after
    dropping the ``excluded`` cells (ascending keys) and the cells not scoring above 0."""
    keep = values > 0
    if len(excluded):
        at = np.minimum(np.searchsorted(excluded, keys), len(excluded) - 1)
        keep &= excluded[at] != keys
    keys, values = keys[keep], values[keep]
    if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
    rows = keys // width
    # Within a row: best score first, ties in column order. One sort of one int64 key
    # (row, level of the score from the best, column) when it fits, far quicker than a
    # lexsort of three keys; the levels come from one sort of the scores.
    distinct, level = np.unique(values, return_inverse=True)
    levels = len(distinct)
    if n_rows * levels * width < 2**62:
        worse = (levels - 1 - level).astype(np.int64)
        by_score = np.argsort((rows * levels + worse) * width + (keys - rows * width))
    else:
        by_score = np.lexsort((keys, -values, rows))
    first_of_row = np.searchsorted(rows, np.arange(n_rows))
    ranks = np.empty(len(keys), dtype=np.int64)
    ranks[by_score] = np.arange(len(keys)) - first_of_row[rows[by_score]] + 1
    return RowRanks(n_rows, width, keys, values, ranks, excluded)


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """The distinct ``keys``, ascending (a sort: quicker than ``np.unique``'s hashing on
    millions of int64 keys)."""
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def lookup(keys: np.ndarray, values: np.ndarray, asked: np.ndarray, default: float) -> np.ndarray:
    """``values`` at the ``asked`` keys (``keys`` ascending), ``default`` where absent."""
    out = np.full(len(asked), default, dtype=np.float64)
    if not len(keys):
        return out
    at = np.minimum(np.searchsorted(keys, asked), len(keys) - 1)
    hit = keys[at] == asked
    out[hit] = values[at[hit]]
    return out
