"""The shared moments in ``mldl.norm._stats``: the fast per-channel statistics against
``torch.var_mean`` in float64, their first and second derivatives by finite differences,
and mean-only batch norm's running-statistics reset (a regression)."""

import pytest
import torch

from mldl.norm import MeanOnlyBatchNorm2d
from mldl.norm._stats import _ChannelMoments, instance_moments, local_batch_moments

F64 = torch.float64


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6), (3, 2, 4, 5), (2, 2, 3, 2, 2), (1, 4, 1)])
def test_channel_moments_match_var_mean(shape):
    x = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(0)) * 3 + 2
    dims = (0, *range(2, x.dim()))
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    m = local_batch_moments(x)
    assert torch.allclose(m.mean, mean, atol=1e-12) and torch.allclose(m.var, var, atol=1e-12)
    if x.dim() > 2:
        var_i, mean_i = torch.var_mean(x.flatten(2), dim=2, correction=0)
        inst = instance_moments(x)
        assert torch.allclose(inst.mean, mean_i, atol=1e-12)
        assert torch.allclose(inst.var, var_i, atol=1e-12)


def test_channel_moments_gradients():
    x = torch.randn(3, 4, 5, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(_ChannelMoments.apply, (x,))
    assert torch.autograd.gradgradcheck(_ChannelMoments.apply, (x,))


def test_float32_moments_agree_with_float64():
    x = torch.randn(16, 8, 10, 10, generator=torch.Generator().manual_seed(1)) * 5 + 10
    m = local_batch_moments(x)
    var, mean = torch.var_mean(x.double(), dim=(0, 2, 3), correction=0)
    assert torch.allclose(m.mean.double(), mean, rtol=1e-5)
    assert torch.allclose(m.var.double(), var, rtol=1e-4)


def test_mean_only_batch_norm_resets():
    # Fixed bug: reset_running_stats filled running_var, which mean-only batch norm has not.
    layer = MeanOnlyBatchNorm2d(3)
    layer(torch.randn(4, 3, 2, 2) + 5)
    assert bool((layer.running_mean != 0).all())
    layer.reset_running_stats()
    assert bool((layer.running_mean == 0).all()) and int(layer.num_batches_tracked) == 0
    layer.reset_parameters()
    assert layer.running_var is None
