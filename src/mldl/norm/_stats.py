r"""Moments, running statistics and their all-reduce across processes: the one place for the
statistics every normalization layer here uses.

* :func:`batch_moments`: per-channel mean and biased variance over the batch and spatial
  dimensions (the notes' :math:`\mu_j = \frac1m\sum_i x_{ij}`,
  :math:`\sigma_j^2 = \frac1m\sum_i (x_{ij}-\mu_j)^2`), combined across processes when a
  process group is active, exactly (moments weighted by counts, so uneven per-process
  batches give the statistics of the concatenated batch) and differentiably.
* :func:`instance_moments` and :func:`pool`: the per-(sample, channel) moments, and the
  moments of any union of equal-size groups derived from them (``E[x²] = σ² + μ²``): the
  "compute once" trick that gives IN, LN and BN statistics from one pass.
* :func:`update_running`: PyTorch's running-average rule (unbiased variance stored).
* :func:`normalize`: :math:`(x-\mu)/\sqrt{\sigma^2+\epsilon}\cdot\gamma + \beta` as one
  multiply-add with per-channel (or per-sample-and-channel) coefficients.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor


class Moments(NamedTuple):
    """Mean and biased variance of some groups of values, and how many values each group
    has (a float tensor broadcastable to ``mean``)."""

    mean: Tensor
    var: Tensor
    count: Tensor


def reduction_dims(x: Tensor) -> tuple[int, ...]:
    """Batch and spatial dimensions of an (N, C, *) tensor: all but the channel."""
    return (0, *range(2, x.dim()))


def spatial_size(x: Tensor) -> int:
    size = 1
    for d in x.shape[2:]:
        size *= d
    return size


def _at_least_float32(x: Tensor) -> Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


class _ChannelMoments(torch.autograd.Function):
    r"""Per-channel mean and biased variance of an (N, C, *) tensor from ATen's batch-norm
    statistics kernel (the statistics native BatchNorm computes, in one pass;
    ``torch.var_mean`` over several dimensions is 3-6x slower on CPU), with the analytic
    gradient
    :math:`\partial\mu_c/\partial x = 1/m`,
    :math:`\partial\sigma_c^2/\partial x = 2(x - \mu_c)/m` (m values per channel), written
    in differentiable ops so that second derivatives work too."""

    @staticmethod
    def forward(ctx, x: Tensor) -> tuple[Tensor, Tensor]:
        ctx.save_for_backward(x)
        mean, var = torch.batch_norm_update_stats(x, None, None, 0.0)
        return mean, var

    @staticmethod
    def backward(ctx, grad_mean: Tensor, grad_var: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        dims = reduction_dims(x)
        shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
        m = x.numel() // x.shape[1]
        centred = x - x.mean(dims, keepdim=True)
        return (grad_mean.reshape(shape) + 2 * grad_var.reshape(shape) * centred) / m


def channel_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean, biased var)`` over every dimension but 1 of a non-empty (N, C, *) tensor:
    :class:`_ChannelMoments` on CPU, ``torch.var_mean`` elsewhere (fast there)."""
    if x.device.type == "cpu" and x.numel() > 0 and x.dtype in (torch.float32, torch.float64):
        return _ChannelMoments.apply(x)
    var, mean = torch.var_mean(x, dim=reduction_dims(x), correction=0)
    return mean, var


def batch_mean(x: Tensor) -> Tensor:
    """Per-channel mean of one process's (N, C, *) batch, in float32 or wider."""
    return _at_least_float32(x).mean(reduction_dims(x))


def local_batch_moments(x: Tensor) -> Moments:
    """Per-channel moments of one process's (N, C, *) batch, computed in float32 or wider."""
    mean, var = channel_moments(_at_least_float32(x))
    count = torch.full_like(mean, float(x.shape[0] * spatial_size(x)))
    return Moments(mean, var, count)


def instance_moments(x: Tensor) -> Moments:
    """Per-(sample, channel) moments of an (N, C, *) tensor over its spatial dimensions:
    mean and var of shape (N, C). With no spatial dimension each group is one value (var 0:
    the biased variance, never NaN)."""
    xf = _at_least_float32(x)
    if x.dim() == 2:
        return Moments(xf, torch.zeros_like(xf), torch.ones_like(xf))
    n, c = x.shape[:2]
    # each (sample, channel) pair is a "channel" of a batch of one
    mean, var = channel_moments(xf.reshape(1, n * c, -1))
    mean, var = mean.reshape(n, c), var.reshape(n, c)
    return Moments(mean, var, torch.full_like(mean, float(spatial_size(x))))


def pool(m: Moments, dim: int | tuple[int, ...]) -> Moments:
    """Moments of the union of the groups along ``dim``, from the groups' own moments:
    count-weighted mean, and the variance from E[x²] = σ² + μ² (exact for biased
    variances)."""
    total = m.count.sum(dim, keepdim=True)
    w = m.count / total
    mean = (w * m.mean).sum(dim, keepdim=True)
    second = (w * (m.var + m.mean**2)).sum(dim, keepdim=True)
    var = (second - mean**2).clamp_min(0.0)
    return Moments(mean.squeeze(dim), var.squeeze(dim), total.squeeze(dim))


# ----------------------------------------------------------------------- across processes


def sync_active(group) -> bool:
    """Whether statistics must be combined across processes: ``torch.distributed`` is
    initialised and ``group`` (``None``: the default group) has more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


class _AllGather(torch.autograd.Function):
    """All-gather along a new leading dimension, differentiable: every process's result
    depends on every process's input, so the gradient of a process's input is the sum over
    processes of the gradients of its slot (an all-reduce of the output gradient, sliced)."""

    @staticmethod
    def forward(ctx, x: Tensor, group) -> Tensor:
        ctx.group = group
        ctx.rank = dist.get_rank(group)
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        return grad[ctx.rank], None


def combine(parts: Moments) -> Moments:
    """Moments of the union of groups stacked along dim 0 (Chan et al.'s parallel
    formula: exact, and stable where E[x²] - μ² is not)."""
    total = parts.count.sum(0)
    mean = (parts.count * parts.mean).sum(0) / total
    m2 = (parts.count * (parts.var + (parts.mean - mean) ** 2)).sum(0)
    return Moments(mean, m2 / total, total)


def batch_moments(x: Tensor, group=None, *, sync: bool) -> Moments:
    """Per-channel moments of the batch, over every process of ``group`` when
    :func:`sync_active` (and ``sync``). Gradients flow through the exchange."""
    return across_processes(local_batch_moments(x), group, sync=sync)


def across_processes(local: Moments, group=None, *, sync: bool) -> Moments:
    """Per-channel moments combined over every process of ``group`` (count-weighted, so
    uneven batches give the moments of the concatenated batch), or ``local`` unchanged when
    not synchronising. Differentiable."""
    if not (sync and sync_active(group)):
        return local
    stacked = _AllGather.apply(torch.stack(local), group)  # (world, 3, C)
    return combine(Moments(stacked[:, 0], stacked[:, 1], stacked[:, 2]))


# --------------------------------------------------------------------- running statistics


@torch.no_grad()
def update_running(running_mean: Tensor, running_var: Tensor, m: Moments, factor: float) -> None:
    """``running = (1 - factor)·running + factor·batch`` (PyTorch's momentum convention),
    with the unbiased variance :math:`\\sigma^2 n/(n-1)` stored, as PyTorch does."""
    n = m.count
    unbiased = m.var * n / (n - 1).clamp_min(1)
    running_mean.lerp_(m.mean.to(running_mean.dtype), factor)
    running_var.lerp_(unbiased.to(running_var.dtype), factor)


def apply_affine(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``x·a + b`` with ``a``, ``b`` per channel (C,) or per sample and channel (N, C),
    broadcast over the remaining dimensions of ``x``; the result has ``x``'s dtype."""
    lead = (1, -1) if a.dim() == 1 else tuple(a.shape)
    shape = (*lead, *([1] * (x.dim() - 2)))
    return torch.addcmul(b.reshape(shape).to(x.dtype), x, a.reshape(shape).to(x.dtype))


def normalize(
    x: Tensor, mean: Tensor, var: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float
) -> Tensor:
    r""":math:`(x - \mu)/\sqrt{\sigma^2 + \epsilon}\cdot\gamma + \beta` as ``x·a + b``.

    ``mean``/``var`` are per channel, shape (C,), or per sample and channel, (N, C);
    ``weight``/``bias`` per channel or None.
    """
    a = torch.rsqrt(var + eps)
    if weight is not None:
        a = a * weight
    b = -mean * a
    if bias is not None:
        b = b + bias
    return apply_affine(x, a, b)


class _BatchNormWithMoments(torch.autograd.Function):
    r"""Training-mode batch normalisation of ``x`` with its own batch moments given:
    :math:`y = (x - \mu_B)\,\gamma / \sqrt{\sigma_B^2 + \epsilon} + \beta`, forward as one
    eval-mode ``batch_norm`` pass (the moments are not recomputed), backward as native
    ``native_batch_norm_backward`` in training mode (the gradient through
    :math:`\mu_B, \sigma_B` included, as native BatchNorm's). ``mean``/``var`` must be
    ``x``'s biased per-channel moments; they get no gradient of their own (it is inside
    ``x``'s)."""

    @staticmethod
    def forward(ctx, x, mean, var, weight, bias, eps):
        invstd = torch.rsqrt(var + eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return torch.batch_norm(x, weight, bias, mean, var, False, 0.0, eps, False)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, mean, invstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[3], ctx.needs_input_grad[4]]
        grad_x, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
            grad_out.contiguous(), x, weight, None, None, mean, invstd, True, ctx.eps, mask
        )
        return grad_x, None, None, grad_w, grad_b, None


def batch_norm_with_moments(
    x: Tensor, mean: Tensor, var: Tensor, weight: Tensor, bias: Tensor, eps: float
) -> Tensor | None:
    """:class:`_BatchNormWithMoments` where native kernels take these dtypes (``x``, the
    moments, weight and bias all float32 or all float64, ``x`` with at least 2 values per
    channel); None otherwise, for the caller's general path."""
    dtype = x.dtype
    if dtype not in (torch.float32, torch.float64) or x.numel() <= x.shape[1]:
        return None
    if any(t.dtype != dtype for t in (mean, var, weight, bias)):
        return None
    return _BatchNormWithMoments.apply(x, mean, var, weight, bias, eps)
