"""mldl.lab.stats against hand-computed values and scipy's own interval."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from mldl.lab import stats


def test_mean_and_sd_of_a_small_sample():
    assert stats.mean([1.0, 2.0, 3.0, 6.0]) == 3.0
    # deviations -2, -1, 0, 3: squares 14 over n - 1 = 3
    assert stats.sd([1.0, 2.0, 3.0, 6.0]) == pytest.approx(math.sqrt(14 / 3), rel=1e-15)
    assert stats.sd([5.0]) == 0.0


def test_t_halfwidth_is_scipys_interval():
    values = [0.3, -0.1, 0.7, 0.2, 0.4]
    low, high = scipy_stats.t.interval(
        0.95, len(values) - 1, loc=stats.mean(values), scale=scipy_stats.sem(values)
    )
    assert stats.t_halfwidth(values) == pytest.approx((high - low) / 2, rel=1e-12)
    # three values 1, 2, 3: s = 1, t_{0.975, 2} = 4.302653 (tables)
    assert stats.t_halfwidth([1.0, 2.0, 3.0]) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert stats.t_halfwidth([1.0]) == math.inf


def test_paired_differences():
    d, h = stats.paired([1.0, 2.0, 4.0], [0.0, 1.0, 2.0])  # differences 1, 1, 2
    assert d == pytest.approx(4 / 3)
    assert h == pytest.approx(stats.t_halfwidth([1.0, 1.0, 2.0]))
    with pytest.raises(ValueError):
        stats.paired([1.0, 2.0], [1.0])
