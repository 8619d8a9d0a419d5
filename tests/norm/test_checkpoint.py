"""Checkpoint round-trips: a trained layer's state dict, through torch.save and
torch.load(weights_only=True), makes a freshly built layer compute exactly what the trained
one computes, in eval and in training, for every layer (BatchRenorm's renorm buffers and
step count, SwitchableNorm's mean_weight/var_weight, the parametrizations' tensors
included)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mldl import norm as N

from ._helpers import F32, data, randomize_parameters, roundtrip

RAMP = {"r_max": 2.0, "d_max": 1.0, "r_max_ramp": (1, 6), "d_max_ramp": (2, 8)}

# name -> (factory, input shape, keys the state dict must hold)
LAYERS = {
    "BatchNorm1d": (lambda: N.BatchNorm1d(3), (5, 3), ()),
    "BatchNorm2d": (lambda: N.BatchNorm2d(3, momentum=None), (4, 3, 2, 2), ()),
    "BatchNorm2d-running": (lambda: N.BatchNorm2d(3, stats="running"), (4, 3, 2, 2), ()),
    "BatchNorm3d": (lambda: N.BatchNorm3d(3), (2, 3, 2, 2, 2), ()),
    "BatchRenorm1d": (lambda: N.BatchRenorm1d(3, **RAMP), (5, 3, 2), ("renorm_mean", "renorm_var")),
    "BatchRenorm2d": (
        lambda: N.BatchRenorm2d(3, **RAMP),
        (4, 3, 2, 2),
        ("renorm_mean", "renorm_var"),
    ),
    "BatchRenorm3d": (lambda: N.BatchRenorm3d(3, **RAMP), (2, 3, 2, 2, 2), ("renorm_var",)),
    "MeanOnlyBatchNorm1d": (lambda: N.MeanOnlyBatchNorm1d(3), (5, 3), ("running_mean", "bias")),
    "MeanOnlyBatchNorm2d": (lambda: N.MeanOnlyBatchNorm2d(3), (4, 3, 2, 2), ("running_mean",)),
    "MeanOnlyBatchNorm3d": (lambda: N.MeanOnlyBatchNorm3d(3), (2, 3, 2, 2, 2), ("running_mean",)),
    "BatchInstanceNorm1d": (lambda: N.BatchInstanceNorm1d(3), (4, 3, 5), ("rho",)),
    "BatchInstanceNorm2d": (lambda: N.BatchInstanceNorm2d(3), (4, 3, 2, 2), ("rho",)),
    "BatchInstanceNorm3d": (lambda: N.BatchInstanceNorm3d(3), (2, 3, 2, 2, 2), ("rho",)),
    "SwitchableNorm1d": (
        lambda: N.SwitchableNorm1d(3),
        (4, 3, 5),
        ("mean_weight", "var_weight"),
    ),
    "SwitchableNorm2d": (
        lambda: N.SwitchableNorm2d(3),
        (4, 3, 2, 2),
        ("mean_weight", "var_weight", "running_var"),
    ),
    "SwitchableNorm2d-noBN": (
        lambda: N.SwitchableNorm2d(3, using_bn=False),
        (1, 3, 2, 2),
        ("mean_weight", "var_weight"),
    ),
    "SwitchableNorm3d": (
        lambda: N.SwitchableNorm3d(3),
        (2, 3, 2, 2, 2),
        ("mean_weight", "var_weight"),
    ),
    "LayerNorm": (lambda: N.LayerNorm((3, 2)), (4, 3, 2), ("weight", "bias")),
    "RMSNorm": (lambda: N.RMSNorm(4), (3, 4), ("weight",)),
    "GroupNorm": (lambda: N.GroupNorm(2, 4), (3, 4, 2, 2), ("weight", "bias")),
    "InstanceNorm1d": (
        lambda: N.InstanceNorm1d(3, affine=True, track_running_stats=True),
        (4, 3, 5),
        ("running_mean",),
    ),
    "InstanceNorm2d": (
        lambda: N.InstanceNorm2d(3, affine=True, track_running_stats=True),
        (4, 3, 2, 3),
        ("running_var",),
    ),
    "InstanceNorm3d": (
        lambda: N.InstanceNorm3d(3, affine=True, track_running_stats=True),
        (2, 3, 2, 2, 3),
        ("weight",),
    ),
    "ScaleNorm": (lambda: N.ScaleNorm(4), (3, 4), ("g",)),
    "weight_norm": (
        lambda: N.weight_norm(nn.Linear(4, 3)),
        (5, 4),
        ("parametrizations.weight.original0", "parametrizations.weight.original1"),
    ),
    "spectral_norm": (
        lambda: N.spectral_norm(nn.Conv2d(2, 3, 2)),
        (2, 2, 3, 3),
        ("parametrizations.weight.0._u", "parametrizations.weight.0._v"),
    ),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_state_dict_roundtrip(name):
    make, shape, keys = LAYERS[name]
    trained = make()
    randomize_parameters(trained)
    trained.train()
    for _ in range(3):
        trained(data(*shape, dtype=F32))
    state = roundtrip(trained.state_dict())
    assert set(keys) <= set(state)
    assert list(state) == list(trained.state_dict())

    fresh = make()
    x = data(*shape, dtype=F32, shift=2.0)
    trained.eval(), fresh.eval()
    assert not torch.allclose(fresh(x), trained(x))  # the state is what makes the difference
    fresh.load_state_dict(state)
    fresh.eval()
    assert torch.equal(fresh(x), trained(x))
    fresh.train(), trained.train()
    assert torch.equal(fresh(x), trained(x))  # (BatchRenorm: the same step, the same bounds)
    for (k, a), (_, b) in zip(
        fresh.state_dict().items(), trained.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
