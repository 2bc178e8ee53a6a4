"""LightGBM fitting shared by every task: seeded, deterministic, early-stopped in time.

The number of boosting rounds is chosen on the latest training cutoff (the model learns from
the earlier ones), then the model is refitted on every training cutoff with that many rounds:
validation respects time just as evaluation does. With a single training cutoff, a seeded
fifth of its customers stands in for the later one.

That model is the one judged on the held-out evaluation cutoff. The one served is fitted once
more by :func:`refit`, with the same rounds, on every cutoff up to as-of, evaluation included,
so it has learnt from the newest behaviour too (the judged model has not seen the last
horizon, which can be most of a young business's history).
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np

from ml.features import FEATURES

MAX_ROUNDS = 400
PATIENCE = 30


def base_params(seed: int) -> dict[str, object]:
    """Parameters every model shares: reproducible and quiet."""
    return {
        "learning_rate": 0.05,
        "num_leaves": 15,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }


def fit(
    params: dict[str, object],
    inputs: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    *,
    groups: Sequence[np.ndarray] | None = None,
    feature_names: Sequence[str] = FEATURES,
    seed: int,
) -> lgb.Booster:
    """Fit on cutoffs ``inputs[i]`` / ``labels[i]`` (oldest first), early-stopped in time.

    ``groups`` (rankers) gives each cutoff's query sizes, in row order.
    """
    merged = _params(params, sum(len(y) for y in labels), seed)
    names = list(feature_names)
    if len(inputs) > 1:
        fit_x, fit_y = np.vstack(inputs[:-1]), np.concatenate(labels[:-1])
        val_x, val_y = inputs[-1], labels[-1]
        fit_g = np.concatenate(groups[:-1]) if groups else None
        val_g = groups[-1] if groups else None
    else:
        fit_x, fit_y, fit_g, val_x, val_y, val_g = _holdout(inputs[0], labels[0], groups, seed)
    train_set = lgb.Dataset(fit_x, fit_y, group=fit_g, feature_name=names, free_raw_data=False)
    valid_set = lgb.Dataset(val_x, val_y, group=val_g, reference=train_set)
    probe = lgb.train(
        merged,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(PATIENCE, verbose=False)],
    )
    # More data supports a few more rounds than the probe found on less of it.
    rounds = int(max(probe.best_iteration, 10) * 1.1)
    return refit(
        params, inputs, labels, rounds=rounds, groups=groups, feature_names=names, seed=seed
    )


def refit(
    params: dict[str, object],
    inputs: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    *,
    rounds: int,
    groups: Sequence[np.ndarray] | None = None,
    feature_names: Sequence[str] = FEATURES,
    seed: int,
) -> lgb.Booster:
    """Fit ``rounds`` rounds on every cutoff of ``inputs`` / ``labels`` (no early stopping)."""
    merged = _params(params, sum(len(y) for y in labels), seed)
    all_g = np.concatenate(groups) if groups else None
    full = lgb.Dataset(
        np.vstack(inputs), np.concatenate(labels), group=all_g, feature_name=list(feature_names)
    )
    return lgb.train(merged, full, num_boost_round=rounds)


def _params(params: dict[str, object], rows: int, seed: int) -> dict[str, object]:
    # Threads only pay off on large data; on small sets they cost more than they save (and
    # they suffer badly when another process, e.g. PostgreSQL, is busy on the same cores).
    # Leaves must hold enough customers for their rates to be probabilities, not noise: this
    # keeps small-data models calibrated and costs large ones nothing.
    sized = {
        "num_threads": 0 if rows >= 100_000 else 1,
        "min_data_in_leaf": max(50, min(rows // 100, 1000)),
    }
    return {**base_params(seed), **sized, **params}


def _holdout(
    x: np.ndarray, y: np.ndarray, groups: Sequence[np.ndarray] | None, seed: int
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    if groups is None:
        valid = rng.random(len(y)) < 0.2
        return x[~valid], y[~valid], None, x[valid], y[valid], None
    sizes = groups[0]
    query_valid = rng.random(len(sizes)) < 0.2
    rows_valid = np.repeat(query_valid, sizes)
    return (
        x[~rows_valid], y[~rows_valid], sizes[~query_valid],
        x[rows_valid], y[rows_valid], sizes[query_valid],
    )  # fmt: skip
