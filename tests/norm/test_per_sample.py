"""Per-sample normalizations: LayerNorm, RMSNorm, GroupNorm, InstanceNorm (PyTorch's layers
with checked input) and ScaleNorm. Parity with ``torch.nn``, the float64 reference
(tests/reference.py), GroupNorm's limits (G=1 is LayerNorm over (C, H, W), G=C is
InstanceNorm), ScaleNorm's definition (g initialised to √d, output norm g, eps clamp) and its
gradients."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from mldl import norm as N
from tests import reference as ref

from ._helpers import F32, F64, buffers, data, randomize_parameters, tol

# name -> (mldl factory, torch factory, input shape); factories take the dtype
PARITY = {
    "LayerNorm": (
        lambda dt: N.LayerNorm((3, 4), dtype=dt),
        lambda dt: nn.LayerNorm((3, 4), dtype=dt),
        (2, 5, 3, 4),
    ),
    "LayerNorm-nobias": (
        lambda dt: N.LayerNorm(4, eps=1e-3, bias=False, dtype=dt),
        lambda dt: nn.LayerNorm(4, eps=1e-3, bias=False, dtype=dt),
        (3, 4),
    ),
    "RMSNorm": (
        lambda dt: N.RMSNorm((3, 4), eps=1e-6, dtype=dt),
        lambda dt: nn.RMSNorm((3, 4), eps=1e-6, dtype=dt),
        (2, 5, 3, 4),
    ),
    "RMSNorm-eps-None": (
        lambda dt: N.RMSNorm(4, dtype=dt),
        lambda dt: nn.RMSNorm(4, dtype=dt),
        (6, 4),
    ),
    "GroupNorm": (
        lambda dt: N.GroupNorm(2, 6, dtype=dt),
        lambda dt: nn.GroupNorm(2, 6, dtype=dt),
        (3, 6, 2, 3),
    ),
    "InstanceNorm1d": (
        lambda dt: N.InstanceNorm1d(3, affine=True, track_running_stats=True, dtype=dt),
        lambda dt: nn.InstanceNorm1d(3, affine=True, track_running_stats=True, dtype=dt),
        (4, 3, 5),
    ),
    "InstanceNorm2d": (
        lambda dt: N.InstanceNorm2d(3, affine=True, track_running_stats=True, dtype=dt),
        lambda dt: nn.InstanceNorm2d(3, affine=True, track_running_stats=True, dtype=dt),
        (4, 3, 3, 2),
    ),
    "InstanceNorm3d": (
        lambda dt: N.InstanceNorm3d(3, momentum=0.3, affine=True, dtype=dt),
        lambda dt: nn.InstanceNorm3d(3, momentum=0.3, affine=True, dtype=dt),
        (2, 3, 2, 3, 2),
    ),
}


def _run(layer, x, g):
    x = x.clone().requires_grad_()
    y = layer(x)
    (y * g).sum().backward()
    grads = [x.grad] + [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    return y.detach(), grads


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(PARITY))
def test_matches_torch(name, dtype):
    make, make_torch, shape = PARITY[name]
    ours, theirs = make(dtype), make_torch(dtype)
    randomize_parameters(ours)
    theirs.load_state_dict(ours.state_dict())
    for mode in ("train", "train", "eval"):
        ours.train(mode == "train"), theirs.train(mode == "train")
        x = data(*shape, dtype=dtype)
        g = torch.randn_like(x)
        y1, grads1 = _run(ours, x, g)
        y2, grads2 = _run(theirs, x, g)
        assert_close(y1, y2, **tol(dtype))
        for a, b in zip(grads1, grads2, strict=True):
            assert_close(a, b, **tol(dtype))
    for (k, a), (_, b) in zip(buffers(ours).items(), buffers(theirs).items(), strict=True):
        assert_close(a, b, **tol(dtype), msg=k)


def test_instance_norm_takes_unbatched_input():
    layer = N.InstanceNorm1d(3, affine=True)
    randomize_parameters(layer)
    x = data(2, 3, 5, dtype=F32)
    assert_close(layer(x[1]), layer(x)[1])


# ------------------------------------------------------------------- float64 reference


def test_layer_norm_matches_reference():
    layer = N.LayerNorm((3, 4), eps=1e-4, dtype=F64)
    randomize_parameters(layer)
    x = data(2, 5, 3, 4).requires_grad_()
    y = layer(x)
    expected = ref.layer_norm(x, 2, layer.weight, layer.bias, 1e-4)
    assert_close(y, expected)
    g = torch.randn_like(y)
    assert_close(
        torch.autograd.grad((y * g).sum(), x)[0], torch.autograd.grad((expected * g).sum(), x)[0]
    )


@pytest.mark.parametrize("eps", [1e-3, None])
def test_rms_norm_matches_reference(eps):
    layer = N.RMSNorm((3, 4), eps=eps, dtype=F64)
    randomize_parameters(layer)
    x = data(2, 5, 3, 4)
    ref_eps = torch.finfo(F64).eps if eps is None else eps
    assert_close(layer(x), ref.rms_norm(x, 2, layer.weight, ref_eps))


def test_group_norm_matches_reference():
    layer = N.GroupNorm(3, 6, eps=1e-4, dtype=F64)
    randomize_parameters(layer)
    x = data(2, 6, 3, 2)
    assert_close(layer(x), ref.group_norm(x, 3, layer.weight, layer.bias, 1e-4))
    layer.eval()  # the input's statistics in eval too
    assert_close(layer(x), ref.group_norm(x, 3, layer.weight, layer.bias, 1e-4))


@pytest.mark.parametrize(
    ("cls", "shape"),
    [
        (N.InstanceNorm1d, (3, 4, 5)),
        (N.InstanceNorm2d, (3, 4, 2, 3)),
        (N.InstanceNorm3d, (2, 4, 2, 2, 3)),
    ],
    ids=["1d", "2d", "3d"],
)
def test_instance_norm_matches_reference(cls, shape):
    layer = cls(4, affine=True, dtype=F64)
    randomize_parameters(layer)
    x = data(*shape)
    assert_close(layer(x), ref.instance_norm(x, layer.weight, layer.bias))
    plain = cls(4, dtype=F64)
    assert_close(plain(x), ref.instance_norm(x))


# ------------------------------------------------------------------- GroupNorm's limits


@settings(max_examples=20)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 5),
    hw=st.tuples(st.integers(1, 3), st.integers(1, 3)).filter(lambda t: t[0] * t[1] > 1),
    seed=st.integers(0, 2**16),
)
def test_group_norm_limits_are_layer_and_instance_norm(n, c, hw, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, *hw, generator=gen, dtype=F64) * 3 + 1
    weight = torch.rand(c, generator=gen, dtype=F64) + 0.5
    bias = torch.randn(c, generator=gen, dtype=F64)
    view = (1, c, 1, 1)

    one = N.GroupNorm(1, c, dtype=F64)
    each = N.GroupNorm(c, c, dtype=F64)
    inorm = N.InstanceNorm2d(c, affine=True, dtype=F64)
    for layer in (one, each, inorm):
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
    ln = N.LayerNorm((c, *hw), elementwise_affine=False, dtype=F64)
    assert_close(one(x), ln(x) * weight.view(view) + bias.view(view))
    assert_close(each(x), inorm(x))


# ------------------------------------------------------------------------------- ScaleNorm


@pytest.mark.parametrize("d", [1, 4, 9])
def test_scale_norm_init_and_output_norm(d):
    layer = N.ScaleNorm(d, dtype=F64)
    assert layer.g.shape == () and layer.g.item() == pytest.approx(math.sqrt(d))
    with torch.no_grad():
        layer.g.fill_(1.7)
    x = data(5, d) + 0.1
    y = layer(x)
    assert_close(y.norm(dim=-1), torch.full((5,), 1.7, dtype=F64))
    assert_close(y, ref.scale_norm(x, 1.7))
    assert_close(N.scale_norm(x, 1.7), ref.scale_norm(x, 1.7))


def test_scale_norm_eps_clamps_small_norms():
    layer = N.ScaleNorm(3, eps=1e-2, dtype=F64)
    x = torch.tensor([[0.0, 0.0, 0.0], [1e-3, -2e-3, 2e-3], [3.0, 0.0, 4.0]], dtype=F64)
    y = layer(x)
    g = math.sqrt(3)
    # norm 0 -> 0; norm 3e-3 < eps -> g x / eps; norm 5 -> g x / 5
    expected = torch.stack([x[0], g * x[1] / 1e-2, g * x[2] / 5.0])
    assert_close(y, expected)
    assert_close(y, ref.scale_norm(x, g, 1e-2))
    assert torch.isfinite(torch.autograd.grad(y.sum(), layer.g)[0])


def test_scale_norm_on_leading_dimensions():
    layer = N.ScaleNorm(4, dtype=F64)
    x = data(2, 3, 4)
    assert_close(layer(x), ref.scale_norm(x, layer.g))


def test_scale_norm_gradcheck():
    layer = N.ScaleNorm(4, dtype=F64)
    x = data(3, 4).requires_grad_()
    g = torch.tensor(1.3, dtype=F64, requires_grad=True)

    def f(x, g):
        return torch.func.functional_call(layer, {"g": g}, (x,))

    assert torch.autograd.gradcheck(f, (x, g))
