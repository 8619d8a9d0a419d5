"""Synchronised batch statistics on any ``torch.distributed`` backend (gloo on CPU included),
and the conversion of PyTorch's BatchNorm layers to mldl's.

PyTorch's ``SyncBatchNorm`` refuses CPU tensors in training (its kernels are CUDA-only);
here the batch moments of every process are exchanged with one all-gather of
(mean, variance, count) per channel and combined exactly, so processes with different batch
sizes normalise with the statistics of the concatenated batch, and gradients flow back
through the exchange. The notes' warning stands: with uneven per-process batches, data
parallelism that averages each process's gradient equally still weighs samples unequally;
synchronised statistics make the normalisation exact, not the objective.
"""

from __future__ import annotations

from torch import nn

from . import batch
from .batch import _BatchStatNorm

__all__ = ["convert", "convert_sync"]

_TORCH_TO_MLDL = {
    nn.BatchNorm1d: batch.BatchNorm1d,
    nn.BatchNorm2d: batch.BatchNorm2d,
    nn.BatchNorm3d: batch.BatchNorm3d,
}


def _mldl_twin(layer: nn.Module) -> nn.Module:
    """mldl's BatchNorm for a PyTorch one: same options, parameters and buffers (shared, not
    copied), hence the same state-dict keys."""
    # SyncBatchNorm takes (N, C, *) of any rank, as the dimension-agnostic base class does.
    cls = batch._BatchNorm if isinstance(layer, nn.SyncBatchNorm) else _TORCH_TO_MLDL[type(layer)]
    twin = cls(
        layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats
    )
    twin.weight, twin.bias = layer.weight, layer.bias
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(twin, name, getattr(layer, name))
    twin.train(layer.training)
    return twin


def convert(module: nn.Module) -> nn.Module:
    """Replace every ``torch.nn.BatchNorm{1,2,3}d`` (and ``SyncBatchNorm``) in ``module`` by
    mldl's (sharing its tensors). Returns ``module``, or the new layer if ``module`` itself
    was one."""
    if type(module) in _TORCH_TO_MLDL or isinstance(module, nn.SyncBatchNorm):
        return _mldl_twin(module)
    for name, child in module.named_children():
        new = convert(child)
        if new is not child:
            setattr(module, name, new)
    return module


def convert_sync(module: nn.Module, process_group=None) -> nn.Module:
    """Synchronise the batch statistics of every batch-statistic norm in ``module`` across
    the processes of ``process_group`` (``None``: the default group): mldl's BatchNorm,
    BatchRenorm, MeanOnlyBatchNorm, BatchInstanceNorm and SwitchableNorm, and PyTorch's
    BatchNorm layers, which are converted first. Works on gloo (CPU) and NCCL alike; a
    single process, or no initialised ``torch.distributed``, computes as before.

    >>> import torch
    >>> model = convert_sync(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)))
    >>> type(model[1]).__name__, model[1].sync
    ('BatchNorm2d', True)
    """
    module = convert(module)
    for layer in module.modules():
        if isinstance(layer, _BatchStatNorm):
            layer.sync, layer.process_group = True, process_group
    return module
