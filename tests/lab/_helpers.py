"""Running a claim as the tests do: the tiny profile, a given seed."""

from __future__ import annotations

import functools

import mldl.lab


def run_tiny(claim_id: str, seed: int = 0) -> mldl.lab.Result:
    """A fresh run of ``claim_id`` in the tiny profile."""
    return mldl.lab.run_claim(mldl.lab.REGISTRY[claim_id], mldl.lab.Context("tiny", seed=seed))


@functools.cache
def first_run(claim_id: str) -> mldl.lab.Result:
    """One seed-0 run per claim for the tests that only read it (its figures closed)."""
    result = run_tiny(claim_id)
    import matplotlib.pyplot as plt

    plt.close("all")
    return result
