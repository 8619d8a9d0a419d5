"""The loss-section claims (lab/claims/losses.py): each runs in the tiny profile, returns the
numbers its decision reads, repeats itself exactly; their decisions on hand-made inputs."""

from __future__ import annotations

import pytest
import torch

import mldl.lab
import mldl.lab.claims  # registers the claims
from mldl.lab.claims import losses as claims

from ._helpers import run_tiny as _run

EXPECTED = {
    "losses.value_table": {
        "epochs",
        "test_examples",
        "test_accuracy",
        "values_per_quantity",
        "min_max",
        "inside_stated_range",
        "max_abs_gaps",
        "float32_probabilities_at_boundary",
    },
    "losses.bce_with_logits_stable": {
        "points",
        "logit_range",
        "max_error_loss",
        "max_rel_error_loss",
        "bce_with_logits_rel_error_above_1e-3",
        "max_abs_error_grad",
        "max_loss",
        "points_where_naive_grad_vanishes",
        "at_infinite_logits",
        "exact_at_infinite_logits",
    },
    "losses.smooth_l1_robust": {
        "examples",
        "features",
        "replicates",
        "outlier_fractions",
        "mean_parameter_error",
        "sd_parameter_error",
    },
    "losses.poisson_rate": {
        "truth",
        "sizes",
        "replicates",
        "rmse",
        "mean_standard_error",
        "rmse_over_mean_standard_error",
        "log_log_slope_rmse_vs_n",
        "max_rel_gap_mean_rate_vs_mean_count",
        "example_fit",
    },
    "losses.focal_minority": {
        "minority_classes",
        "kept_fraction",
        "train_counts",
        "seeds",
        "epochs",
        "minority_recall",
        "test_accuracy_mean",
        "test_accuracy",
        "per_class_recall_mean",
    },
}


def test_every_loss_claim_is_registered():
    registered = {k for k in mldl.lab.REGISTRY if k.startswith("losses.")}
    assert registered == set(EXPECTED)


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_claim_runs_in_the_tiny_profile(claim_id):
    result = _run(claim_id)
    assert result.verdict in mldl.lab.VERDICTS, result.error
    assert set(result.numbers) == EXPECTED[claim_id]
    assert result.reason
    assert result.figures and all(f.caption for f in result.figures)
    # the decision reads the returned numbers only
    assert result.claim.decide(result.numbers) == (result.verdict, result.reason)


@pytest.mark.parametrize("claim_id", ["losses.bce_with_logits_stable", "losses.poisson_rate"])
def test_same_seed_same_numbers(claim_id):
    assert _run(claim_id).numbers == _run(claim_id).numbers


def test_experiments_leave_the_thread_count_as_found():
    before = torch.get_num_threads()
    _run("losses.bce_with_logits_stable")
    assert torch.get_num_threads() == before


def test_value_table_measures_the_tables_ranges():
    n = _run("losses.value_table").numbers
    assert n["min_max"]["odds"][0] > 0
    assert 0 < n["min_max"]["probability"][0] <= n["min_max"]["probability"][1] < 1
    assert n["min_max"]["log-likelihood"][1] < 0 < n["min_max"]["NLL"][0]
    assert all(g < 1e-12 for g in n["max_abs_gaps"].values())


def test_bce_claim_sees_the_clamp():
    n = _run("losses.bce_with_logits_stable").numbers
    assert n["max_loss"]["sigmoid + bce"] == pytest.approx(100.0)
    assert n["max_loss"]["exact"] == pytest.approx(120.0)
    assert n["exact_at_infinite_logits"]


# ----------------------------------------------------------------- decisions by hand


def _focal_numbers(ce, focal):
    return {
        "minority_recall": {"cross-entropy": ce, "focal (gamma=2)": focal},
        "test_accuracy_mean": {"cross-entropy": 0.9, "focal (gamma=2)": 0.9},
    }


@pytest.mark.parametrize(
    "ce, focal, expected",
    [
        ([0.2, 0.3, 0.25], [0.3, 0.41, 0.34], "supported"),
        ([0.3, 0.41, 0.34], [0.2, 0.3, 0.25], "not supported"),
        ([0.2, 0.3, 0.25], [0.3, 0.2, 0.25], "inconclusive"),
        ([0.2, 0.3], [0.2, 0.3], "inconclusive"),
    ],
)
def test_focal_decision(ce, focal, expected):
    assert claims._decide_focal(_focal_numbers(ce, focal))[0] == expected


def _smooth_numbers(mse, smooth):
    return {
        "replicates": 5,
        "outlier_fractions": [0.0, 0.05, 0.1, 0.2],
        "mean_parameter_error": {"MSE": mse, "SmoothL1 (beta=1)": smooth},
    }


def test_smooth_l1_decision():
    ok = _smooth_numbers([0.1, 0.8, 1.2, 1.6], [0.11, 0.12, 0.13, 0.15])
    assert claims._decide_smooth_l1(ok)[0] == "supported"
    not_robust = _smooth_numbers([0.1, 0.8, 1.2, 1.6], [0.11, 0.5, 0.7, 1.0])
    assert claims._decide_smooth_l1(not_robust)[0] == "not supported"
    inefficient = _smooth_numbers([0.1, 0.8, 1.2, 1.6], [0.2, 0.12, 0.13, 0.15])
    assert claims._decide_smooth_l1(inefficient)[0] == "not supported"


def test_poisson_decision():
    good = {
        "replicates": 50,
        "sizes": [100, 1000],
        "rmse_over_mean_standard_error": {"a": [1.0, 0.9], "b": [1.1, 1.0]},
        "log_log_slope_rmse_vs_n": {"a": -0.5, "b": -0.48},
        "max_rel_gap_mean_rate_vs_mean_count": 1e-9,
    }
    assert claims._decide_poisson(good)[0] == "supported"
    biased = {**good, "rmse_over_mean_standard_error": {"a": [1.0, 2.5], "b": [1.1, 1.0]}}
    assert claims._decide_poisson(biased)[0] == "not supported"
