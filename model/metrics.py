"""Evaluation metrics: Spearman rank correlation (the LaMem benchmark metric) and MSE."""

import numpy as np

try:  # scipy is optional; the numpy fallback below gives the same numbers
    from scipy.stats import spearmanr as _scipy_spearmanr
except ImportError:  # pragma: no cover - depends on the machine
    _scipy_spearmanr = None


def rank_average(x) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span (as scipy's 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1  # mean of ranks start+1..end+1
        start = end + 1
    return ranks


def spearman_numpy(a, b) -> float:
    """Pearson correlation of average ranks; NaN when either side is constant."""
    ra, rb = rank_average(a), rank_average(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def spearman(a, b) -> float:
    if _scipy_spearmanr is not None:
        return float(_scipy_spearmanr(a, b).correlation)
    return spearman_numpy(a, b)


def mse(pred, target) -> float:
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return float(np.mean((pred - target) ** 2))
