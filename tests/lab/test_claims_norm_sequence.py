"""The normalization claims on sequences and distributed training (lab/claims/norm_sequence.py):
each runs in the tiny profile and returns the numbers its decision reads; the training claims
repeat themselves exactly; the stacked models' members are independent of each other; the
distributed workers' failures are reported, not hung on; the decisions on hand-made inputs."""

from __future__ import annotations

import json
import time

import pytest
import torch

import mldl.lab
import mldl.lab.claims  # registers the claims
from mldl.lab.claims import norm_sequence as ns
from mldl.norm import LayerNorm

from ._helpers import first_run as _first_run
from ._helpers import run_tiny as _run

EXPECTED = {
    "norm.layer_norm_rnn": {
        "seeds",
        "epochs",
        "hidden",
        "time_steps",
        "pixels_per_step",
        "train_examples",
        "test_examples",
        "test_accuracy",
        "test_cross_entropy",
        "batch_norm_accuracy_with_test_batch_statistics",
        "final_train_loss",
        "curve_epochs",
        "mean_test_accuracy_curve",
        "batch_norm_mean_shift_per_step",
        "batch_norm_sd_ratio_per_step",
    },
    "norm.scale_norm_transformer": {
        "seeds",
        "steps",
        "layers",
        "d_model",
        "sequence_length",
        "batch_size",
        "test_examples",
        "tolerance",
        "token_accuracy",
        "sequence_accuracy",
        "test_cross_entropy",
        "curve_steps",
        "mean_token_accuracy_curve",
    },
    "norm.distributed_batch_sizes": {
        "batch_sizes",
        "batches",
        "noise_threshold",
        "plain",
        "sync",
        "effective_sample_weight",
    },
}


@pytest.fixture
def distributed() -> mldl.lab.Result:
    return _first_run("norm.distributed_batch_sizes")


def test_every_claim_is_registered():
    for claim_id in EXPECTED:
        assert claim_id in mldl.lab.REGISTRY
    assert {k for k, c in mldl.lab.REGISTRY.items() if c.experiment.__module__ == ns.__name__} == (
        set(EXPECTED)
    )


def _check(result: mldl.lab.Result, claim_id: str) -> None:
    assert result.verdict in mldl.lab.VERDICTS, result.error
    assert set(result.numbers) == EXPECTED[claim_id]
    assert result.reason
    assert result.figures and all(f.caption for f in result.figures)
    json.dumps(result.numbers)  # the report writes them to results.json
    # the decision reads the returned numbers only
    assert result.claim.decide(result.numbers) == (result.verdict, result.reason)


@pytest.mark.parametrize("claim_id", ["norm.layer_norm_rnn", "norm.scale_norm_transformer"])
def test_training_claim_runs_in_the_tiny_profile_and_repeats(claim_id):
    first = _first_run(claim_id)
    _check(first, claim_id)
    again = _run(claim_id)
    assert again.error is None, again.error
    assert again.numbers == first.numbers


def test_rnn_numbers_have_one_value_per_seed():
    n = _first_run("norm.layer_norm_rnn").numbers
    for key in ("test_accuracy", "test_cross_entropy", "final_train_loss"):
        assert set(n[key]) == set(ns.RNN_VARIANTS)
        assert all(len(v) == n["seeds"] for v in n[key].values())
    assert len(n["batch_norm_accuracy_with_test_batch_statistics"]) == n["seeds"]
    assert len(n["batch_norm_mean_shift_per_step"]) == n["time_steps"] == 16
    assert all(0.0 <= a <= 1.0 for v in n["test_accuracy"].values() for a in v)


def test_distributed_claim_runs_in_the_tiny_profile(distributed):
    _check(distributed, "norm.distributed_batch_sizes")


def test_distributed_claim_measures_what_it_should(distributed):
    n = distributed.numbers
    assert n["batch_sizes"] == list(ns.DIST_SIZES)
    plain, sync = n["plain"], n["sync"]
    # synchronised: the concatenated batch's statistics, to rounding (float64)
    for key in ("stat_mean_gap", "stat_var_gap", "bn_output_gap", "loss_gap"):
        for rank_gaps in sync[key]:
            assert max(rank_gaps) < 1e-12, key
        for rank_gaps in plain[key]:
            assert min(rank_gaps) > 1e-3, key
    assert max(sync["ddp_gradient_vs_same_objective"]) < 1e-12
    assert max(sync["counted_gradient_vs_concatenated"]) < 1e-12
    assert min(sync["ddp_gradient_vs_concatenated"]) > 1e-3
    w = n["effective_sample_weight"]
    assert w["ddp_average"] == pytest.approx([1 / (2 * 4), 1 / (2 * 28)])
    assert w["ddp_average_spread"] == 0.0
    assert w["concatenated"] == pytest.approx(1 / 32)
    assert distributed.verdict == "supported"


def test_spawn_reports_a_failing_worker_without_hanging():
    """Machine 1 has no rows (IndexError) once the group is formed; machine 0 then waits in
    its first collective for a peer that is gone, until it notices or is killed."""
    model = ns._bn_model(3, 4, 2)
    job = {
        "shape": (3, 4, 2),
        "state": model.state_dict(),
        "x": torch.zeros(1, 4, 3, dtype=torch.float64),
        "y": torch.zeros(1, 4, dtype=torch.long),
        "sizes": [4],
        "starts": [0],
        "timeout": 20,
    }
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="IndexError"):
        ns._spawn(job, 2)
    assert time.monotonic() - start < ns.DIST_DEADLINE_S


# --------------------------------------------------------------- the stacked models


def test_rnn_members_are_independent_and_layer_norm_is_per_sample():
    ctx = mldl.lab.Context("tiny")
    recipe = ns._rnn_recipe(ctx)
    model = ns._StackedRnn(ctx, recipe, stream=0)
    s, m = recipe.seeds, recipe.seeds * len(ns.RNN_VARIANTS)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(m, 5, recipe.steps, recipe.pixels_per_step, generator=g) * 16
    out = model(x)
    assert out.shape == (m, 5, 10)
    # changing one member's input changes that member's output only (BatchNorm's channels
    # are per member)
    x2 = x.clone()
    x2[2 * s] += 1.0  # the first BatchNorm member
    out2 = model(x2)
    changed = (out2 - out).abs().amax((1, 2)) > 0
    assert changed.tolist() == [i == 2 * s for i in range(m)]
    # the LayerNorm members compute the plain recurrence with mldl's LayerNorm
    r, k = 1, s + 1  # seed 1's LayerNorm member
    ln = LayerNorm(recipe.hidden)
    with torch.no_grad():
        h = torch.zeros(5, recipe.hidden)
        for t in range(recipe.steps):
            h = torch.tanh(ln(x[k, :, t] @ model.w_x[k] + h @ model.w_h[k] + model.b[k]))
        expected = h @ model.w_o[k] + model.b_o[k]
    torch.testing.assert_close(out[k].detach(), expected)
    # every variant of a seed starts from the same weights
    torch.testing.assert_close(model.w_h[r], model.w_h[2 * s + r])


def test_transformer_members_are_independent_and_weight_norm_starts_as_identity():
    ctx = mldl.lab.Context("tiny")
    recipe = ns._tf_recipe(ctx)
    model = ns._StackedTransformer(ctx, recipe, stream=0)
    s, m = recipe.seeds, recipe.seeds * len(ns.TF_VARIANTS)
    x, _ = ns._digit_sorting(6, recipe, torch.Generator().manual_seed(0))
    tokens = x.expand(m, *x.shape).clone()
    out = model(tokens)
    assert out.shape == (m, 6, recipe.length, recipe.vocab)
    # weight normalization starts with g = ‖v‖: ScaleNorm + WN computes what ScaleNorm does
    wn, plain = ns.TF_VARIANTS.index("scale_wn"), ns.TF_VARIANTS.index("scale")
    torch.testing.assert_close(out[wn * s : (wn + 1) * s], out[plain * s : (plain + 1) * s])
    # and their parameters are weight-normalised (g and v), the others' plain weights
    names = {name for name, _ in model.named_parameters()}
    assert any("groups.2.parametrizations.weight.original0" in n for n in names)
    assert not any("groups.1.parametrizations" in n for n in names)
    # one member's tokens change only its own output
    tokens[0] = (tokens[0] + 1) % recipe.vocab
    changed = (model(tokens) - out).abs().amax((1, 2, 3)) > 0
    assert changed.tolist() == [i == 0 for i in range(m)]


# ----------------------------------------------------------------- decisions by hand


def _rnn_numbers(layer, batch, none):
    return {
        "seeds": len(layer),
        "test_accuracy": {"none": none, "layer": layer, "batch": batch},
        "batch_norm_accuracy_with_test_batch_statistics": [0.9] * len(layer),
    }


def test_layer_norm_rnn_decision():
    decide = ns._decide_layer_norm_rnn
    ln = [0.86, 0.87, 0.85, 0.88, 0.86]
    assert decide(_rnn_numbers(ln, [0.5, 0.6, 0.55, 0.52, 0.58], [0.83] * 5))[0] == "supported"
    # BatchNorm beats LayerNorm beyond the spread
    assert decide(_rnn_numbers(ln, [0.95, 0.96, 0.94, 0.97, 0.95], [0.8] * 5))[0] == (
        "not supported"
    )
    # no normalization beats LayerNorm beyond the spread
    verdict, reason = decide(_rnn_numbers(ln, [0.5] * 5, [0.95, 0.96, 0.94, 0.97, 0.95]))
    assert verdict == "not supported" and "no normalization" in reason
    # LayerNorm - BatchNorm within the spread
    assert decide(_rnn_numbers(ln, [0.9, 0.8, 0.88, 0.84, 0.87], [0.8] * 5))[0] == "inconclusive"


def _tf_numbers(layer, scale_wn):
    k = len(layer)
    return {
        "seeds": k,
        "tolerance": 0.02,
        "token_accuracy": {
            "none": [0.9] * k,
            "layer": layer,
            "scale_wn": scale_wn,
            "scale": [0.9] * k,
        },
        "sequence_accuracy": {v: [0.5] * k for v in ns.TF_VARIANTS},
    }


def test_scale_norm_decision():
    decide = ns._decide_scale_norm
    ln = [0.90, 0.91, 0.89, 0.92, 0.90]
    assert decide(_tf_numbers(ln, [a + 0.003 for a in ln]))[0] == "supported"
    assert decide(_tf_numbers(ln, [a - 0.1 for a in ln]))[0] == "not supported"
    assert decide(_tf_numbers(ln, [a + 0.1 for a in ln]))[0] == "not supported"
    # a mean difference inside the tolerance, an interval reaching outside it
    assert decide(_tf_numbers(ln, [0.93, 0.87, 0.90, 0.95, 0.86]))[0] == "inconclusive"


def _dist_numbers(plain_gap, sync_gap):
    two = [[plain_gap], [plain_gap]]
    return {
        "batch_sizes": [4, 28],
        "batches": 1,
        "plain": {
            **{
                k: two
                for k in (
                    "stat_mean_gap",
                    "stat_var_gap",
                    "bn_output_gap",
                    "loss_gap",
                    "own_gradient_relative_gap",
                )
            },
            "ddp_gradient_vs_same_objective": [plain_gap],
        },
        "sync": {
            **{
                k: [[sync_gap], [sync_gap]]
                for k in ("stat_mean_gap", "stat_var_gap", "bn_output_gap", "loss_gap")
            },
            "ddp_gradient_vs_same_objective": [sync_gap],
            "ddp_gradient_vs_concatenated": [0.5],
            "counted_gradient_vs_concatenated": [sync_gap],
        },
        "effective_sample_weight": {"ddp_average": [0.125, 1 / 56], "concatenated": 1 / 32},
    }


def test_distributed_decision():
    decide = ns._decide_distributed
    assert decide(_dist_numbers(0.3, 1e-16))[0] == "supported"
    assert decide(_dist_numbers(1e-9, 1e-16))[0] == "not supported"
    assert decide(_dist_numbers(0.3, 1e-3))[0] == "inconclusive"
