"""Shared test settings: value checks on (as `make test` sets), hypothesis without deadlines
(CI machines are slow and shared), a fixed torch seed per test."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

import mldl

settings.register_profile(
    "mldl",
    deadline=None,
    max_examples=int(os.environ.get("MLDL_HYPOTHESIS_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile("mldl")


@pytest.fixture(autouse=True)
def _seed_and_checks():
    """Every test starts from seed 0 with value checks on, and leaves the setting as found."""
    torch.manual_seed(0)
    with mldl.checks(True):
        yield
