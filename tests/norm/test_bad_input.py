"""Bad input raises a ValueError or TypeError whose message starts with the class (or
function) name and names the argument.

Comments marked ``# Fixed bug:`` say what the library did before a fix; the tests assert
what it does now.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mldl import norm as N

from ._helpers import raises

BASES = ("BatchNorm", "BatchRenorm", "MeanOnlyBatchNorm", "BatchInstanceNorm", "SwitchableNorm")
BATCH_CLASSES = {k: [getattr(N, f"{base}{k}d") for base in BASES] for k in (1, 2, 3)}
GOOD_NDIMS = {1: (2, 3), 2: (4,), 3: (5,)}
ALL_BATCH = [(cls, k) for k, classes in BATCH_CLASSES.items() for cls in classes]
ALL_BATCH_IDS = [cls.__name__ for cls, _ in ALL_BATCH]
WITH_EPS = [(cls, k) for cls, k in ALL_BATCH if not cls.__name__.startswith("MeanOnly")]


def _input(ndim, channels=3, dtype=torch.float32):
    shape = [2, channels, *([2] * (ndim - 2))] if ndim >= 2 else [channels]
    return torch.ones(shape, dtype=dtype) if not dtype.is_floating_point else torch.randn(shape)


@pytest.mark.parametrize(("cls", "k"), ALL_BATCH, ids=ALL_BATCH_IDS)
def test_wrong_input_ndim(cls, k):
    layer = cls(3)
    for ndim in range(1, 7):
        if ndim in GOOD_NDIMS[k]:
            layer(_input(ndim))  # fine
            continue
        with raises(ValueError, cls.__name__, "input", f"{ndim}-D"):
            layer(_input(ndim))


@pytest.mark.parametrize(("cls", "k"), ALL_BATCH, ids=ALL_BATCH_IDS)
def test_wrong_channel_count(cls, k):
    with raises(ValueError, cls.__name__, "input", "channels"):
        cls(3)(_input(GOOD_NDIMS[k][0], channels=4))


@pytest.mark.parametrize(("cls", "k"), ALL_BATCH, ids=ALL_BATCH_IDS)
def test_integer_input(cls, k):
    with raises(TypeError, cls.__name__, "input", "floating"):
        cls(3)(_input(GOOD_NDIMS[k][0], dtype=torch.int64))


@pytest.mark.parametrize(("cls", "k"), ALL_BATCH, ids=ALL_BATCH_IDS)
def test_num_features(cls, k):
    for bad in (0, -2):
        with raises(ValueError, cls.__name__, "num_features"):
            cls(bad)
    for bad in (2.0, "3", True):
        with raises(TypeError, cls.__name__, "num_features"):
            cls(bad)


@pytest.mark.parametrize(("cls", "k"), ALL_BATCH, ids=ALL_BATCH_IDS)
def test_momentum_outside_0_1(cls, k):
    for bad in (-0.1, 1.5, float("nan")):
        with raises(ValueError, cls.__name__, "momentum"):
            cls(3, momentum=bad)
    cls(3, momentum=0.0), cls(3, momentum=1.0)  # the ends are fine


@pytest.mark.parametrize(("cls", "k"), WITH_EPS, ids=[c.__name__ for c, _ in WITH_EPS])
def test_eps_not_positive(cls, k):
    for bad in (0.0, -1e-5, float("nan")):
        with raises(ValueError, cls.__name__, "eps"):
            cls(3, eps=bad)


def test_batch_renorm_options():
    name = "BatchRenorm2d"
    with raises(ValueError, name, "r_max"):
        N.BatchRenorm2d(3, r_max=0.5)
    with raises(ValueError, name, "d_max"):
        N.BatchRenorm2d(3, d_max=-1.0)
    for ramp in ("r_max_ramp", "d_max_ramp"):
        with raises(ValueError, name, ramp):
            N.BatchRenorm2d(3, **{ramp: (10, 5)})  # start after end
        with raises(ValueError, name, ramp):
            N.BatchRenorm2d(3, **{ramp: (-1, 5)})
        with raises(TypeError, name, ramp):
            N.BatchRenorm2d(3, **{ramp: (5,)})
        with raises(TypeError, name, ramp):
            N.BatchRenorm2d(3, **{ramp: 5})
        N.BatchRenorm2d(3, **{ramp: (5, 5)})  # start == end: a step
    with raises(ValueError, name, "renorm_momentum"):
        N.BatchRenorm2d(3, renorm_momentum=2.0)
    with raises(ValueError, name, "momentum"):
        N.BatchRenorm2d(3, momentum=None)


def test_stats_unknown():
    with raises(ValueError, "BatchNorm2d", "stats", "'bogus'"):
        N.BatchNorm2d(3, stats="bogus")
    bn = N.BatchNorm2d(3)
    with raises(ValueError, "BatchNorm2d", "stats"):
        bn.stats = "Frozen"
    assert bn.stats == "auto"


def test_rho_outside_0_1():
    for bad in (1.5, -0.1):
        with raises(ValueError, "BatchInstanceNorm2d", "rho"):
            N.BatchInstanceNorm2d(3, rho=bad)


def test_group_norm():
    with raises(ValueError, "GroupNorm", "num_groups", "divisor"):
        N.GroupNorm(3, 4)
    with raises(ValueError, "GroupNorm", "num_groups"):
        N.GroupNorm(0, 4)
    with raises(ValueError, "GroupNorm", "num_channels"):
        N.GroupNorm(1, 0)
    layer = N.GroupNorm(2, 4)
    with raises(ValueError, "GroupNorm", "input"):
        layer(torch.randn(2, 3, 2))
    with raises(ValueError, "GroupNorm", "input"):
        layer(torch.randn(4))
    with raises(TypeError, "GroupNorm", "input"):
        layer(torch.ones(2, 4, 2, dtype=torch.long))


@pytest.mark.parametrize("cls", [N.LayerNorm, N.RMSNorm])
def test_layer_and_rms_norm_input(cls):
    layer = cls((3, 4))
    for shape in ((2, 4, 3), (2, 3, 5), (4,)):
        with raises(ValueError, cls.__name__, "input"):
            layer(torch.randn(shape))
    with raises(TypeError, cls.__name__, "input"):
        layer(torch.ones(2, 3, 4, dtype=torch.int32))


@pytest.mark.parametrize(
    ("cls", "good"),
    [(N.InstanceNorm1d, (2, 3)), (N.InstanceNorm2d, (3, 4)), (N.InstanceNorm3d, (4, 5))],
)
def test_instance_norm_input(cls, good):
    layer = cls(3)
    for ndim in range(1, 7):
        shape = [2, 3, 3, 2, 2, 2][-ndim:] if ndim not in good else None
        if shape is not None:
            with raises(ValueError, cls.__name__, "input"):
                layer(torch.randn(shape))
    with raises(TypeError, cls.__name__, "input"):
        layer(torch.ones([2, 3, 3, 2, 2][: good[1]], dtype=torch.long))


def test_scale_norm():
    with raises(ValueError, "ScaleNorm", "dim"):
        N.ScaleNorm(0)
    with raises(TypeError, "ScaleNorm", "dim"):
        N.ScaleNorm(2.5)
    with raises(ValueError, "ScaleNorm", "eps"):
        N.ScaleNorm(3, eps=0.0)
    with raises(ValueError, "ScaleNorm", "input"):
        N.ScaleNorm(3)(torch.randn(2, 4))
    with raises(TypeError, "ScaleNorm", "input"):
        N.ScaleNorm(3)(torch.ones(2, 3, dtype=torch.long))


def test_reparametrizations():
    with raises(ValueError, "weight_norm", "name"):
        N.weight_norm(nn.ReLU())
    with raises(TypeError, "weight_norm", "module"):
        N.weight_norm("layer")
    with raises(ValueError, "spectral_norm", "n_power_iterations"):
        N.spectral_norm(nn.Linear(2, 2), n_power_iterations=0)
    with raises(ValueError, "spectral_norm", "eps"):
        N.spectral_norm(nn.Linear(2, 2), eps=0.0)
    with raises(ValueError, "spectral_norm", "name"):
        N.spectral_norm(nn.Linear(2, 2), name="kernel")
    with raises(ValueError, "init_weight_norm_", "module"):
        N.init_weight_norm_(nn.Linear(3, 2), torch.randn(4, 3))
    with raises(TypeError, "init_weight_norm_", "x"):
        N.init_weight_norm_(N.weight_norm(nn.Linear(3, 2)), torch.ones(4, 3, dtype=torch.long))


def test_spectral_sigma_without_the_weight():
    # Fixed bug: spectral_sigma does not check its arguments like the other functions of
    # mldl.norm.reparam: a module without the tensor fails with "AttributeError: 'ReLU'
    # object has no attribute 'weight'" instead of "spectral_sigma: name: ...".
    with raises(ValueError, "spectral_sigma", "name"):
        N.spectral_sigma(nn.ReLU())


# ----------------------------------------- the thin subclasses of PyTorch's layers (bugs)


THIN_OPTIONS = [
    ("LayerNorm", lambda: N.LayerNorm(4, eps=0.0), "eps", ValueError),
    ("LayerNorm", lambda: N.LayerNorm(4, eps=-1.0), "eps", ValueError),
    ("RMSNorm", lambda: N.RMSNorm(4, eps=0.0), "eps", ValueError),
    ("RMSNorm", lambda: N.RMSNorm(4, eps=-1.0), "eps", ValueError),
    ("GroupNorm", lambda: N.GroupNorm(2, 4, eps=0.0), "eps", ValueError),
    ("GroupNorm", lambda: N.GroupNorm(2, 4, eps=-1.0), "eps", ValueError),
    ("InstanceNorm2d", lambda: N.InstanceNorm2d(3, eps=0.0), "eps", ValueError),
    ("InstanceNorm2d", lambda: N.InstanceNorm2d(3, momentum=2.0), "momentum", ValueError),
    ("InstanceNorm2d", lambda: N.InstanceNorm2d(0), "num_features", ValueError),
    ("InstanceNorm2d", lambda: N.InstanceNorm2d(2.5), "num_features", TypeError),
]


def test_thin_torch_subclasses_check_their_options():
    # Fixed bug: LayerNorm, RMSNorm, GroupNorm and InstanceNorm* (PyTorch's layers with
    # checked *input*) do not check their constructor options: every case below is accepted
    # without a word (eps <= 0, momentum 2, num_features 0 or 2.5; with eps=-1 LayerNorm
    # turns a constant row into NaN). GroupNorm checks num_groups/num_channels only.
    # (RMSNorm's eps=None, the dtype's machine epsilon, is valid and accepted.)
    N.RMSNorm(4, eps=None)
    wrong = []
    for owner, make, arg, exc in THIN_OPTIONS:
        try:
            make()
        except exc as e:
            if not (str(e).startswith(f"{owner}:") and arg in str(e)):
                wrong.append(f"{owner}({arg}): unclear message {e}")
        else:
            wrong.append(f"{owner}({arg}): accepted")
    assert wrong == []


def test_instance_norm_wrong_channel_count():
    # Fixed bug: with affine=True an input with the wrong channel count fails inside
    # PyTorch with "ValueError: expected input's size at dim=1 to match num_features (3),
    # but got: 4." (no class name, no argument), unlike every other layer here.
    layer = N.InstanceNorm2d(3, affine=True)
    with raises(ValueError, "InstanceNorm2d", "input"):
        layer(torch.randn(2, 4, 3, 3))
