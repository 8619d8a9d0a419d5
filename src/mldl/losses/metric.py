r"""Metric-learning losses: triplet margin losses, and the notes' "FaceNet: Euclidean distance
-> probability" as a pair loss.

The triplet losses call PyTorch's kernels and match them. :func:`distance_match` is ours:
PyTorch has no loss that turns an embedding distance into a match probability.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks
from . import _reduction
from .classification import bce_with_logits

__all__ = [
    "DistanceMatchLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
    "distance_match",
    "match_probability",
    "triplet_margin",
    "triplet_margin_with_distance",
]


def _triplet(anchor: Tensor, positive: Tensor, negative: Tensor, fn: str) -> None:
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        _checks.floating(t, name, fn)
        _checks.ndim(t, (1, 2), name, fn)
        _checks.values(t, _checks.REAL, name, fn)
    _checks.same_shape(anchor, positive, ("anchor", "positive"), fn)
    _checks.same_shape(anchor, negative, ("anchor", "negative"), fn)
    _checks.same_device({"anchor": anchor, "positive": positive, "negative": negative}, fn)


def triplet_margin(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
) -> Tensor:
    r"""Triplet margin loss: :math:`l_n = \max(0, d(a_n, p_n) - d(a_n, n_n) + \Delta)`.

    :math:`d(x, y) = \lVert x - y + \epsilon \rVert_p` (PyTorch's ``pairwise_distance``);
    ``swap=True`` uses :math:`\min(d(a, n), d(p, n))` as the negative distance (Balntas et
    al. 2016).

    Shape:
        anchor, positive, negative: :math:`(N, D)` or :math:`(D)`; output: scalar or :math:`(N)`.

    >>> import torch
    >>> a, p, n = torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 0.0]])
    >>> triplet_margin(a, p, n, margin=1.0, eps=0.0)
    tensor(0.)
    """
    fn = "triplet_margin"
    _reduction.check(reduction, fn)
    margin = _checks.number(margin, "margin", fn, low=0.0)
    p = _checks.number(p, "p", fn, low=0.0, low_open=True)
    eps = _checks.number(eps, "eps", fn, low=0.0)
    _triplet(anchor, positive, negative, fn)
    return F.triplet_margin_loss(
        anchor, positive, negative, margin=margin, p=p, eps=eps, swap=swap, reduction=reduction
    )


def triplet_margin_with_distance(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    distance_function: Callable[[Tensor, Tensor], Tensor] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> Tensor:
    r"""Triplet loss with any distance: :math:`l_n = \max(0, d(a_n, p_n) - d(a_n, n_n) + \Delta)`.

    ``distance_function(x, y)`` returns one non-negative distance per row (default:
    ``pairwise_distance``, Euclidean), e.g. ``lambda x, y: 1 - F.cosine_similarity(x, y)``.

    Shape:
        anchor, positive, negative: :math:`(N, D)` or :math:`(D)`; output: scalar or :math:`(N)`.

    >>> import torch, torch.nn.functional as F
    >>> a, p, n = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.1]]), torch.tensor([[0.0, 1.0]])
    >>> triplet_margin_with_distance(a, p, n, margin=0.5,
    ...     distance_function=lambda x, y: 1 - F.cosine_similarity(x, y))
    tensor(0.)
    """
    fn = "triplet_margin_with_distance"
    _reduction.check(reduction, fn)
    margin = _checks.number(margin, "margin", fn, low=0.0, low_open=True)
    if distance_function is not None and not callable(distance_function):
        raise TypeError(
            f"{fn}: distance_function: expected a callable (x, y) -> distances, "
            f"got {type(distance_function).__name__}"
        )
    _triplet(anchor, positive, negative, fn)
    if distance_function is not None:
        distance_function = _one_distance_per_row(distance_function, anchor.shape[:-1], fn)
    return F.triplet_margin_with_distance_loss(
        anchor,
        positive,
        negative,
        distance_function=distance_function,
        margin=margin,
        swap=swap,
        reduction=reduction,
    )


def _one_distance_per_row(distance_function, shape: torch.Size, fn: str):
    """Wrap a user's distance so that it must return one distance per row: a scalar or an
    (N, D) result would otherwise broadcast into a wrong loss."""

    def checked(x: Tensor, y: Tensor) -> Tensor:
        d = distance_function(x, y)
        if not isinstance(d, Tensor) or d.shape != shape:
            got = tuple(d.shape) if isinstance(d, Tensor) else type(d).__name__
            raise ValueError(
                f"{fn}: distance_function: expected one distance per row, shape "
                f"{tuple(shape)}, got {got}"
            )
        return d

    return checked


def _pair_distance(x1: Tensor, x2: Tensor, p: float, eps: float, fn: str) -> Tensor:
    p = _checks.number(p, "p", fn, low=0.0, low_open=True)
    eps = _checks.number(eps, "eps", fn, low=0.0)
    for name, t in (("x1", x1), ("x2", x2)):
        _checks.floating(t, name, fn)
        _checks.ndim(t, (1, 2), name, fn)
        _checks.values(t, _checks.REAL, name, fn)
    _checks.same_shape(x1, x2, ("x1", "x2"), fn)
    _checks.same_device({"x1": x1, "x2": x2}, fn)
    return F.pairwise_distance(x1, x2, p=p, eps=eps)


def _match_logit(d: Tensor, scale: float | Tensor, offset: float | Tensor, fn: str) -> Tensor:
    """The logit b - s·d of a match; ``scale`` and ``offset`` may be tensors (learned)."""
    if isinstance(scale, Tensor):
        _checks.floating(scale, "scale", fn)
        _checks.values(scale, _checks.REAL, "scale", fn)
        if _checks.checks_enabled() and bool((scale <= 0).any()):
            raise ValueError(f"{fn}: scale: expected a positive scale, got {scale.min().item():g}")
    else:
        scale = _checks.number(scale, "scale", fn, low=0.0, low_open=True)
    if isinstance(offset, Tensor):
        _checks.floating(offset, "offset", fn)
        _checks.values(offset, _checks.REAL, "offset", fn)
    else:
        offset = _checks.number(offset, "offset", fn)
    return offset - scale * d


def match_probability(
    x1: Tensor,
    x2: Tensor,
    scale: float | Tensor = 1.0,
    offset: float | Tensor = 0.0,
    p: float = 2.0,
    eps: float = 1e-6,
) -> Tensor:
    r"""The probability that two embeddings match: :math:`\sigma(b - s \lVert x_1 - x_2 \rVert_p)`.

    The notes' "Euclidean distance -> probability": small distances give probabilities near
    :math:`\sigma(b)`, large ones near 0. ``scale`` :math:`s > 0` and ``offset`` :math:`b`
    are what :class:`DistanceMatchLoss` learns.

    Shape:
        x1, x2: :math:`(N, D)` or :math:`(D)`; output: :math:`(N)` or :math:`()`.

    >>> import torch
    >>> match_probability(torch.zeros(2, 3), torch.tensor([[0.0, 0, 0], [3, 4, 0]]),
    ...                   scale=1.0, offset=2.0, eps=0.0)
    tensor([0.8808, 0.0474])
    """
    fn = "match_probability"
    return torch.sigmoid(_match_logit(_pair_distance(x1, x2, p, eps, fn), scale, offset, fn))


def distance_match(
    x1: Tensor,
    x2: Tensor,
    target: Tensor,
    scale: float | Tensor = 1.0,
    offset: float | Tensor = 0.0,
    p: float = 2.0,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    r"""Distance-to-probability pair loss: BCE of :func:`match_probability` against match labels.

    .. math::
        l_n = \mathrm{BCE}\left(\sigma(b - s\, d_n),\, y_n\right),\qquad
        d_n = \lVert x_{1,n} - x_{2,n} \rVert_p

    computed on the logit :math:`b - s d_n` (stable). ``target`` is 1 (or True) for pairs
    of the same class, 0 for different classes. Unlike a margin loss, the result is a
    calibrated match probability, as in FaceNet-style verification.

    Shape:
        x1, x2: :math:`(N, D)` or :math:`(D)`; target: :math:`(N)` or :math:`()`; output:
        scalar or :math:`(N)`.

    >>> import torch
    >>> x1, x2 = torch.zeros(2, 2), torch.tensor([[0.0, 0.1], [3.0, 4.0]])
    >>> distance_match(x1, x2, torch.tensor([1, 0]), scale=1.0, offset=2.0, eps=0.0)
    tensor(0.0940)
    """
    fn = "distance_match"
    _reduction.check(reduction, fn)
    d = _pair_distance(x1, x2, p, eps, fn)
    _checks.tensor(target, "target", fn)
    _checks.same_device({"x1": x1, "target": target}, fn)
    if target.shape != d.shape:
        raise ValueError(
            f"{fn}: target: expected one match label per pair, shape {tuple(d.shape)}, "
            f"got {tuple(target.shape)}"
        )
    target = target.to(d.dtype)
    _checks.values(target, _checks.PROBABILITIES, "target", fn)
    return bce_with_logits(_match_logit(d, scale, offset, fn), target, reduction=reduction)


# ------------------------------------------------------------------------------- modules


class TripletMarginLoss(nn.Module):
    """Module form of :func:`triplet_margin`."""

    def __init__(
        self,
        margin: float = 1.0,
        p: float = 2.0,
        eps: float = 1e-6,
        swap: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = "TripletMarginLoss"
        self.margin = _checks.number(margin, "margin", fn, low=0.0)
        self.p = _checks.number(p, "p", fn, low=0.0, low_open=True)
        self.eps = _checks.number(eps, "eps", fn, low=0.0)
        self.swap = swap
        self.reduction = _reduction.check(reduction, fn)

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return triplet_margin(
            anchor, positive, negative, self.margin, self.p, self.eps, self.swap, self.reduction
        )


class TripletMarginWithDistanceLoss(nn.Module):
    """Module form of :func:`triplet_margin_with_distance`."""

    def __init__(
        self,
        *,
        distance_function: Callable[[Tensor, Tensor], Tensor] | None = None,
        margin: float = 1.0,
        swap: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = "TripletMarginWithDistanceLoss"
        if distance_function is not None and not callable(distance_function):
            raise TypeError(f"{fn}: distance_function: expected a callable (x, y) -> distances")
        self.distance_function, self.swap = distance_function, swap
        self.margin = _checks.number(margin, "margin", fn, low=0.0, low_open=True)
        self.reduction = _reduction.check(reduction, fn)

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return triplet_margin_with_distance(
            anchor,
            positive,
            negative,
            distance_function=self.distance_function,
            margin=self.margin,
            swap=self.swap,
            reduction=self.reduction,
        )


class DistanceMatchLoss(nn.Module):
    r""":func:`distance_match` with a learned scale and offset.

    The scale is kept positive as :math:`s = e^{\log s}`; both start from the given values.

    >>> import torch
    >>> loss = DistanceMatchLoss(scale=2.0, offset=1.0)
    >>> sorted(n for n, _ in loss.named_parameters())
    ['log_scale', 'offset']
    """

    def __init__(
        self,
        scale: float = 1.0,
        offset: float = 0.0,
        p: float = 2.0,
        eps: float = 1e-6,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = "DistanceMatchLoss"
        scale = _checks.number(scale, "scale", fn, low=0.0, low_open=True)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        self.offset = nn.Parameter(torch.tensor(_checks.number(offset, "offset", fn)))
        self.p = _checks.number(p, "p", fn, low=0.0, low_open=True)
        self.eps = _checks.number(eps, "eps", fn, low=0.0)
        self.reduction = _reduction.check(reduction, fn)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def probability(self, x1: Tensor, x2: Tensor) -> Tensor:
        """The match probability under the learned scale and offset."""
        return match_probability(x1, x2, self.scale, self.offset, self.p, self.eps)

    def forward(self, x1: Tensor, x2: Tensor, target: Tensor) -> Tensor:
        return distance_match(
            x1, x2, target, self.scale, self.offset, self.p, self.eps, self.reduction
        )
