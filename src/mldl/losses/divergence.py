r"""Kullback–Leibler divergence, with PyTorch's arguments, reductions and warning.

``reduction='batchmean'`` is the KL divergence of the math (sum over classes, mean over the
batch); ``'mean'`` divides by every element and PyTorch warns about it, as do we. Where we
differ: :math:`0 \log 0 = 0` holds even where the input is :math:`-\infty` (a masked logit
under a zero target, common with padding), where PyTorch gives NaN.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from .. import _checks
from . import _reduction

__all__ = ["KLDivLoss", "kl_div"]

KL_REDUCTIONS = ("none", "batchmean", "sum", "mean")


def kl_div(
    input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False
) -> Tensor:
    r"""Pointwise KL divergence :math:`l_n = y_n (\log y_n - x_n)` with :math:`0 \log 0 = 0`.

    ``input`` holds log-probabilities :math:`x` (the model), ``target`` probabilities
    :math:`y` (or log-probabilities with ``log_target=True``, then
    :math:`l = e^{y}(y - x)`). ``'batchmean'`` gives :math:`KL(y \| e^x)` averaged over the
    batch. With the OpenNMT target of :func:`~mldl.losses.smooth_labels` and
    ``reduction='sum'`` this is the notes' third label-smoothing snippet.

    Shape:
        input: :math:`(*)`; target: same shape; output: scalar or :math:`(*)` for ``'none'``.

    >>> import torch
    >>> p = torch.tensor([[0.5, 0.5]])
    >>> kl_div(torch.tensor([[0.9, 0.1]]).log(), p, reduction="batchmean")
    tensor(0.5108)
    """
    fn = "kl_div"
    _reduction.check(reduction, fn, KL_REDUCTIONS)
    _checks.floating(input, "input", fn)
    _checks.floating(target, "target", fn)
    _checks.same_shape(input, target, ("input", "target"), fn)
    _checks.same_device({"input": input, "target": target}, fn)
    _checks.values(input, _checks.LOG_PROBABILITY_INPUT, "input", fn)
    domain = _checks.LOG_PROBABILITIES if log_target else _checks.PROBABILITIES
    _checks.values(target, domain, "target", fn)
    # 0·log 0 = 0: a zero target contributes nothing, even against a masked input (-inf).
    if log_target:
        input = torch.where(torch.isneginf(target) & torch.isneginf(input), 0.0, input)
        loss = torch.exp(target) * (target - input)
    else:
        input = torch.where((target == 0) & torch.isneginf(input), 0.0, input)
        loss = torch.xlogy(target, target) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.dim() else loss.sum()
    if reduction == "mean":
        warnings.warn(_MEAN_WARNING, stacklevel=2)
    return _reduction.reduce(loss, reduction)


# PyTorch's own words, since 'mean' here behaves as PyTorch's does.
_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)


class KLDivLoss(nn.Module):
    """Module form of :func:`kl_div`."""

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__()
        self.reduction = _reduction.check(reduction, "KLDivLoss", KL_REDUCTIONS)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return kl_div(input, target, self.reduction, self.log_target)
