"""Batch Renormalization and mean-only batch normalization.

BatchRenorm against the float64 reference (r and d from the renorm statistics, clipped),
its limit r_max=1, d_max=0 (BatchNorm: outputs, gradients, running statistics), the
stop-gradient on r and d, the r_max/d_max schedule (and the known bugs of public
implementations: bounds growing without limit, variance buffers initialised to zeros,
statistics updated in eval). MeanOnlyBatchNorm against its formula y = x - μ + β, with the
weight-norm paper's gradient (the batch mean of the output gradient subtracted).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from mldl import norm as N
from tests import reference as ref

from ._helpers import F32, F64, buffers, data, randomize_parameters

RENORM = [
    (N.BatchRenorm1d, (6, 4)),
    (N.BatchRenorm2d, (5, 4, 2, 3)),
    (N.BatchRenorm3d, (3, 4, 2, 2, 2)),
]
RENORM_IDS = ["1d", "2d", "3d"]


def _set_renorm_stats(layer, mean, var):
    with torch.no_grad():
        layer.renorm_mean.copy_(torch.as_tensor(mean, dtype=layer.renorm_mean.dtype))
        layer.renorm_var.copy_(torch.as_tensor(var, dtype=layer.renorm_var.dtype))


# ------------------------------------------------------------------- float64 reference


@pytest.mark.parametrize(("cls", "shape"), RENORM, ids=RENORM_IDS)
def test_batch_renorm_matches_reference_with_clipping(cls, shape):
    r_max, d_max = 2.0, 0.5
    layer = cls(4, momentum=0.2, r_max=r_max, d_max=d_max, renorm_momentum=0.05, dtype=F64)
    randomize_parameters(layer)
    x = data(*shape, scale=2.0, shift=1.0).requires_grad_()
    mean_b, var_b, m = ref.batch_moments(x.detach())
    # moving averages chosen so that channel 0 is within the bounds, r of channel 1 is
    # clipped above and of channel 2 below, d of channel 3 clipped
    renorm_mean = mean_b.clone()
    renorm_mean[0] += 0.1 * var_b[0].sqrt()
    renorm_mean[3] -= 3.0 * var_b[3].sqrt()
    renorm_var = var_b * torch.tensor([1.5, 0.05, 20.0, 1.0], dtype=F64)
    _set_renorm_stats(layer, renorm_mean, renorm_var)
    twin = copy.deepcopy(layer)  # for the checks below that need a second forward
    r, d = ref.renorm_r_d(x, renorm_mean, renorm_var, r_max, d_max)
    assert r[1] == r_max and r[2] == 1 / r_max and abs(d[3]) == d_max  # clipping happens
    assert 1 / r_max < r[0] < r_max and abs(d[0]) < d_max

    y = layer(x)
    expected = ref.batch_renorm(x, renorm_mean, renorm_var, r_max, d_max, layer.weight, layer.bias)
    assert_close(y, expected)
    g = torch.randn_like(y)
    grads = torch.autograd.grad((y * g).sum(), (x, layer.weight, layer.bias))
    expected_grads = torch.autograd.grad((expected * g).sum(), (x, layer.weight, layer.bias))
    for a, b in zip(grads, expected_grads, strict=True):
        assert_close(a, b)
    # second derivatives too (the native backward of the one-pass path is differentiable)
    twice = []
    for out in (
        twin(x),
        ref.batch_renorm(x, renorm_mean, renorm_var, r_max, d_max, twin.weight, twin.bias),
    ):
        gx, gw = torch.autograd.grad((out * g).sum(), (x, twin.weight), create_graph=True)
        twice.append(torch.autograd.grad((gx**2).sum() + (gw**2).sum(), (x, twin.weight)))
    for a, b in zip(*twice, strict=True):
        assert_close(a, b)
    # float32 input takes the same one-pass path: the reference within float32 rounding
    layer32 = copy.deepcopy(twin).float()
    _set_renorm_stats(layer32, renorm_mean, renorm_var)
    x32 = x.detach().float().requires_grad_()
    y32 = layer32(x32)
    assert_close(y32.double(), expected, rtol=1e-5, atol=1e-5)
    (g32,) = torch.autograd.grad((y32 * g.float()).sum(), x32)
    assert_close(g32.double(), expected_grads[0], rtol=1e-4, atol=1e-4)

    # inference statistics: momentum rule, unbiased variance; renorm statistics: their own
    # momentum, the batch's (biased) variance, the estimator σ_B uses
    zeros, ones = torch.zeros(4, dtype=F64), torch.ones(4, dtype=F64)
    assert_close(layer.running_mean, ref.running_average(zeros, mean_b, 0.2))
    assert_close(layer.running_var, ref.running_average(ones, ref.unbiased(var_b, m), 0.2))
    assert_close(layer.renorm_mean, ref.running_average(renorm_mean, mean_b, 0.05))
    assert_close(layer.renorm_var, ref.running_average(renorm_var, var_b, 0.05))

    layer.eval()  # eval: the inference running statistics, nothing else
    x = data(*shape)
    assert_close(
        layer(x),
        ref.normalize_with(x, layer.running_mean, layer.running_var, layer.weight, layer.bias),
    )


def test_batch_renorm_without_affine_matches_reference():
    layer = N.BatchRenorm2d(4, affine=False, r_max=1.5, d_max=0.2, dtype=F64)
    _set_renorm_stats(layer, [0.3, -0.2, 0.0, 1.0], [0.5, 4.0, 1.0, 2.0])
    x = data(4, 4, 2, 2)
    expected = ref.batch_renorm(x, layer.renorm_mean.clone(), layer.renorm_var.clone(), 1.5, 0.2)
    assert layer.weight is None
    assert_close(layer(x), expected)


# --------------------------------------------------------------------------- invariants


@settings(max_examples=15)
@given(
    n=st.integers(2, 4),
    c=st.integers(1, 3),
    hw=st.integers(1, 3),
    momentum=st.sampled_from([0.0, 0.1, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_batch_renorm_with_r_max_1_d_max_0_is_batch_norm(n, c, hw, momentum, seed):
    gen = torch.Generator().manual_seed(seed)
    brn = N.BatchRenorm2d(c, momentum=momentum, r_max=1.0, d_max=0.0, dtype=F64)
    bn = nn.BatchNorm2d(c, momentum=momentum, dtype=F64)
    with torch.no_grad():
        for layer in (brn, bn):
            layer.weight.copy_(torch.linspace(0.5, 1.5, c, dtype=F64))
            layer.bias.copy_(torch.linspace(-1, 1, c, dtype=F64))
    _set_renorm_stats(brn, torch.full((c,), 5.0), torch.full((c,), 30.0))  # far off: clipped
    for _ in range(2):
        x = torch.randn(n, c, hw, hw + 1, generator=gen, dtype=F64) * 2 + 1
        g = torch.randn(x.shape, generator=gen, dtype=F64)
        outs = []
        for layer in (brn, bn):
            xi = x.clone().requires_grad_()
            y = layer(xi)
            outs.append((y, *torch.autograd.grad((y * g).sum(), (xi, layer.weight, layer.bias))))
        for a, b in zip(*outs, strict=True):
            assert_close(a, b)
    assert_close(brn.running_mean, bn.running_mean)
    assert_close(brn.running_var, bn.running_var)
    assert int(brn.num_batches_tracked) == int(bn.num_batches_tracked) == 2


def test_batch_renorm_r_and_d_get_no_gradient():
    # r, d unclipped and fixed renorm statistics (momentum 0 and renorm_momentum 0): the
    # output is γ(x̂ r + d) + β with r, d constants, so grad_x = r · (BN's grad_x)
    layer = N.BatchRenorm2d(3, momentum=0.0, r_max=10.0, d_max=10.0, renorm_momentum=0.0, dtype=F64)
    randomize_parameters(layer)
    mean, var = torch.tensor([0.3, -0.5, 1.0], dtype=F64), torch.tensor([2.0, 0.3, 1.0], dtype=F64)
    _set_renorm_stats(layer, mean, var)
    x = data(4, 3, 3, 2).requires_grad_()
    g = torch.randn_like(x)
    mean_b, var_b, _ = ref.batch_moments(x.detach())
    r = torch.sqrt(var_b + 1e-5) / torch.sqrt(var + 1e-5)
    d = (mean_b - mean) / torch.sqrt(var + 1e-5)
    assert ((r - 1).abs() > 0.05).all() and (d.abs() > 0.05).all()
    assert (r < 10).all() and (r > 0.1).all() and (d.abs() < 10).all()  # unclipped

    (grad_x,) = torch.autograd.grad((layer(x) * g).sum(), x)
    bn_out = F.batch_norm(x, None, None, layer.weight, layer.bias, True, 0.0, 1e-5)
    (bn_grad_x,) = torch.autograd.grad((bn_out * g).sum(), x)
    assert_close(grad_x, r.view(1, 3, 1, 1) * bn_grad_x)
    # fixed statistics: the second call computes the same r, d
    assert_close(layer.renorm_mean, mean)
    assert_close(layer.renorm_var, var)
    (again,) = torch.autograd.grad((layer(x) * g).sum(), x)
    assert_close(again, grad_x)


def test_batch_renorm_gradcheck_with_r_max_1_d_max_0():
    layer = N.BatchRenorm2d(3, r_max=1.0, d_max=0.0, dtype=F64)
    x = data(3, 3, 2, 2).requires_grad_()
    w = (torch.rand(3, dtype=F64) + 0.5).requires_grad_()
    b = torch.randn(3, dtype=F64, requires_grad=True)

    def f(x, w, b):
        return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, w, b))


# ------------------------------------------------------------------------- the schedule


def test_bounds_follow_the_ramps_and_never_exceed_the_final_values():
    layer = N.BatchRenorm2d(3, r_max=3.0, d_max=5.0, r_max_ramp=(10, 30), d_max_ramp=(10, 20))
    expected = {
        0: (1.0, 0.0),
        5: (1.0, 0.0),
        10: (1.0, 0.0),
        15: (1.5, 2.5),
        20: (2.0, 5.0),
        25: (2.5, 5.0),
        30: (3.0, 5.0),
        31: (3.0, 5.0),
        60: (3.0, 5.0),  # 2x the ramp end: torchrl's bounds would be growing here
        10**6: (3.0, 5.0),
        10**12: (3.0, 5.0),
    }
    for step, bounds in expected.items():
        layer.num_batches_tracked.fill_(step)
        assert layer.bounds() == pytest.approx(bounds), step


def test_paper_schedule():
    layer = N.BatchRenorm2d(3, **N.BatchRenorm2d.paper_schedule())
    # the paper: r_max = 1, d_max = 0 for 5k steps, then linearly to 3 at 40k and 5 at 25k
    for step, bounds in {
        0: (1.0, 0.0),
        5000: (1.0, 0.0),
        15000: (1 + 2 * 10000 / 35000, 5 * 10000 / 20000),
        25000: (1 + 2 * 20000 / 35000, 5.0),
        40000: (3.0, 5.0),
        10**9: (3.0, 5.0),
    }.items():
        layer.num_batches_tracked.fill_(step)
        assert layer.bounds() == pytest.approx(bounds), step


def test_no_ramp_means_final_bounds_from_the_start():
    assert N.BatchRenorm2d(3, r_max=2.0, d_max=1.0).bounds() == (2.0, 1.0)


def test_training_advances_the_schedule_and_uses_its_bounds():
    # ramp from step 2 to 4: the first two training steps are plain BatchNorm (r_max = 1,
    # d_max = 0) however far the renorm statistics are, the fourth uses r_max=3, d_max=5
    layer = N.BatchRenorm2d(
        2, r_max=3.0, d_max=5.0, r_max_ramp=(2, 4), d_max_ramp=(2, 4), dtype=F64
    )
    far_mean, far_var = torch.tensor([4.0, -4.0]), torch.tensor([50.0, 0.01])
    for step in range(1, 5):
        _set_renorm_stats(layer, far_mean, far_var)
        x = data(4, 2, 2, 2)
        y = layer(x)
        assert int(layer.num_batches_tracked) == step
        r_max, d_max = {1: (1.0, 0.0), 2: (1.0, 0.0), 3: (2.0, 2.5), 4: (3.0, 5.0)}[step]
        expected = ref.batch_renorm(x, far_mean, far_var, r_max, d_max, layer.weight, layer.bias)
        assert_close(y, expected)


def test_buffers_initialised_to_ones_not_zeros():
    layer = N.BatchRenorm2d(3)
    assert torch.equal(layer.running_var, torch.ones(3))
    assert torch.equal(layer.renorm_var, torch.ones(3))
    assert torch.equal(layer.running_mean, torch.zeros(3))
    assert torch.equal(layer.renorm_mean, torch.zeros(3))
    for _ in range(2):
        layer(data(4, 3, 2, 2, dtype=F32))
    layer.reset_running_stats()
    assert torch.equal(layer.renorm_var, torch.ones(3))
    assert torch.equal(layer.running_var, torch.ones(3))
    assert int(layer.num_batches_tracked) == 0


EVAL_LAYERS = {
    "BatchNorm2d": lambda: N.BatchNorm2d(3),
    "BatchRenorm2d": lambda: N.BatchRenorm2d(3),
    "MeanOnlyBatchNorm2d": lambda: N.MeanOnlyBatchNorm2d(3),
    "BatchInstanceNorm2d": lambda: N.BatchInstanceNorm2d(3, rho=0.5),
    "SwitchableNorm2d": lambda: N.SwitchableNorm2d(3),
}


@pytest.mark.parametrize("name", list(EVAL_LAYERS))
def test_eval_updates_no_statistic(name):
    layer = EVAL_LAYERS[name]()
    for _ in range(2):
        layer(data(4, 3, 2, 2, dtype=F32))
    layer.eval()
    before = buffers(layer)
    x = data(4, 3, 2, 2, dtype=F32, shift=5.0)
    first = layer(x)
    assert_close(layer(x), first)
    for k, v in buffers(layer).items():
        assert torch.equal(v, before[k]), k


# ------------------------------------------------------------------- mean-only batch norm

MEAN_ONLY = [
    (N.MeanOnlyBatchNorm1d, (6, 3)),
    (N.MeanOnlyBatchNorm1d, (4, 3, 5)),
    (N.MeanOnlyBatchNorm2d, (4, 3, 2, 3)),
    (N.MeanOnlyBatchNorm3d, (2, 3, 2, 2, 2)),
]


@pytest.mark.parametrize("momentum", [0.1, None], ids=["m0.1", "cumulative"])
@pytest.mark.parametrize(("cls", "shape"), MEAN_ONLY, ids=["1d-NC", "1d-NCL", "2d", "3d"])
def test_mean_only_matches_reference(cls, shape, momentum):
    layer = cls(3, momentum=momentum, dtype=F64)
    randomize_parameters(layer)
    running = torch.zeros(3, dtype=F64)
    for t in range(1, 4):
        x = data(*shape).requires_grad_()
        y = layer(x)
        assert_close(y, ref.mean_only_batch_norm(x, layer.bias))
        # the paper: the backward subtracts the batch mean of the output gradient
        g = torch.randn_like(y)
        (gx,) = torch.autograd.grad((y * g).sum(), x)
        assert_close(gx, g - g.mean(dim=ref.batch_dims(g), keepdim=True))
        running = ref.running_average(running, ref.batch_moments(x.detach())[0], momentum or 1 / t)
        assert_close(layer.running_mean, running)
    assert layer.running_var is None and int(layer.num_batches_tracked) == 3
    layer.eval()
    x = data(*shape)
    assert_close(layer(x), ref.mean_only_batch_norm(x, layer.bias, mean=running))


def test_mean_only_without_bias():
    layer = N.MeanOnlyBatchNorm2d(3, bias=False, dtype=F64)
    assert layer.bias is None and list(layer.parameters()) == []
    x = data(4, 3, 2, 2)
    assert_close(layer(x), ref.mean_only_batch_norm(x))


def test_mean_only_gradcheck():
    layer = N.MeanOnlyBatchNorm2d(3, dtype=F64)
    x = data(3, 3, 2, 2).requires_grad_()
    b = torch.randn(3, dtype=F64, requires_grad=True)

    def f(x, b):
        return torch.func.functional_call(layer, {"bias": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, b))
