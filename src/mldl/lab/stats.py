"""The few statistics the claims' verdicts use: means, standard deviations and Student-t
intervals over seeds, on plain lists of floats."""

from __future__ import annotations

import math


def mean(values: list[float]) -> float:
    """:math:`\\bar v = \\frac1n \\sum_i v_i`."""
    return sum(values) / len(values)


def sd(values: list[float]) -> float:
    """Sample standard deviation :math:`\\sqrt{\\sum_i (v_i - \\bar v)^2 / (n - 1)}` (0 for
    fewer than two values)."""
    if len(values) < 2:
        return 0.0
    mu = mean(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (len(values) - 1))


def t_halfwidth(values: list[float], level: float = 0.95) -> float:
    """Half-width of the two-sided Student-t confidence interval of the mean of ``values``,
    :math:`t_{n-1} \\cdot s / \\sqrt n` (infinite with fewer than two)."""
    n = len(values)
    if n < 2:
        return math.inf
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1)) * sd(values) / math.sqrt(n)


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of the seed-paired differences a - b and its 95% t-interval half-width."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return mean(diffs), t_halfwidth(diffs)
