r"""Margin losses: hinge and cosine embedding, margin ranking, soft margin, multilabel margin,
and the notes' ranking loss on the gap between the top two scores.

All but :func:`top2_margin` and :func:`soft_margin` call PyTorch's kernels and match them.
:func:`soft_margin` computes :math:`\mathrm{softplus}(-yx)`, which stays finite where
PyTorch's :math:`\log(1 + e^{-yx})` overflows to inf for :math:`-yx > 88.7` in float32
(with a NaN gradient). Inputs and targets must have the same shape (PyTorch broadcasts
some of these silently).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks
from . import _reduction

__all__ = [
    "CosineEmbeddingLoss",
    "HingeEmbeddingLoss",
    "MarginRankingLoss",
    "MultiLabelMarginLoss",
    "SoftMarginLoss",
    "Top2MarginLoss",
    "cosine_embedding",
    "hinge_embedding",
    "margin_ranking",
    "multilabel_margin",
    "soft_margin",
    "top2_margin",
]


def _signed_pair(input: Tensor, target: Tensor, fn: str, name: str = "input") -> None:
    """(real input, ±1 target) of one shape; the target is a float or signed integer tensor."""
    _checks.floating(input, name, fn)
    _checks.tensor(target, "target", fn)
    if target.dtype == torch.bool or target.is_complex():
        raise TypeError(
            f"{fn}: target: expected labels 1 or -1 as a float or integer tensor, "
            f"got {str(target.dtype).replace('torch.', '')}"
        )
    _checks.same_shape(input, target, (name, "target"), fn)
    _checks.same_device({name: input, "target": target}, fn)
    _checks.values(input, _checks.REAL, name, fn)
    _checks.values(target, _checks.SIGNS, "target", fn)


def hinge_embedding(
    input: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""Hinge embedding loss for distances of similar (1) and dissimilar (-1) pairs.

    .. math::
        l_n = \begin{cases} x_n & y_n = 1 \\ \max(0, \Delta - x_n) & y_n = -1 \end{cases}

    Typically :math:`x` is a distance (e.g. L1) between two embeddings.

    Shape:
        input: :math:`(*)`; target: same shape, 1 or -1; output: scalar or :math:`(*)`.

    >>> import torch
    >>> hinge_embedding(torch.tensor([0.2, 0.3]), torch.tensor([1, -1]), reduction="none")
    tensor([0.2000, 0.7000])
    """
    fn = "hinge_embedding"
    _reduction.check(reduction, fn)
    margin = _checks.number(margin, "margin", fn)
    _signed_pair(input, target, fn)
    return F.hinge_embedding_loss(input, target, margin=margin, reduction=reduction)


def cosine_embedding(
    input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, reduction: str = "mean"
) -> Tensor:
    r"""Cosine embedding loss: pull similar pairs together, push dissimilar ones apart.

    .. math::
        l_n = \begin{cases} 1 - \cos(x_1, x_2) & y = 1 \\
                            \max(0, \cos(x_1, x_2) - \Delta) & y = -1 \end{cases}

    ``margin`` :math:`\Delta \in [-1, 1]`.

    Shape:
        input1, input2: :math:`(N, D)` or :math:`(D)`; target: :math:`(N)` or :math:`()`;
        output: scalar or :math:`(N)`.

    >>> import torch
    >>> a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> cosine_embedding(a, b, torch.tensor([1])), cosine_embedding(a, b, torch.tensor([-1]))
    (tensor(1.), tensor(0.))
    """
    fn = "cosine_embedding"
    _reduction.check(reduction, fn)
    margin = _checks.number(margin, "margin", fn, low=-1.0, high=1.0)
    _checks.floating(input1, "input1", fn)
    _checks.floating(input2, "input2", fn)
    _checks.tensor(target, "target", fn)
    _checks.same_shape(input1, input2, ("input1", "input2"), fn)
    _checks.same_device({"input1": input1, "input2": input2, "target": target}, fn)
    _checks.ndim(input1, (1, 2), "input1", fn)
    if target.shape != input1.shape[:-1]:
        raise ValueError(
            f"{fn}: target: expected shape {tuple(input1.shape[:-1])} (one label per pair), "
            f"got {tuple(target.shape)}"
        )
    _checks.values(input1, _checks.REAL, "input1", fn)
    _checks.values(input2, _checks.REAL, "input2", fn)
    _checks.values(target, _checks.SIGNS, "target", fn)
    return F.cosine_embedding_loss(input1, input2, target, margin=margin, reduction=reduction)


def margin_ranking(
    input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, reduction: str = "mean"
) -> Tensor:
    r"""Margin ranking loss: :math:`l_n = \max(0, -y_n (x_{1,n} - x_{2,n}) + \Delta)`.

    :math:`y = 1` says :math:`x_1` should rank above :math:`x_2` by at least :math:`\Delta`,
    :math:`y = -1` the reverse.

    Shape:
        input1, input2, target: :math:`(N)` or :math:`()`, all one shape; output: scalar or
        :math:`(N)`.

    >>> import torch
    >>> margin_ranking(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.5]),
    ...                torch.tensor([1.0, 1.0]), margin=0.5, reduction="none")
    tensor([0., 1.])
    """
    fn = "margin_ranking"
    _reduction.check(reduction, fn)
    margin = _checks.number(margin, "margin", fn)
    _checks.floating(input1, "input1", fn)
    _checks.floating(input2, "input2", fn)
    _checks.same_shape(input1, input2, ("input1", "input2"), fn)
    _signed_pair(input1, target, fn, "input1")
    _checks.same_device({"input1": input1, "input2": input2}, fn)
    _checks.values(input2, _checks.REAL, "input2", fn)
    return F.margin_ranking_loss(input1, input2, target, margin=margin, reduction=reduction)


def soft_margin(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    r"""Soft margin (logistic) loss for ±1 labels: :math:`l_n = \log(1 + e^{-y_n x_n})`.

    Computed as :math:`\mathrm{softplus}(-y x)`: equal to PyTorch's value wherever that is
    finite, and finite (= :math:`-yx`) where PyTorch overflows to inf.

    Shape:
        input: :math:`(*)`; target: same shape, 1 or -1; output: scalar or :math:`(*)`.

    >>> import torch
    >>> soft_margin(torch.tensor([-100.0, 0.0]), torch.tensor([1.0, 1.0]), reduction="none")
    tensor([100.0000,   0.6931])
    """
    fn = "soft_margin"
    _reduction.check(reduction, fn)
    _signed_pair(input, target, fn)
    return _reduction.reduce(F.softplus(-target.to(input.dtype) * input), reduction)


def multilabel_margin(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    r"""Multi-class multi-label hinge loss.

    .. math::
        l_n = \sum_{j \in Y_n} \sum_{i \notin Y_n} \frac{\max(0, 1 - (x_{n,j} - x_{n,i}))}{C}

    ``target`` holds each row's label indices, read up to the first negative value
    (pad with -1), as in PyTorch.

    Shape:
        input: :math:`(C)` or :math:`(N, C)`; target: same shape, integers in
        :math:`[-1, C)`; output: scalar or :math:`(N)`.

    >>> import torch
    >>> multilabel_margin(torch.tensor([[0.1, 0.2, 0.4, 0.8]]), torch.tensor([[3, 0, -1, 1]]))
    tensor(0.8500)
    """
    fn = "multilabel_margin"
    _reduction.check(reduction, fn)
    _checks.floating(input, "input", fn)
    _checks.ndim(input, (1, 2), "input", fn)
    _checks.tensor(target, "target", fn)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"{fn}: target: expected integer label indices padded with -1 (not a multi-hot "
            f"mask), got {str(target.dtype).replace('torch.', '')}"
        )
    _checks.same_shape(input, target, ("input", "target"), fn)
    _checks.same_device({"input": input, "target": target}, fn)
    target = target.long()
    c = input.shape[-1]
    # A row's labels are the values before its first negative one; the rest is padding,
    # set to -1 so that PyTorch (which range-checks it too) never sees it.
    is_label = (target >= 0).cumprod(-1).bool()
    if target.device.type == "cpu" or _checks.checks_enabled():
        labels = target[is_label]
        if labels.numel() and int(labels.max()) >= c:
            raise ValueError(
                f"{fn}: target: expected label indices in [0, {c - 1}] before each row's "
                f"first negative value, got {int(labels.max())}"
            )
    target = target.masked_fill(~is_label, -1)
    _checks.values(input, _checks.REAL, "input", fn)
    if input.numel() == 0:  # PyTorch returns uninitialised memory here
        return _reduction.reduce(input.sum(-1), reduction)
    return F.multilabel_margin_loss(input, target, reduction=reduction)


def top2_margin(
    input: Tensor,
    target: Tensor,
    margin: float = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    *,
    p: int = 1,
) -> Tensor:
    r"""The notes' ranking loss, ``|top1 - top2| > d``: a margin on the gap between the
    target's score and the best other score (Crammer–Singer multi-class hinge).

    .. math::
        l_n = w_{y_n} \max\left(0,\;
              \Delta - \left(x_{n,y_n} - \max_{c \ne y_n} x_{n,c}\right)\right)^p

    The loss is zero once the target leads every other class by ``margin``. Unlike
    PyTorch's ``multi_margin_loss``, which sums a hinge over every other class, only the
    strongest competitor counts. ``p`` is 1 (hinge) or 2 (squared hinge). ``weight`` and
    ``ignore_index`` follow :func:`cross_entropy`: ``'mean'`` divides by
    :math:`\sum_n w_{y_n}` over non-ignored items.

    Shape:
        input: :math:`(N, C)` or :math:`(C)` scores, :math:`C \ge 2`; target: :math:`(N)` or
        :math:`()` class indices; output: scalar or :math:`(N)`.

    >>> import torch
    >>> x = torch.tensor([[3.0, 1.0, 2.5], [0.0, 2.0, 0.0]])
    >>> top2_margin(x, torch.tensor([0, 1]), margin=1.0, reduction="none")
    tensor([0.5000, 0.0000])
    """
    fn = "top2_margin"
    _reduction.check(reduction, fn)
    margin = _checks.number(margin, "margin", fn)
    p = _checks.integer(p, "p", fn, low=1, high=2)
    ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
    _checks.floating(input, "input", fn)
    _checks.ndim(input, (1, 2), "input", fn)
    k = input.shape[-1]
    if k < 2:
        raise ValueError(f"{fn}: input: needs at least 2 classes to rank, got {k}")
    _checks.tensor(target, "target", fn)
    _checks.same_device({"input": input, "target": target}, fn)
    if target.shape != input.shape[:-1]:
        raise ValueError(
            f"{fn}: target: expected class indices of shape {tuple(input.shape[:-1])}, "
            f"got {tuple(target.shape)}"
        )
    target = _checks.class_indices(target, k, "target", fn, ignore_index=ignore_index)
    _checks.class_weight(weight, k, input, fn)
    _checks.values(input, _checks.REAL, "input", fn)

    kept = target != ignore_index
    safe = target.masked_fill(~kept, 0).unsqueeze(-1)
    score = input.gather(-1, safe).squeeze(-1)
    best_other = input.scatter(-1, safe, float("-inf")).amax(-1)
    loss = torch.clamp_min(margin - (score - best_other), 0.0)
    if p == 2:
        loss = loss * loss
    item_weight = kept.to(input.dtype)
    if weight is not None:
        item_weight = item_weight * weight[safe.squeeze(-1)]
    return _reduction.reduce(loss * item_weight, reduction, item_weight=item_weight)


# ------------------------------------------------------------------------------- modules


class HingeEmbeddingLoss(nn.Module):
    """Module form of :func:`hinge_embedding`."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.margin = _checks.number(margin, "margin", "HingeEmbeddingLoss")
        self.reduction = _reduction.check(reduction, "HingeEmbeddingLoss")

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return hinge_embedding(input, target, self.margin, self.reduction)


class CosineEmbeddingLoss(nn.Module):
    """Module form of :func:`cosine_embedding`."""

    def __init__(self, margin: float = 0.0, reduction: str = "mean") -> None:
        super().__init__()
        self.margin = _checks.number(margin, "margin", "CosineEmbeddingLoss", low=-1, high=1)
        self.reduction = _reduction.check(reduction, "CosineEmbeddingLoss")

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return cosine_embedding(input1, input2, target, self.margin, self.reduction)


class MarginRankingLoss(nn.Module):
    """Module form of :func:`margin_ranking`."""

    def __init__(self, margin: float = 0.0, reduction: str = "mean") -> None:
        super().__init__()
        self.margin = _checks.number(margin, "margin", "MarginRankingLoss")
        self.reduction = _reduction.check(reduction, "MarginRankingLoss")

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return margin_ranking(input1, input2, target, self.margin, self.reduction)


class SoftMarginLoss(nn.Module):
    """Module form of :func:`soft_margin`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction.check(reduction, "SoftMarginLoss")

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return soft_margin(input, target, self.reduction)


class MultiLabelMarginLoss(nn.Module):
    """Module form of :func:`multilabel_margin`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction.check(reduction, "MultiLabelMarginLoss")

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return multilabel_margin(input, target, self.reduction)


class Top2MarginLoss(nn.Module):
    """Module form of :func:`top2_margin`."""

    def __init__(
        self,
        margin: float = 1.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        *,
        p: int = 1,
    ) -> None:
        super().__init__()
        self.margin = _checks.number(margin, "margin", "Top2MarginLoss")
        self.register_buffer("weight", _checks.optional_tensor(weight, "weight", "Top2MarginLoss"))
        self.ignore_index = _checks.integer(ignore_index, "ignore_index", "Top2MarginLoss")
        self.reduction = _reduction.check(reduction, "Top2MarginLoss")
        self.p = _checks.integer(p, "p", "Top2MarginLoss", low=1, high=2)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return top2_margin(
            input, target, self.margin, self.weight, self.ignore_index, self.reduction, p=self.p
        )
