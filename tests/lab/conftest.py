"""Shared by the lab's tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    """``run_claim`` hands back open matplotlib figures (the report renders and closes
    them); close them after each test, or matplotlib warns once 20 are open."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
