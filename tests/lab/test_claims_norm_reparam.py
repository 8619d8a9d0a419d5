"""The normalization claims on reparametrised weights and fine-tuning statistics
(lab/claims/norm_reparam.py): each runs in the tiny profile, returns the numbers its
decision reads, repeats itself exactly; the shared CNN, its data-dependent initialisation and
the measuring helpers do what they say; the decisions on hand-made inputs."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch
from torch import nn

import mldl.lab
import mldl.lab.claims  # registers the claims
from mldl.lab.claims import norm_reparam as claims
from mldl.norm import BatchNorm2d, MeanOnlyBatchNorm2d, spectral_sigma

EXPECTED = {
    "norm.spectral_lipschitz": {
        "seeds",
        "epochs",
        "lr",
        "steps",
        "record_every",
        "band",
        "sigma_min",
        "sigma_max",
        "sigma_final",
        "plain_sigma_initial",
        "plain_sigma_max_final",
        "plain_sigma_product_initial",
        "sigma_product_final",
        "second_over_first_singular_value_final",
        "max_jacobian_norm",
        "max_pair_ratio",
        "random_pairs",
        "test_accuracy",
    },
    "norm.weight_norm_mean_only": {
        "seeds",
        "epochs",
        "widths",
        "lr",
        "tolerance",
        "train_examples",
        "test_examples",
        "test_accuracy",
        "test_nll",
        "final_train_loss",
        "paper_cifar10_test_error",
    },
    "norm.finetune_frozen_bn": {
        "seeds",
        "pretrain_epochs",
        "finetune_epochs",
        "finetune_batch",
        "finetune_lr",
        "pretrain_batch",
        "widths",
        "pretrain_test_accuracy_classes_0_4",
        "new_train_examples",
        "new_test_examples",
        "test_accuracy",
        "last_bn_running_mean_relative_distance_to_new_data",
        "feature_mismatch_by_batch_size",
    },
}


def _fresh(claim_id: str, seed: int = 0) -> mldl.lab.Result:
    return mldl.lab.run_claim(mldl.lab.REGISTRY[claim_id], mldl.lab.Context("tiny", seed=seed))


@functools.cache
def _run(claim_id: str, seed: int = 0) -> mldl.lab.Result:
    """One tiny run per (claim, seed) for the whole module: the tests only read it."""
    return _fresh(claim_id, seed)


def test_every_claim_of_the_module_is_registered():
    ids = {k for k, c in mldl.lab.REGISTRY.items() if c.experiment.__module__ == claims.__name__}
    assert ids == set(EXPECTED)


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


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_same_seed_same_numbers(claim_id):
    first = _run(claim_id)
    second = _fresh(claim_id)
    assert second.error is None, second.error
    assert second.numbers == first.numbers


def test_another_seed_other_numbers():
    a = _run("norm.finetune_frozen_bn", 0).numbers
    b = _run("norm.finetune_frozen_bn", 1).numbers
    assert a["test_accuracy"] != b["test_accuracy"]


def test_seeded_draws_leave_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with claims._seeded(mldl.lab.Context("tiny"), 5):
        torch.rand(10)
    torch.testing.assert_close(torch.rand(3), expected)


def test_spectral_numbers_are_consistent():
    n = _run("norm.spectral_lipschitz").numbers
    for key in ("sn", "sn5", "plain"):
        assert n["sigma_min"][key] <= n["sigma_max"][key]
        # the Lipschitz estimates are lower bounds of the true constant, the σ product an
        # upper bound
        assert n["max_pair_ratio"][key] <= n["sigma_product_final"][key] * (1 + 1e-4)
        assert n["max_jacobian_norm"][key] <= n["sigma_product_final"][key] * (1 + 1e-4)
    # power iteration underestimates σ, so W / σ_estimate has σ >= 1 (up to rounding)
    assert n["sigma_min"]["sn"] > 0.999
    assert n["sigma_min"]["sn5"] > 0.999


def test_finetune_probe_numbers():
    n = _run("norm.finetune_frozen_bn").numbers
    # (c) evaluates with the new data's exact statistics
    assert n["last_bn_running_mean_relative_distance_to_new_data"]["recomputed_new"] == [0.0] * 2
    assert set(n["feature_mismatch_by_batch_size"]) == {str(b) for b in claims.MISMATCH_BATCHES}


# ------------------------------------------------------------------- the CNN and helpers


def _draws(widths=(4, 6, 8), classes=10, seed=0):
    return claims._draw(torch.Generator().manual_seed(seed), widths, classes)


@pytest.mark.parametrize("kind", claims.KINDS)
def test_cnn_variants_share_their_initial_weights(kind):
    draws = _draws()
    model = claims._cnn(kind, draws)
    x = torch.rand(5, 1, 8, 8)
    assert model(x).shape == (5, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(1, 1), (2, 2), (1, 1)]
    for conv, (w, b) in zip(convs, draws[:-1], strict=True):
        torch.testing.assert_close(conv.weight, w)  # weight_norm keeps the weight it wraps
        assert (conv.bias is not None) == (kind in ("plain", "wn"))
        if conv.bias is not None:
            torch.testing.assert_close(conv.bias, b)
    norms = {type(m) for m in model.modules()} & {BatchNorm2d, MeanOnlyBatchNorm2d}
    assert norms == {"bn": {BatchNorm2d}, "wn_mean_only": {MeanOnlyBatchNorm2d}}.get(kind, set())


@pytest.mark.parametrize("kind", ["wn", "wn_mean_only"])
def test_data_dependent_init_normalises_each_layer_on_the_batch(kind):
    model = claims._cnn(kind, _draws())
    x = torch.rand(128, 1, 8, 8)
    claims._data_dependent_init(model, x)
    for m in model.modules():  # the init pass leaves no trace in the running means
        if isinstance(m, MeanOnlyBatchNorm2d):
            assert int(m.num_batches_tracked) == 0 and bool((m.running_mean == 0).all())
    pre = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: pre.append(out))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model.train()(x)
    for h in hooks:
        h.remove()
    assert len(pre) == 4
    for out in pre:
        dims = [0, *range(2, out.dim())]
        var, mean = torch.var_mean(out, dim=dims, correction=0)
        torch.testing.assert_close(var, torch.ones_like(var), atol=1e-3, rtol=0)
        if kind == "wn" or out.dim() == 2:  # with mean-only BN the convolutions have no bias
            torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-4, rtol=0)
    # no hook left behind
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_lipschitz_of_a_linear_map_is_its_spectral_norm():
    ctx = mldl.lab.Context("tiny")
    layer = nn.Linear(6, 4)
    net = nn.Sequential(layer)
    x = torch.rand(50, 6)
    jac, ratio = claims._lipschitz(net, x, 200, ctx, 0)
    sigma = float(spectral_sigma(layer))
    torch.testing.assert_close(jac, torch.full_like(jac, sigma), atol=1e-5, rtol=1e-5)
    assert ratio <= sigma * (1 + 1e-6)
    assert claims._second_over_first(layer) <= 1.0


def test_feature_mismatch_leaves_the_body_as_it_was():
    model = claims._cnn("bn", _draws(classes=5))
    body = model[:-1]
    with torch.no_grad():
        body.train()(torch.rand(64, 1, 8, 8))  # running statistics away from their defaults
    before = copy.deepcopy(body.state_dict())
    gaps = claims._feature_mismatch(
        body, torch.rand(32, 1, 8, 8), (2, 32), torch.Generator(), mldl.lab.Context("tiny")
    )
    assert len(gaps) == 2 and all(g >= 0 for g in gaps)
    for k, v in body.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_train_only_updates_what_requires_grad():
    ctx = mldl.lab.Context("tiny")
    model = claims._cnn("bn", _draws(classes=5))
    body = model[:-1]
    for p in body.parameters():
        p.requires_grad_(False)
    frozen = copy.deepcopy(body.state_dict())
    head = copy.deepcopy(model[-1].state_dict())
    x, y = torch.rand(20, 1, 8, 8), torch.randint(0, 5, (20,))
    history = claims._train(model, x, y, ctx, epochs=2, lr=1e-2, batch_size=4, stream=0, desc="")
    assert len(history) == 2
    for k, v in body.state_dict().items():
        if "running" in k or "num_batches" in k:
            continue  # BN in training mode still tracks its statistics
        torch.testing.assert_close(v, frozen[k])
    assert not torch.equal(model[-1].weight, head["weight"])


# ----------------------------------------------------------------- decisions by hand


def _spectral(sn_max=1.05, plain_end=2.0, jac=0.9, product=1.1):
    return {
        "seeds": 2,
        "steps": 100,
        "band": [0.9, 1.1],
        "sigma_min": {"sn": 1.0, "sn5": 1.0, "plain": 0.8},
        "sigma_max": {"sn": sn_max, "sn5": 1.02, "plain": plain_end},
        "plain_sigma_max_final": plain_end,
        "plain_sigma_product_initial": 0.9,
        "sigma_product_final": {"sn": product, "sn5": 1.05, "plain": 8.0},
        "max_jacobian_norm": {"sn": jac, "sn5": 0.9, "plain": 7.0},
        "max_pair_ratio": {"sn": 0.8, "sn5": 0.8, "plain": 5.0},
    }


def test_spectral_decision():
    assert claims._decide_spectral(_spectral())[0] == "supported"
    assert claims._decide_spectral(_spectral(sn_max=1.3))[0] == "not supported"
    assert claims._decide_spectral(_spectral(jac=1.2, product=1.1))[0] == "not supported"
    assert claims._decide_spectral(_spectral(plain_end=1.05))[0] == "inconclusive"


def _wn(wnmo, wn, bn):
    return {
        "tolerance": claims.WN_TOLERANCE,
        "test_accuracy": {"plain": [0.8] * len(wn), "wn": wn, "bn": bn, "wn_mean_only": wnmo},
    }


def test_weight_norm_decision():
    wn = [0.950, 0.955, 0.948, 0.952]
    bn = [0.970, 0.972, 0.968, 0.971]
    better = [0.972, 0.975, 0.969, 0.973]
    assert claims._decide_weight_norm(_wn(better, wn, bn))[0] == "supported"
    worse_than_wn = [0.940, 0.944, 0.937, 0.941]
    assert claims._decide_weight_norm(_wn(worse_than_wn, wn, bn))[0] == "not supported"
    # beats WN, but clearly below BN - tolerance
    between = [0.958, 0.961, 0.957, 0.959]
    assert claims._decide_weight_norm(_wn(between, wn, bn))[0] == "not supported"
    noisy = [0.990, 0.930, 0.975, 0.925]
    assert claims._decide_weight_norm(_wn(noisy, wn, bn))[0] == "inconclusive"


def _ft(a, b):
    return {
        "finetune_batch": 4,
        "test_accuracy": {"minibatch": a, "frozen_original": b, "recomputed_new": b},
    }


def test_finetune_decision():
    a = [0.60, 0.62, 0.61, 0.63]
    assert claims._decide_finetune(_ft(a, [x + 0.03 for x in a]))[0] == "supported"
    assert claims._decide_finetune(_ft(a, [x - 0.03 for x in a]))[0] == "not supported"
    assert claims._decide_finetune(_ft(a, [0.65, 0.58, 0.64, 0.60]))[0] == "inconclusive"
