"""Evaluation metrics: classification, calibration, counts, censored waiting times, rankings.

Classification scores come from scikit-learn; the rest are small and written out here so
what they mean is visible: the expected calibration error, Harrell's concordance index under
censoring, and precision / recall / NDCG at k over recommendation lists.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score, log loss and calibration error of probabilities ``p``."""
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1))),
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "ece": expected_calibration_error(y, p),
        "base_rate": float(np.mean(y)),
    }


def calibrated_metrics(y: np.ndarray, raw: np.ndarray, served: np.ndarray) -> dict[str, float]:
    """:func:`binary_metrics` of probabilities as served (``served``: calibrated), with the
    ranking metrics of the booster's own output ``raw`` (a monotone map changes no ranking
    but can tie neighbours), and the raw output's Brier score and ECE beside them."""
    metrics = binary_metrics(y, served)
    own = binary_metrics(y, raw)
    return {
        **metrics,
        "roc_auc": own["roc_auc"],
        "pr_auc": own["pr_auc"],
        "brier_uncalibrated": own["brier"],
        "ece_uncalibrated": own["ece"],
    }


def calibration_bins(
    y: np.ndarray, p: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width probability bin: mean predicted, observed rate, count (no empty bins)."""
    index = np.minimum((np.clip(p, 0, 1) * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins).astype(float)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y, minlength=bins)
    keep = counts > 0
    return predicted[keep] / counts[keep], observed[keep] / counts[keep], counts[keep]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |predicted - observed| over probability bins, weighted by the bins' sizes.

    0 is perfect; 0.02 means that, on average, a customer's stated probability is two
    points away from the rate observed among customers given that probability.
    """
    predicted, observed, counts = calibration_bins(y, p, bins)
    return float(np.sum(counts * np.abs(predicted - observed)) / np.sum(counts))


def count_metrics(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """MAE and RMSE of an expected count; also the mean predicted vs. actual (bias) and the
    relative error of the total (predicted orders of everyone over the orders placed, - 1)."""
    error = expected - actual
    total = float(np.sum(actual))
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "bias": float(np.mean(error)),
        "total_error": float(np.sum(expected)) / total - 1.0 if total > 0 else float("nan"),
    }


def concordance_index(time: np.ndarray, observed: np.ndarray, predicted: np.ndarray) -> float:
    """Harrell's C for waiting times under right censoring.

    A pair is comparable when the shorter time is an observed event; it is concordant when
    the shorter time also has the shorter predicted time (ties in prediction count half).
    0.5 is chance, 1.0 a perfect ordering. O(n log n) with a Fenwick tree over prediction ranks.
    """
    n = len(time)
    order = np.argsort(time, kind="stable")
    t, e, pred = time[order], observed[order].astype(bool), predicted[order]
    ranks = np.searchsorted(np.unique(pred), pred) + 1  # 1-based, equal predictions share one
    size = int(ranks.max()) if n else 0
    tree = np.zeros(size + 1, dtype=np.int64)

    def add(i: int) -> None:
        while i <= size:
            tree[i] += 1
            i += i & -i

    def count_le(i: int) -> int:
        total = 0
        while i > 0:
            total += tree[i]
            i -= i & -i
        return int(total)

    concordant = 0.0
    comparable = 0
    inserted = 0
    # Walk from the longest time down: the tree holds everyone with a strictly longer time.
    i = n - 1
    while i >= 0:
        j = i
        while j > 0 and t[j - 1] == t[i]:
            j -= 1
        for k in range(j, i + 1):  # equal times are not comparable with each other
            if e[k]:
                below = count_le(int(ranks[k]) - 1)
                equal = count_le(int(ranks[k])) - below
                above = inserted - below - equal
                concordant += above + 0.5 * equal
                comparable += inserted
        for k in range(j, i + 1):
            add(int(ranks[k]))
            inserted += 1
        i = j - 1
    return concordant / comparable if comparable else float("nan")


def ranking_metrics(
    recommended: list[np.ndarray], relevant: list[set[int]], k: int = 10
) -> dict[str, float]:
    """Precision@k, recall@k and NDCG@k (binary relevance), over users with a relevant item.

    ``recommended[u]`` is user u's ranked list of item ids (best first); ``relevant[u]`` the
    items u went on to buy. Users who bought nothing relevant are skipped: no list can be
    right or wrong for them.
    """
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision, recall, ndcg = [], [], []
    for items, truth in zip(recommended, relevant, strict=True):
        if not truth:
            continue
        top = items[:k]
        hits = np.fromiter((int(i) in truth for i in top), dtype=bool, count=len(top))
        found = int(hits.sum())
        precision.append(found / k)
        recall.append(found / len(truth))
        ideal = discounts[: min(len(truth), k)].sum()
        ndcg.append(float((discounts[: len(top)] * hits).sum() / ideal))
    if not precision:
        return {f"precision_at_{k}": 0.0, f"recall_at_{k}": 0.0, f"ndcg_at_{k}": 0.0, "users": 0}
    return {
        f"precision_at_{k}": float(np.mean(precision)),
        f"recall_at_{k}": float(np.mean(recall)),
        f"ndcg_at_{k}": float(np.mean(ndcg)),
        "users": len(precision),
    }
