"""The label-smoothing and calibration claims (lab/claims/smoothing.py, calibration.py): each
runs in the tiny profile, returns the numbers its decision reads, repeats itself exactly;
the stacked trainer matches the lab's MLP and loss; their decisions on hand-made inputs."""

from __future__ import annotations

import json

import pytest
import torch

import mldl.lab
import mldl.lab.claims  # registers the claims
from mldl import losses
from mldl.lab.claims import calibration as cal_claims
from mldl.lab.claims import smoothing as claims
from mldl.lab.train import mlp

from ._helpers import run_tiny as _run

EXPECTED = {
    "smoothing.overconfidence": {
        "epsilons",
        "seeds",
        "train_examples",
        "epochs",
        "hidden",
        "test_examples",
        "test_accuracy",
        "mean_confidence",
        "ece",
        "nll",
    },
    "smoothing.three_snippets": {
        "num_classes",
        "epsilon",
        "pad_index",
        "variants",
        "max_abs_gap_vs_formula",
        "max_abs_gap_vs_snippet",
        "max_abs_row_sum_error",
        "opennmt_padded_row_sum",
        "pairwise_max_abs_difference",
        "trained",
    },
    "smoothing.label_noise": {
        "noise_fraction",
        "flipped_labels",
        "train_examples",
        "epochs",
        "seeds",
        "test_accuracy",
        "memorised_flipped",
        "curve_epochs",
        "mean_curve",
    },
    "calibration.temperature_scaling": {
        "seeds",
        "validation_examples",
        "test_examples",
        "temperature",
        "ece_before",
        "ece_after",
        "nll_before",
        "nll_after",
        "accuracy_before",
        "accuracy_after",
        "predictions_changed",
    },
}


def test_every_smoothing_and_calibration_claim_is_registered():
    registered = {k for k in mldl.lab.REGISTRY if k.startswith(("smoothing.", "calibration."))}
    assert registered == set(EXPECTED)


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_claim_runs_in_the_tiny_profile(claim_id):
    result = _run(claim_id)
    assert result.verdict in mldl.lab.VERDICTS, result.error
    assert set(result.numbers) == EXPECTED[claim_id]
    assert result.reason
    assert result.figures and all(f.caption for f in result.figures)
    json.dumps(result.numbers)  # the report writes them to results.json
    # the decision reads the returned numbers only
    assert result.claim.decide(result.numbers) == (result.verdict, result.reason)


@pytest.mark.parametrize("claim_id", ["smoothing.overconfidence", "smoothing.label_noise"])
def test_same_seed_same_numbers(claim_id):
    claims._CACHE.clear()
    first = _run(claim_id).numbers
    claims._CACHE.clear()  # train again rather than reuse the cached models
    second = _run(claim_id)
    assert second.error is None, second.error
    assert second.numbers == first


def test_another_seed_other_numbers():
    assert _run("smoothing.label_noise", 1).numbers != _run("smoothing.label_noise", 0).numbers


def test_three_snippets_measures_the_three_targets():
    result = _run("smoothing.three_snippets")
    assert result.verdict == "supported"
    v = result.numbers["variants"]
    uniform, others, opennmt = (v[k] for k in v)
    assert uniform["on_target"] == pytest.approx(0.91)
    assert uniform["off_target"] == pytest.approx(0.01)
    assert others["on_target"] == pytest.approx(0.9)
    assert others["off_target"] == pytest.approx(0.1 / 9)
    assert opennmt["off_target"] == pytest.approx(0.1 / 8)
    assert opennmt["pad_column"] == 0.0
    assert result.numbers["opennmt_padded_row_sum"] == 0.0


def test_temperature_scaling_keeps_every_prediction():
    n = _run("calibration.temperature_scaling").numbers
    assert n["predictions_changed"] == [0] * n["seeds"]
    assert n["accuracy_before"] == n["accuracy_after"]
    assert all(t > 0 for t in n["temperature"])


# ------------------------------------------------------------------- the stacked trainer


def test_stack_members_are_the_labs_mlp():
    ctx = mldl.lab.Context("tiny")
    stack = claims._stack(ctx, [64, 16, 16, 10], seeds=2, per_seed=3, stream=0)
    x = torch.rand(5, 64)
    out = stack(x)
    assert out.shape == (6, 5, 10)
    for m in range(6):
        net = mlp(64, 16, 10)
        linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
        with torch.no_grad():
            for layer, w, b in zip(linears, stack.weights, stack.biases, strict=True):
                layer.weight.copy_(w[m].T)
                layer.bias.copy_(b[m, 0])
        torch.testing.assert_close(net(x), out[m])
    # members of one seed share their initial weights; seeds differ
    torch.testing.assert_close(out[0], out[2])
    assert not torch.allclose(out[0], out[3])


def test_smoothed_ce_is_cross_entropy_with_each_epsilon():
    g = torch.Generator().manual_seed(0)
    eps = torch.tensor([0.0, 0.05, 0.1, 0.2], dtype=torch.float64)
    z = torch.randn(4, 7, 10, generator=g, requires_grad=True)
    y = torch.randint(0, 10, (4, 7), generator=g)
    expected = sum(
        losses.cross_entropy(z[m], y[m], label_smoothing=float(e)) for m, e in enumerate(eps)
    )
    torch.testing.assert_close(claims._smoothed_ce(eps)(z, y), expected)


def test_temperature_claim_reuses_the_cached_models():
    claims._CACHE.clear()
    _run("smoothing.overconfidence")
    (key,) = claims._CACHE
    cached = claims._CACHE[key]
    assert cached["val_logits"].shape[:2] == (cached["recipe"].seeds, len(claims.EPSILONS))
    _run("calibration.temperature_scaling")
    assert list(claims._CACHE) == [key]
    assert claims._CACHE[key] is cached


# ----------------------------------------------------------------- decisions by hand


def _over(ece, conf, acc=None):
    seeds = len(ece[0])
    acc = acc or [[0.9] * seeds for _ in ece]
    return {
        "epsilons": [0.0, 0.05, 0.1][: len(ece)],
        "seeds": seeds,
        "test_accuracy": acc,
        "mean_confidence": conf,
        "ece": ece,
        "nll": [[0.3] * seeds for _ in ece],
    }


def test_overconfidence_decision():
    conf = [[0.97, 0.96, 0.97], [0.92, 0.92, 0.93], [0.88, 0.87, 0.88]]
    helps = _over([[0.06, 0.07, 0.065], [0.02, 0.021, 0.019], [0.05, 0.051, 0.049]], conf)
    assert claims._decide_overconfidence(helps)[0] == "supported"
    overshoots = _over([[0.04, 0.041, 0.039], [0.08, 0.081, 0.079], [0.13, 0.13, 0.13]], conf)
    assert claims._decide_overconfidence(overshoots)[0] == "not supported"
    flat = [[0.97, 0.96, 0.97], [0.98, 0.97, 0.97], [0.88, 0.87, 0.88]]
    assert claims._decide_overconfidence(_over(helps["ece"], flat))[0] == "not supported"
    noisy = _over([[0.06, 0.02, 0.065], [0.05, 0.06, 0.03], [0.08, 0.081, 0.079]], conf)
    assert claims._decide_overconfidence(noisy)[0] == "inconclusive"
    costly = _over(helps["ece"], conf, [[0.9] * 3, [0.85] * 3, [0.85] * 3])
    assert claims._decide_overconfidence(costly)[0] == "inconclusive"


def _noise(acc0, acc1):
    memorised = {"eps=0": [0.9] * len(acc0), "eps=0.1": [0.8] * len(acc0)}
    return {
        "noise_fraction": 0.2,
        "test_accuracy": {"eps=0": acc0, "eps=0.1": acc1},
        "memorised_flipped": memorised,
    }


@pytest.mark.parametrize(
    "acc0, acc1, expected",
    [
        ([0.70, 0.72, 0.71, 0.69, 0.70], [0.75, 0.76, 0.76, 0.74, 0.75], "supported"),
        ([0.75, 0.76, 0.76, 0.74, 0.75], [0.70, 0.72, 0.71, 0.69, 0.70], "not supported"),
        ([0.70, 0.72, 0.71, 0.69, 0.70], [0.70, 0.72, 0.71, 0.69, 0.70], "not supported"),
        ([0.70, 0.72, 0.71, 0.69, 0.70], [0.75, 0.70, 0.71, 0.69, 0.72], "inconclusive"),
    ],
)
def test_label_noise_decision(acc0, acc1, expected):
    assert claims._decide_label_noise(_noise(acc0, acc1))[0] == expected


def _ts(before, after, nll_after=(0.3, 0.3, 0.3), changed=(0, 0, 0)):
    return {
        "test_examples": 100,
        "temperature": [1.5] * 3,
        "ece_before": before,
        "ece_after": after,
        "nll_before": [0.35] * 3,
        "nll_after": list(nll_after),
        "accuracy_before": [0.9] * 3,
        "accuracy_after": [0.9] * 3,
        "predictions_changed": list(changed),
    }


def test_temperature_scaling_decision():
    decide = cal_claims._decide_temperature_scaling
    assert decide(_ts([0.05, 0.06, 0.055], [0.02, 0.025, 0.022]))[0] == "supported"
    assert decide(_ts([0.05, 0.06, 0.055], [0.06, 0.07, 0.06]))[0] == "not supported"
    worse_nll = _ts([0.05, 0.06, 0.055], [0.02, 0.025, 0.022], nll_after=(0.4, 0.4, 0.4))
    assert decide(worse_nll)[0] == "not supported"
    changed = _ts([0.05, 0.06, 0.055], [0.02, 0.025, 0.022], changed=(0, 1, 0))
    assert decide(changed)[0] == "not supported"
    assert decide(_ts([0.05, 0.02, 0.055], [0.02, 0.05, 0.022]))[0] == "inconclusive"
