"""The Boltzmann-machine claims (lab/claims/boltzmann.py): each runs in the tiny profile and
returns the numbers its decision reads, with captioned figures; the same seed repeats the
numbers exactly; the helpers against enumeration; the decisions on hand-made inputs."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

import mldl.lab
import mldl.lab.claims  # registers the claims
from mldl.lab.claims import boltzmann as bz
from mldl.pgm import DBM

from ._helpers import first_run as _first_run
from ._helpers import run_tiny as _run

EXPECTED = {
    "boltzmann.rbm_digits": {
        "hidden",
        "epochs",
        "updates",
        "train_examples",
        "test_examples",
        "log_z",
        "test_log_likelihood",
        "train_log_likelihood",
        "base_rate_test_log_likelihood",
        "base_rate_train_log_likelihood",
        "mean_difference",
        "difference_halfwidth",
        "rbm_better_fraction",
        "well_above",
        "test_pseudo_log_likelihood",
        "reconstruction_error_last_epoch",
    },
    "boltzmann.pcd_vs_cd1": {
        "seeds",
        "hidden",
        "epochs",
        "updates",
        "checkpoint_updates",
        "test_log_likelihood",
        "train_log_likelihood",
        "log_z",
        "mean_test_log_likelihood_curve",
    },
    "boltzmann.dbn_pretraining": {
        "seeds",
        "layer_sizes",
        "pretrain_epochs",
        "finetune_epochs",
        "finetune_lr",
        "test_accuracy",
        "best_epoch",
        "best_validation_accuracy",
        "first_epoch_test_accuracy",
        "mean_test_accuracy_curve",
    },
    "boltzmann.dbm_bound": {
        "seeds",
        "hidden",
        "top",
        "pretrain_epochs",
        "epochs",
        "rbm_epochs",
        "ais_betas",
        "ais_runs",
        "max_ais_std_error",
        "rbm_test_log_likelihood",
        "dbm_bound_ais",
        "dbm_bound_exact",
        "dbm_exact_test_log_likelihood",
        "smallest_per_digit_bound_gap",
        "ais_log_z",
        "ais_std_error",
        "exact_log_z",
    },
}


def test_every_claim_is_registered_in_the_notes_order():
    assert {k for k, c in mldl.lab.REGISTRY.items() if c.experiment.__module__ == bz.__name__} == (
        set(EXPECTED)
    )
    assert "boltzmann" in mldl.lab.claims.ORDER
    ids = list(mldl.lab.load_claims())
    assert [i for i in ids if i.startswith("boltzmann.")] == list(EXPECTED)


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_claim_runs_in_the_tiny_profile_and_repeats(claim_id):
    first = _first_run(claim_id)
    assert first.verdict in mldl.lab.VERDICTS, first.error
    assert set(first.numbers) == EXPECTED[claim_id]
    assert first.reason
    assert first.figures and all(f.caption for f in first.figures)
    json.dumps(first.numbers)  # the report writes them to results.json
    # the decision reads the returned numbers only
    assert first.claim.decide(first.numbers) == (first.verdict, first.reason)
    again = _run(claim_id)
    assert again.error is None, again.error
    assert again.numbers == first.numbers
    assert again.table == first.table


def test_rbm_digits_numbers_are_consistent():
    n = _first_run("boltzmann.rbm_digits").numbers
    assert n["test_examples"] == 449 and n["train_examples"] == 989
    assert n["log_z"] > 0
    assert n["test_log_likelihood"] < 0 and n["base_rate_test_log_likelihood"] < 0
    assert n["mean_difference"] == pytest.approx(
        n["test_log_likelihood"] - n["base_rate_test_log_likelihood"]
    )
    assert 0.0 <= n["rbm_better_fraction"] <= 1.0
    # the pseudo-log-likelihood of 64 binary pixels is not a log-likelihood, but negative
    assert n["test_pseudo_log_likelihood"] < 0


def test_pcd_numbers_have_one_value_per_seed_and_checkpoint():
    n = _first_run("boltzmann.pcd_vs_cd1").numbers
    for key in ("test_log_likelihood", "train_log_likelihood", "log_z"):
        assert set(n[key]) == set(bz.METHODS)
        assert all(len(v) == n["seeds"] for v in n[key].values())
    assert n["checkpoint_updates"][-1] == n["updates"]
    for m in bz.METHODS:
        curve = n["mean_test_log_likelihood_curve"][m]
        assert len(curve) == len(n["checkpoint_updates"])
        assert curve[-1] == pytest.approx(sum(n["test_log_likelihood"][m]) / n["seeds"])


def test_dbn_numbers_have_one_value_per_seed():
    n = _first_run("boltzmann.dbn_pretraining").numbers
    for key in ("test_accuracy", "best_epoch", "first_epoch_test_accuracy"):
        assert set(n[key]) == set(bz.ARMS)
        assert all(len(v) == n["seeds"] for v in n[key].values())
    assert all(0.0 <= a <= 1.0 for v in n["test_accuracy"].values() for a in v)
    assert all(1 <= e <= n["finetune_epochs"] for v in n["best_epoch"].values() for e in v)


def test_dbm_numbers_check_ais_against_the_exact_log_partition():
    n = _first_run("boltzmann.dbm_bound").numbers
    for key in ("rbm_test_log_likelihood", "dbm_bound_ais", "ais_std_error", "exact_log_z"):
        assert len(n[key]) == n["seeds"]
    for ais, se, exact in zip(n["ais_log_z"], n["ais_std_error"], n["exact_log_z"], strict=True):
        assert se > 0
        assert abs(ais - exact) < 6 * se + 0.05
    # the bound is below the exact log-likelihood, digit by digit
    assert min(n["smallest_per_digit_bound_gap"]) >= -1e-9
    for bound, exact in zip(n["dbm_bound_exact"], n["dbm_exact_test_log_likelihood"], strict=True):
        assert bound <= exact + 1e-9


# ------------------------------------------------------------------------------ helpers


def _bits(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def test_dbm_exact_log_likelihood_matches_enumeration():
    dbm = DBM([4, 3, 2], generator=0, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in [*dbm.weights, *dbm.biases]:
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    v, h1, h2 = _bits(4), _bits(3), _bits(2)
    n1, n2 = len(h1), len(h2)
    unnorm = torch.stack(
        [
            torch.logsumexp(
                -dbm.energy(
                    [row.expand(n1 * n2, 4), h1.repeat_interleave(n2, 0), h2.repeat(n1, 1)]
                ),
                0,
            )
            for row in v
        ]
    ).detach()
    log_z = float(torch.logsumexp(unnorm, 0))
    got = bz.dbm_exact_log_likelihood(dbm, v, log_z, chunk=3)
    torch.testing.assert_close(got, unnorm - log_z)
    assert log_z == pytest.approx(dbm.log_partition("exact").value)
    assert bool((dbm.lower_bound(v, log_z) <= got + 1e-12).all())


def test_base_rate_log_likelihood_is_independent_smoothed_bernoullis():
    train = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    test = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    p = torch.tensor([3 / 5, 1 / 5], dtype=torch.float64)  # (count + 1) / (n + 2)
    torch.testing.assert_close(bz.base_rate_log_likelihood(train, test), p.log().sum().view(1))


def test_mosaic_places_tiles_with_gaps():
    images = torch.arange(3 * 64, dtype=torch.float64).view(3, 64)
    m = bz._mosaic(images, cols=2)
    assert m.shape == (17, 17)
    torch.testing.assert_close(m[9:17, 0:8], images[2].view(8, 8))
    assert torch.isnan(m[8]).all() and torch.isnan(m[9:, 9:]).all()
    signed = bz._mosaic(images - 100, cols=3, normalise=True)
    assert float(signed[~torch.isnan(signed)].abs().max()) == 1.0


# ----------------------------------------------------------------- decisions by hand


def test_rbm_digits_decision():
    def numbers(diff, half):
        return {
            "hidden": 20,
            "test_examples": 449,
            "test_log_likelihood": -18.0,
            "base_rate_test_log_likelihood": -18.0 - diff,
            "mean_difference": diff,
            "difference_halfwidth": half,
            "rbm_better_fraction": 0.9,
            "well_above": 1.0,
        }

    assert bz._decide_rbm_digits(numbers(6.0, 0.4))[0] == "supported"
    assert bz._decide_rbm_digits(numbers(0.3, 0.2))[0] == "not supported"
    assert bz._decide_rbm_digits(numbers(1.1, 0.3))[0] == "inconclusive"


def test_pcd_decision():
    def numbers(pcd, cd):
        return {"seeds": len(pcd), "updates": 3000, "test_log_likelihood": {"pcd": pcd, "cd1": cd}}

    base = [-18.5, -18.4, -18.6, -18.45, -18.55]
    assert bz._decide_pcd(numbers([x + 0.3 for x in base], base))[0] == "supported"
    assert bz._decide_pcd(numbers([x - 0.3 for x in base], base))[0] == "not supported"
    noisy = [-18.2, -18.8, -18.3, -18.7, -18.5]
    assert bz._decide_pcd(numbers(noisy, base))[0] == "inconclusive"


def test_dbn_decision():
    def numbers(pre, rand):
        return {
            "seeds": len(pre),
            "finetune_epochs": 30,
            "test_accuracy": {"pretrained": pre, "random": rand},
            "first_epoch_test_accuracy": {"pretrained": pre, "random": rand},
        }

    rand = [0.92, 0.93, 0.91, 0.92, 0.925]
    assert bz._decide_dbn(numbers([a + 0.02 for a in rand], rand))[0] == "supported"
    assert bz._decide_dbn(numbers([a - 0.02 for a in rand], rand))[0] == "not supported"
    assert bz._decide_dbn(numbers([0.94, 0.91, 0.93, 0.90, 0.93], rand))[0] == "inconclusive"


def test_dbm_decision():
    def numbers(bound, rbm, se=0.03):
        return {
            "seeds": len(bound),
            "hidden": 16,
            "dbm_bound_ais": bound,
            "dbm_bound_exact": bound,
            "dbm_exact_test_log_likelihood": bound,
            "rbm_test_log_likelihood": rbm,
            "ais_std_error": [se] * len(bound),
            "max_ais_std_error": 0.5,
        }

    rbm = [-18.3, -18.2, -18.25, -18.4]
    assert bz._decide_dbm(numbers([x + 0.3 for x in rbm], rbm))[0] == "supported"
    assert bz._decide_dbm(numbers([x - 0.3 for x in rbm], rbm))[0] == "not supported"
    assert bz._decide_dbm(numbers([-18.0, -18.5, -18.1, -18.6], rbm))[0] == "inconclusive"
    # AIS too imprecise to judge, whatever the means say
    verdict, reason = bz._decide_dbm(numbers([x + 0.3 for x in rbm], rbm, se=0.8))
    assert verdict == "inconclusive" and "AIS" in reason
