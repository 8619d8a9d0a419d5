"""Weight normalization (w = g v/||v||, old ``weight_g``/``weight_v`` checkpoints, deepcopy,
the paper's data-dependent initialisation) and spectral normalization (σ(W) about 1 after a
few training forwards, no power iteration in eval), with ``spectral_sigma`` checked against
an SVD."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from mldl import norm as N
from tests import reference as ref

from ._helpers import F64

LAYERS = {
    "Linear": (lambda: nn.Linear(5, 4), (8, 5)),
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3), (6, 3, 5, 5)),
}


def _weight_norm_parts(layer):
    p = layer.parametrizations.weight
    return p.original0, p.original1  # g, v


# --------------------------------------------------------------------------- weight norm


@pytest.mark.parametrize("name", list(LAYERS))
def test_weight_norm_is_g_times_direction(name):
    make, _ = LAYERS[name]
    layer = N.weight_norm(make().double())
    g, v = _weight_norm_parts(layer)
    with torch.no_grad():
        g.copy_(torch.rand_like(g) + 0.5)
    w = layer.weight
    assert_close(w, ref.weight_norm(v, g, dim=0))
    assert_close(w.flatten(1).norm(dim=1), g.flatten())


def test_weight_norm_over_the_whole_tensor():
    layer = N.weight_norm(nn.Linear(5, 4).double(), dim=None)
    g, v = _weight_norm_parts(layer)
    with torch.no_grad():
        g.fill_(2.5)
    assert_close(layer.weight.norm(), torch.tensor(2.5, dtype=F64))
    assert_close(layer.weight, 2.5 * v / v.norm())


@pytest.mark.parametrize("name", list(LAYERS))
def test_weight_norm_loads_old_weight_g_weight_v_state_dicts(name):
    make, shape = LAYERS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecated API says so
        old = torch.nn.utils.weight_norm(make())
    with torch.no_grad():
        old.weight_g.mul_(torch.rand_like(old.weight_g) + 0.5)
    old_state = old.state_dict()
    assert {"weight_g", "weight_v"} <= set(old_state)
    expected = ref.weight_norm(old_state["weight_v"], old_state["weight_g"]).float()
    new = N.weight_norm(make())
    assert not torch.allclose(new.weight, expected)
    new.load_state_dict(old_state)
    assert_close(new.weight, expected)
    x = torch.randn(*shape)
    assert_close(new(x), old(x))  # (the old layer recomputes its weight in a pre-hook)


def test_weight_norm_deepcopy():
    layer = N.weight_norm(nn.Linear(5, 4))
    twin = copy.deepcopy(layer)
    x = torch.randn(3, 5)
    assert_close(twin(x), layer(x))
    with torch.no_grad():
        _weight_norm_parts(twin)[0].mul_(2.0)
    assert_close(twin(x) - twin.bias, 2 * (layer(x) - layer.bias))  # independent copy


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", list(LAYERS))
def test_init_weight_norm_standardises_the_batch_preactivations(name, bias):
    make, shape = LAYERS[name]
    layer = make()
    if not bias:
        layer.bias = None
    layer = N.weight_norm(layer.double())
    x = torch.randn(*shape, dtype=F64) * 3 + 1
    dims = [0, *range(2, len(shape))]
    y = layer(x).detach()
    assert (y.var(dim=dims, correction=0) - 1).abs().max() > 0.05  # not standard already

    assert N.init_weight_norm_(layer, x) is layer
    y = layer(x).detach()
    assert_close(y.var(dim=dims, correction=0), torch.ones(4, dtype=F64), atol=1e-6, rtol=0)
    if bias:
        assert_close(y.mean(dim=dims), torch.zeros(4, dtype=F64), atol=1e-8, rtol=0)


# ------------------------------------------------------------------------- spectral norm


def _svd_sigma(weight):
    return torch.linalg.svdvals(weight.detach().flatten(1))[0]


def test_spectral_sigma_is_the_top_singular_value():
    for name in LAYERS:
        layer = LAYERS[name][0]()
        assert_close(N.spectral_sigma(layer), _svd_sigma(layer.weight))
    bias_only = nn.Linear(3, 1)
    assert_close(N.spectral_sigma(bias_only, "bias"), bias_only.bias.detach().abs().squeeze())


@pytest.mark.parametrize("name", list(LAYERS))
def test_spectral_norm_brings_sigma_to_one(name):
    make, shape = LAYERS[name]
    layer = make()
    with torch.no_grad():
        layer.weight.mul_(5.0)
    assert _svd_sigma(layer.weight) > 2.0
    layer = N.spectral_norm(layer)
    layer.train()
    for _ in range(5):
        layer(torch.randn(*shape))
    layer.eval()  # (in training every read of layer.weight runs a power-iteration step)
    assert N.spectral_sigma(layer).item() == pytest.approx(1.0, abs=1e-2)
    assert_close(N.spectral_sigma(layer), _svd_sigma(layer.weight))


def test_spectral_sigma_leaves_the_layer_as_it_was():
    layer = N.spectral_norm(nn.Linear(6, 4)).train()
    layer(torch.randn(3, 6))
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    N.spectral_sigma(layer)
    # Fixed bug: spectral_sigma reads getattr(module, name), which for a spectrally
    # normalised layer in training mode runs a power-iteration step and updates the u, v
    # buffers: a diagnostic changes the training state, and reports the σ of a weight the
    # last forward did not use. It should read the weight without iterating (e.g. under
    # eval, or from the parametrization's original and the current u, v).
    for k, v in layer.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_spectral_norm_eval_does_no_power_iteration():
    layer = N.spectral_norm(nn.Linear(6, 4))
    sn = layer.parametrizations.weight[0]
    x = torch.randn(3, 6)
    layer.train()
    u = sn._u.clone()
    layer(x)
    assert not torch.equal(sn._u, u)  # training iterates
    layer.eval()
    u, v, w = sn._u.clone(), sn._v.clone(), layer.weight.detach().clone()
    for _ in range(3):
        layer(x)
    assert torch.equal(sn._u, u) and torch.equal(sn._v, v)
    assert torch.equal(layer.weight, w)


def test_spectral_norm_two_forwards_then_one_backward():
    layer = N.spectral_norm(nn.Linear(6, 4))
    layer.train()
    a, b = layer(torch.randn(3, 6)), layer(torch.randn(3, 6))
    (a.sum() + b.sum()).backward()
    assert torch.isfinite(layer.parametrizations.weight.original.grad).all()
