"""Batch-Instance Normalization and Switchable Normalization, which mix statistics.

Against the float64 reference (each scope's moments computed directly over its own
dimensions), their limits (BIN: ρ=1 is BatchNorm, ρ=0 InstanceNorm; SN: one-hot weights give
IN, LN and BN), the "compute once" moments, the 1x1 feature maps that give the official SN
code NaN, and gradcheck.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from mldl import norm as N
from mldl.norm import _stats
from tests import reference as ref

from ._helpers import F64, data, randomize_parameters

BIN = [
    (N.BatchInstanceNorm1d, (5, 4)),
    (N.BatchInstanceNorm1d, (4, 4, 5)),
    (N.BatchInstanceNorm2d, (4, 4, 3, 2)),
    (N.BatchInstanceNorm3d, (2, 4, 2, 2, 3)),
]
SN = [
    (N.SwitchableNorm1d, (5, 4)),
    (N.SwitchableNorm1d, (4, 4, 5)),
    (N.SwitchableNorm2d, (4, 4, 3, 2)),
    (N.SwitchableNorm2d, (5, 4, 1, 1)),  # the official code's NaN case
    (N.SwitchableNorm3d, (2, 4, 2, 2, 3)),
]


def _grads(y, g, inputs):
    return torch.autograd.grad((y * g).sum(), inputs)


# ------------------------------------------------------------------------------------ BIN


@pytest.mark.parametrize(("cls", "shape"), BIN, ids=["1d-NC", "1d-NCL", "2d", "3d"])
def test_batch_instance_norm_matches_reference(cls, shape):
    layer = cls(4, momentum=0.3, dtype=F64)
    randomize_parameters(layer)
    with torch.no_grad():  # two inside [0, 1], one above and one below: clamped
        layer.rho.copy_(torch.tensor([0.2, 0.7, 1.3, -0.4]))
    x = data(*shape).requires_grad_()
    y = layer(x)
    expected = ref.batch_instance_norm(x, layer.rho, layer.weight, layer.bias)
    assert_close(y, expected)
    g = torch.randn_like(y)
    params = (x, layer.weight, layer.bias, layer.rho)
    grads = _grads(y, g, params)
    for a, b in zip(grads, _grads(expected, g, params), strict=True):
        assert_close(a, b)
    grad_rho = grads[3]
    assert (grad_rho[:2] != 0).all() and (grad_rho[2:] == 0).all()  # none where clamped

    mean, var, m = ref.batch_moments(x.detach())
    running_mean = ref.running_average(torch.zeros(4, dtype=F64), mean, 0.3)
    running_var = ref.running_average(torch.ones(4, dtype=F64), ref.unbiased(var, m), 0.3)
    assert_close(layer.running_mean, running_mean)
    assert_close(layer.running_var, running_var)

    layer.eval()  # the batch part from the running statistics
    x = data(*shape)
    expected = ref.batch_instance_norm(
        x, layer.rho, layer.weight, layer.bias, batch_mean=running_mean, batch_var=running_var
    )
    assert_close(layer(x), expected)


def test_batch_instance_norm_starts_as_batch_norm():
    layer = N.BatchInstanceNorm2d(3)
    assert torch.equal(layer.rho.detach(), torch.ones(3))


@settings(max_examples=15)
@given(
    n=st.integers(2, 4),
    c=st.integers(1, 3),
    hw=st.tuples(st.integers(1, 3), st.integers(1, 3)).filter(lambda t: t[0] * t[1] > 1),
    seed=st.integers(0, 2**16),
)
def test_batch_instance_norm_limits_are_batch_and_instance_norm(n, c, hw, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, *hw, generator=gen, dtype=F64) * 2 + 1
    w = torch.rand(c, generator=gen, dtype=F64) + 0.5
    b = torch.randn(c, generator=gen, dtype=F64)

    as_bn = N.BatchInstanceNorm2d(c, rho=1.0, dtype=F64)
    as_in = N.BatchInstanceNorm2d(c, rho=0.0, dtype=F64)
    bn = nn.BatchNorm2d(c, dtype=F64)
    for layer in (as_bn, as_in, bn):
        with torch.no_grad():
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    assert_close(as_bn(x), bn(x))
    assert_close(as_bn.running_mean, bn.running_mean)
    assert_close(as_bn.running_var, bn.running_var)
    assert_close(as_in(x), F.instance_norm(x, weight=w, bias=b))


def test_batch_instance_norm_gradcheck():
    layer = N.BatchInstanceNorm2d(3, dtype=F64)
    x = data(3, 3, 2, 2).requires_grad_()
    w = (torch.rand(3, dtype=F64) + 0.5).requires_grad_()
    b = torch.randn(3, dtype=F64, requires_grad=True)
    rho = torch.tensor([0.2, 0.5, 0.8], dtype=F64, requires_grad=True)

    def f(x, w, b, rho):
        return torch.func.functional_call(layer, {"weight": w, "bias": b, "rho": rho}, (x,))

    assert torch.autograd.gradcheck(f, (x, w, b, rho))


# ------------------------------------------------------------------------------------- SN


def _set_logits(layer, mean_logits, var_logits):
    with torch.no_grad():
        layer.mean_weight.copy_(torch.as_tensor(mean_logits, dtype=layer.mean_weight.dtype))
        layer.var_weight.copy_(torch.as_tensor(var_logits, dtype=layer.var_weight.dtype))


@pytest.mark.parametrize(("cls", "shape"), SN, ids=["1d-NC", "1d-NCL", "2d", "2d-1x1", "3d"])
def test_switchable_norm_matches_reference(cls, shape):
    layer = cls(4, momentum=0.3, dtype=F64)
    randomize_parameters(layer)
    _set_logits(layer, [0.3, -0.5, 0.9], [-0.4, 0.8, 0.1])
    x = data(*shape).requires_grad_()
    y = layer(x)
    expected = ref.switchable_norm(x, layer.mean_weight, layer.var_weight, layer.weight, layer.bias)
    assert_close(y, expected)
    g = torch.randn_like(y)
    params = (x, layer.weight, layer.bias, layer.mean_weight, layer.var_weight)
    for a, b in zip(_grads(y, g, params), _grads(expected, g, params), strict=True):
        assert torch.isfinite(a).all()
        assert_close(a, b)

    mean, var, m = ref.batch_moments(x.detach())
    running_mean = ref.running_average(torch.zeros(4, dtype=F64), mean, 0.3)
    running_var = ref.running_average(torch.ones(4, dtype=F64), ref.unbiased(var, m), 0.3)
    assert_close(layer.running_mean, running_mean)
    assert_close(layer.running_var, running_var)

    layer.eval()  # BN's moments from the running statistics
    x = data(*shape)
    expected = ref.switchable_norm(
        x,
        layer.mean_weight,
        layer.var_weight,
        layer.weight,
        layer.bias,
        bn_mean=running_mean,
        bn_var=running_var,
    )
    assert_close(layer(x), expected)


def test_switchable_norm_without_bn_handles_a_batch_of_one():
    layer = N.SwitchableNorm2d(3, using_bn=False, dtype=F64)
    randomize_parameters(layer)
    assert layer.mean_weight.shape == (2,) and layer.var_weight.shape == (2,)
    for shape in ((1, 3, 2, 2), (1, 3, 1, 1)):
        x = data(*shape)
        expected = ref.switchable_norm(
            x, layer.mean_weight, layer.var_weight, layer.weight, layer.bias
        )
        assert_close(layer(x), expected)
    assert int(layer.num_batches_tracked) == 0  # no batch part, nothing tracked


def test_switchable_norm_initial_state():
    layer = N.SwitchableNorm2d(3)
    assert torch.equal(layer.running_var, torch.ones(3))  # the official code: zeros
    assert torch.equal(layer.running_mean, torch.zeros(3))
    assert torch.equal(layer.mean_weight.detach(), torch.ones(3))  # uniform 1/3 each
    importance = layer.importance()
    for part in ("mean", "var"):
        assert set(importance[part]) == {"IN", "LN", "BN"}
        for v in importance[part].values():
            assert v.item() == pytest.approx(1 / 3)


def test_switchable_norm_importance_is_the_softmax_of_the_logits():
    layer = N.SwitchableNorm2d(3)
    _set_logits(layer, [2.0, 0.0, -1.0], [0.0, 1.0, 3.0])
    e = torch.exp(torch.tensor([2.0, 0.0, -1.0]))
    expected = e / e.sum()
    got = layer.importance()["mean"]
    assert_close(torch.stack([got["IN"], got["LN"], got["BN"]]).detach(), expected)


SCOPES = {"IN": 0, "LN": 1, "BN": 2}


@settings(max_examples=12)
@given(
    n=st.integers(2, 4),
    c=st.integers(1, 4),
    hw=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    scope=st.sampled_from(list(SCOPES)),
    seed=st.integers(0, 2**16),
)
def test_switchable_norm_one_hot_weights_give_each_norm(n, c, hw, scope, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, *hw, generator=gen, dtype=F64) * 2 + 1
    layer = N.SwitchableNorm2d(c, dtype=F64)
    logits = torch.full((3,), -50.0)
    logits[SCOPES[scope]] = 50.0
    _set_logits(layer, logits, logits)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(c, generator=gen, dtype=F64) + 0.5)
        layer.bias.copy_(torch.randn(c, generator=gen, dtype=F64))
    w, b = layer.weight.detach(), layer.bias.detach()
    expected = {
        "IN": lambda: ref.instance_norm(x, w, b),
        "LN": lambda: ref.layer_norm(x, 3) * w.view(1, c, 1, 1) + b.view(1, c, 1, 1),
        "BN": lambda: ref.batch_norm(x, w, b),
    }[scope]()
    assert_close(layer(x), expected)


@settings(max_examples=20)
@given(
    n=st.integers(1, 4),
    c=st.integers(1, 4),
    spatial=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    seed=st.integers(0, 2**16),
)
def test_compute_once_moments_equal_direct_moments(n, c, spatial, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, *spatial, generator=gen, dtype=F64) * 3 + 2
    inst = _stats.instance_moments(x)
    layer = _stats.pool(inst, 1)
    batch = _stats.pool(inst, 0)
    dims = list(range(2, x.dim()))
    if dims:
        assert_close(inst.mean, x.mean(dim=dims))
        assert_close(inst.var, x.var(dim=dims, correction=0))
    else:
        assert_close(inst.mean, x)
        assert_close(inst.var, torch.zeros_like(x))
    flat = x.reshape(n, -1)
    assert_close(layer.mean, flat.mean(1))
    assert_close(layer.var, flat.var(1, correction=0))
    assert_close(batch.mean, x.mean(dim=[0, *dims]))
    assert_close(batch.var, x.var(dim=[0, *dims], correction=0))
    assert torch.equal(batch.count, torch.full((c,), float(x.numel() // c), dtype=F64))


def test_switchable_norm_gradcheck():
    layer = N.SwitchableNorm2d(3, dtype=F64)
    x = data(3, 3, 2, 2).requires_grad_()
    w = (torch.rand(3, dtype=F64) + 0.5).requires_grad_()
    b = torch.randn(3, dtype=F64, requires_grad=True)
    mw = torch.tensor([0.3, -0.2, 0.5], dtype=F64, requires_grad=True)
    vw = torch.tensor([-0.1, 0.4, 0.2], dtype=F64, requires_grad=True)

    def f(x, w, b, mw, vw):
        params = {"weight": w, "bias": b, "mean_weight": mw, "var_weight": vw}
        return torch.func.functional_call(layer, params, (x,))

    assert torch.autograd.gradcheck(f, (x, w, b, mw, vw))
