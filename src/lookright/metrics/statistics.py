"""Statistics over seeds and paired predictions (scipy does the distributions).

* :func:`describe`: mean, sample std (ddof 1) and the 95% Student-t interval of the mean.
* :func:`paired_tests`: two methods on the same seeds; paired t-test and Wilcoxon signed-rank
  (exact for small n; with 5 seeds its smallest two-sided p-value is 0.0625).
* :func:`wilson`: Wilson score interval for k successes in n trials.
* :func:`mcnemar`: exact McNemar test on paired per-image correctness (binomial on the
  discordant pairs, two-sided).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from lookright.errors import LookrightError


def _values(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if not np.isfinite(arr).all():
        raise LookrightError(f"statistics need finite values, got {values}")
    return arr


def describe(values: Sequence[float], confidence: float = 0.95) -> dict:
    """``{"mean", "std", "ci_low", "ci_high", "n"}``; None values are dropped; std/CI need n >= 2."""
    arr = _values(values)
    n = len(arr)
    if n == 0:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(arr.mean())
    if n == 1:
        return {"mean": mean, "std": None, "ci_low": None, "ci_high": None, "n": 1}
    std = float(arr.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def paired_tests(a: Sequence[float], b: Sequence[float]) -> dict:
    """Paired t-test and Wilcoxon signed-rank of ``a - b`` (same seeds, same order)."""
    x, y = _values(a), _values(b)
    if len(x) != len(y):
        raise LookrightError(f"paired tests need the same seeds on both sides, got {len(x)} and {len(y)} values")
    out = {"n": len(x), "mean_difference": float((x - y).mean()) if len(x) else None,
           "t_test_p": None, "wilcoxon_p": None}
    if len(x) < 2:
        return out
    diff = x - y
    if np.all(diff == diff[0]):
        # a constant difference: the t statistic is infinite (or undefined when 0)
        out["t_test_p"] = 1.0 if diff[0] == 0 else 0.0
    else:
        out["t_test_p"] = float(stats.ttest_rel(x, y).pvalue)
    out["wilcoxon_p"] = 1.0 if np.all(diff == 0) else float(stats.wilcoxon(x, y).pvalue)
    return out


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for a proportion.

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``z`` the normal quantile.
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise LookrightError(f"wilson needs 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    centre = p + z * z / (2 * trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return (max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale))


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict:
    """Exact McNemar test: ``b`` = a right and b wrong, ``c`` = a wrong and b right, p = 2-sided binomial."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise LookrightError(f"McNemar needs paired predictions on the same images, got {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    p = 1.0 if n == 0 else float(stats.binomtest(only_a, n, 0.5).pvalue)
    return {"only_a": only_a, "only_b": only_b, "p": p}
