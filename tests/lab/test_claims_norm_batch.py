"""The normalization claims about the batch (lab/claims/norm_batch.py): each runs in the tiny
profile, returns the numbers its decision reads, repeats itself exactly; the stacked CNNs
are the library's layers (member by member, device by device); the decisions by hand."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import mldl.lab
import mldl.lab.claims  # registers the claims
from mldl import norm
from mldl.lab.claims import norm_batch as claims

from ._helpers import run_tiny as _run

EXPECTED = {
    "norm.batch_size": {
        "batch_sizes",
        "step_batch",
        "seeds",
        "epochs",
        "steps",
        "train_examples",
        "test_examples",
        "kinds",
        "test_accuracy",
        "drop_64_to_2",
        "batch_renorm",
    },
    "norm.switchable_weights": {"batch_sizes", "seeds", "layers", "importance", "bn_weight"},
    "norm.train_eval_gap": {
        "batch_sizes",
        "seeds",
        "accuracy",
        "distance_running",
        "distance_single_batch",
        "distance_by_layer",
    },
    "norm.bin_rho": {
        "rho_inits",
        "near",
        "seeds",
        "epochs",
        "steps",
        "lr",
        "rho_lr",
        "rho",
        "near_0_or_1",
        "near_0",
        "near_1",
        "mean_rho",
        "moved",
        "test_accuracy",
    },
}


def test_every_claim_of_the_module_is_registered():
    registered = {
        k for k, c in mldl.lab.REGISTRY.items() if c.experiment.__module__ == claims.__name__
    }
    assert registered == set(EXPECTED)
    assert "norm" in mldl.lab.claims.ORDER


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_claim_runs_in_the_tiny_profile(claim_id):
    result = _run(claim_id)
    assert result.verdict in mldl.lab.VERDICTS, result.error
    assert set(result.numbers) == EXPECTED[claim_id]
    assert result.reason
    assert result.figures and all(f.caption for f in result.figures)
    json.dumps(result.numbers)  # the report writes them to results.json
    assert result.claim.decide(result.numbers) == (result.verdict, result.reason)


@pytest.mark.parametrize("claim_id", ["norm.batch_size", "norm.bin_rho"])
def test_same_seed_same_numbers(claim_id):
    claims._CACHE.clear()
    first = _run(claim_id).numbers
    claims._CACHE.clear()  # train again rather than reuse the cached models
    second = _run(claim_id)
    assert second.error is None, second.error
    assert second.numbers == first


def test_the_claims_share_one_training():
    claims._CACHE.clear()
    _run("norm.batch_size")
    (key,) = claims._CACHE
    cached = claims._CACHE[key]
    _run("norm.switchable_weights")
    _run("norm.train_eval_gap")
    assert list(claims._CACHE) == [key]
    assert claims._CACHE[key] is cached


def test_per_sample_norms_are_one_model_for_every_batch_size():
    acc = _run("norm.batch_size").numbers["test_accuracy"]
    for kind in claims.SAMPLE_KINDS:
        assert all(row == acc[kind][0] for row in acc[kind])
    assert claims.BATCHES == (2, 4, 16, 64)


# ----------------------------------------------------------------- the stack is the layers


def test_stack_members_are_plain_cnns():
    ctx = mldl.lab.Context("tiny")
    recipe = claims._recipe(ctx)
    blocks = claims._blocks()
    stack = claims._Stack(blocks, recipe, ctx, stream=0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(128, 1, 8, 8, generator=g), torch.randint(0, 10, (128,), generator=g)
    claims._train(ctx, stack, recipe, x, y, 1, "test")  # running statistics move
    test = torch.rand(20, 1, 8, 8, generator=g)
    stack.eval()
    with torch.no_grad():
        logits = stack(test.squeeze(1)[:, None].expand(-1, stack.seeds, -1, -1))
        for i in range(len(blocks)):
            for s in range(stack.seeds):
                plain = claims._plain(stack, i, s).eval()
                torch.testing.assert_close(plain(test), logits[stack.member(i, s)])


def _layers(kind: str, channels: int):
    recipe = claims.Recipe(c1=4, c2=4, epochs=1, train_examples=64, seeds=1)
    layer = claims._make(kind, channels, 1, recipe)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * (1 if kind == "BIN" else 2))
        for name in ("running_mean", "renorm_mean"):
            if hasattr(layer, name):
                getattr(layer, name).normal_(generator=g)
        for name in ("running_var", "renorm_var"):
            if hasattr(layer, name):
                getattr(layer, name).uniform_(0.5, 2.0, generator=g)
        layer.num_batches_tracked.fill_(40)  # BatchRenorm: inside its ramp
    return layer, recipe


@pytest.mark.parametrize("kind", ["BN", "BRN", "BIN"])
@pytest.mark.parametrize("devices", [2, 4])
def test_on_devices_is_the_layer_on_each_device(kind, devices):
    c, b = 6, 3
    layer, recipe = _layers(kind, c)
    reference = [copy.deepcopy(layer).train() for _ in range(devices)]
    wide = claims._make(kind, c * devices, 1, recipe)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(devices * b, c, 4, 4, generator=g) * 2 + 1
    w = torch.randn(devices * b, c, 4, 4, generator=g)
    got = claims._on_devices(layer.train(), wide, x, devices)
    (got * w).sum().backward()
    out = torch.cat([ref(x[k * b : (k + 1) * b]) for k, ref in enumerate(reference)])
    (out * w).sum().backward()
    torch.testing.assert_close(got, out, atol=1e-5, rtol=1e-5)
    for name, p in layer.named_parameters():
        grad = sum(getattr(ref, name).grad for ref in reference)
        torch.testing.assert_close(p.grad, grad, msg=name)
    for name, buf in reference[0].named_buffers():
        if name != "num_batches_tracked":
            torch.testing.assert_close(getattr(layer, name), buf, msg=name)
    assert int(layer.num_batches_tracked) == 41  # one step


@pytest.mark.parametrize("devices", [1, 2, 4])
def test_switchable_devices_is_switchable_norm_on_each_device(devices):
    s, c, b = 2, 3, 4
    g = torch.Generator().manual_seed(3)
    layers = torch.nn.ModuleList(norm.SwitchableNorm2d(c) for _ in range(s))
    with torch.no_grad():
        for m in layers:
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
    reference = [[copy.deepcopy(m).train() for m in layers] for _ in range(devices)]
    x = torch.randn(devices * b, s * c, 4, 4, generator=g) * 2 + 1
    w = torch.randn(devices * b, s * c, 4, 4, generator=g)
    got = claims._switchable_devices(x, layers.train(), devices)
    (got * w).sum().backward()
    out = torch.cat(
        [
            torch.cat(
                [m(x[k * b : (k + 1) * b, i * c : (i + 1) * c]) for i, m in enumerate(refs)], 1
            )
            for k, refs in enumerate(reference)
        ]
    )
    (out * w).sum().backward()
    torch.testing.assert_close(got, out, atol=1e-5, rtol=1e-5)
    for i, m in enumerate(layers):
        for name, p in m.named_parameters():
            grad = sum(getattr(refs[i], name).grad for refs in reference)
            torch.testing.assert_close(p.grad, grad, atol=1e-5, rtol=1e-4, msg=name)
        for name, buf in reference[0][i].named_buffers():
            torch.testing.assert_close(getattr(m, name), buf, msg=name)


def test_batch_renorm_schedule_fits_the_run():
    recipe = claims._recipe(mldl.lab.Context("quick"))
    r = recipe.renorm()
    start, r_end = r["r_max_ramp"]
    assert r["d_max_ramp"][0] == start == recipe.steps // 4
    assert start < r["d_max_ramp"][1] <= r_end < recipe.steps
    assert r["renorm_momentum"] == pytest.approx(3 / start)


def test_distance_is_zero_for_the_same_statistics():
    mean, var = torch.randn(5), torch.rand(5) + 0.5
    assert claims._distance(mean, var, mean, var, 1e-5) == 0.0
    # a shift of one standard deviation, no scale error: distance 1
    assert claims._distance(torch.ones(3), torch.ones(3), torch.zeros(3), torch.ones(3), 0.0) == 1.0


# ----------------------------------------------------------------- decisions by hand


def _bs(bn, gn, brn, seeds=5):
    acc = {k: [[0.9] * seeds for _ in claims.BATCHES] for k in claims.KINDS}
    drop = {k: [0.0] * seeds for k in claims.KINDS}
    drop.update(BN=bn, GN=gn, BRN=brn)
    return {"seeds": seeds, "test_accuracy": acc, "drop_64_to_2": drop}


def test_batch_size_decision():
    decide = claims._decide_batch_size
    zero = [0.0] * 5
    big = [0.10, 0.12, 0.09, 0.11, 0.10]
    small = [0.02, 0.03, 0.01, 0.02, 0.02]
    assert decide(_bs(big, zero, small))[0] == "supported"
    assert decide(_bs(big, zero, [0.11, 0.13, 0.10, 0.12, 0.11]))[0] == "not supported"
    assert decide(_bs(zero, zero, zero))[0] == "not supported"
    noisy = [0.10, -0.08, 0.05, -0.04, 0.02]
    assert decide(_bs(noisy, zero, zero))[0] == "inconclusive"


def _sw(bn_at_2, bn_at_64):
    seeds, layers = len(bn_at_2), 2
    imp = {
        stat: {
            src: [[[0.0] * seeds for _ in range(layers)] for _ in claims.BATCHES]
            for src in ("IN", "LN", "BN")
        }
        for stat in ("mean", "var")
    }
    for stat in ("mean", "var"):
        for layer in range(layers):
            imp[stat]["BN"][0][layer] = list(bn_at_2)
            imp[stat]["BN"][-1][layer] = list(bn_at_64)
    return {
        "batch_sizes": list(claims.BATCHES),
        "seeds": seeds,
        "layers": layers,
        "importance": imp,
    }


def test_switchable_decision():
    decide = claims._decide_switchable
    assert decide(_sw([0.30, 0.31, 0.29], [0.45, 0.44, 0.46]))[0] == "supported"
    assert decide(_sw([0.45, 0.44, 0.46], [0.30, 0.31, 0.29]))[0] == "not supported"
    assert decide(_sw([0.30, 0.45, 0.29], [0.35, 0.31, 0.40]))[0] == "inconclusive"


def _gap(one, run, restored):
    # restored: accuracy with the dataset's statistics minus with the moving averages, b = 2
    seeds = len(restored)
    acc = {
        k: [[0.9] * seeds, [0.95] * seeds] for k in ("running", "dataset", "batch_all", "batch_b")
    }
    acc["dataset"][0] = [0.9 + r for r in restored]
    return {
        "batch_sizes": [2, 64],
        "seeds": seeds,
        "accuracy": acc,
        "distance_running": run,
        "distance_single_batch": one,
    }


def test_gap_decision():
    decide = claims._decide_gap
    one = [[0.12, 0.11, 0.13], [0.02, 0.021, 0.019]]
    run = [[0.03, 0.031, 0.029], [0.004, 0.003, 0.005]]
    assert decide(_gap(one, run, [0.02, 0.03, 0.025]))[0] == "supported"
    assert decide(_gap(one, run, [-0.01, -0.02, 0.0]))[0] == "not supported"
    lagging = [[0.03, 0.031, 0.029], [0.03, 0.031, 0.032]]  # moving average worse at 64
    assert decide(_gap(one, lagging, [0.02, 0.03, 0.025]))[0] == "not supported"
    assert decide(_gap(one, run, [0.02, -0.01, 0.03]))[0] == "inconclusive"


def _rho(near, mean):
    key, ref = "init=0.5", "init=1"
    return {
        "seeds": len(near),
        "near_0_or_1": {key: near, ref: near},
        "near_0": {key: near, ref: near},
        "near_1": {key: near, ref: near},
        "mean_rho": {key: mean, ref: mean},
        "moved": {key: mean, ref: mean},
        "test_accuracy": {key: mean, ref: mean},
    }


def test_bin_rho_decision():
    decide = claims._decide_bin_rho
    assert decide(_rho([0.8, 0.85, 0.9], [0.7, 0.72, 0.69]))[0] == "supported"
    assert decide(_rho([0.4, 0.45, 0.42], [0.7, 0.72, 0.69]))[0] == "not supported"
    assert decide(_rho([0.8, 0.85, 0.9], [0.4, 0.45, 0.42]))[0] == "not supported"
    assert decide(_rho([0.8, 0.55, 0.9], [0.7, 0.72, 0.69]))[0] == "inconclusive"
