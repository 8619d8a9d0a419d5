"""Reductions, in one place.

PyTorch's rules, which every loss here follows:

* ``'none'``: the per-element (or per-sample) losses, unreduced.
* ``'sum'``: their sum.
* ``'mean'``: their sum divided by the number of elements, or, when items carry weights
  (class weights of NLL / cross-entropy, ignored targets), by the sum of the items'
  weights: ``Σ_i w_{y_i} l_i / Σ_i w_{y_i}`` over the items that are not ignored.
  An empty or all-ignored batch gives ``0 / 0 = NaN``, as in PyTorch.

Half-precision losses are summed in float32 and returned in the input's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _checks

REDUCTIONS = ("none", "mean", "sum")


def check(reduction: str, fn: str, allowed: tuple[str, ...] = REDUCTIONS) -> str:
    """``reduction`` must be one of ``allowed``."""
    _checks.one_of(reduction, allowed, "reduction", fn)
    return reduction


def _sum(x: Tensor) -> Tensor:
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.sum(dtype=torch.float32)
    return x.sum()


def reduce(loss: Tensor, reduction: str, *, item_weight: Tensor | None = None) -> Tensor:
    """Reduce per-item losses: none -> ``loss``, sum -> ``Σ loss``, mean -> ``Σ loss / Σ w``.

    ``item_weight`` (same shape as ``loss``) holds each item's weight in the mean's
    denominator: ``weight[target]`` for class-weighted losses, 0 for ignored items. Without
    it the mean divides by ``loss.numel()``.

    >>> import torch
    >>> reduce(torch.tensor([1.0, 2.0, 0.0]), "mean", item_weight=torch.tensor([1.0, 1.0, 0.0]))
    tensor(1.5000)
    """
    if reduction == "none":
        return loss
    total = _sum(loss)
    if reduction == "sum":
        return total.to(loss.dtype)
    if item_weight is None:
        return (total / loss.numel()).to(loss.dtype)
    return (total / _sum(item_weight)).to(loss.dtype)
