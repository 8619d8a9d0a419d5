r"""Connectionist temporal classification (CTC), on PyTorch's kernel, with the checks it lacks.

PyTorch does not check that targets avoid the blank label or that the lengths fit the
tensors they describe; wrong values give a silently wrong loss or a crash inside the
kernel. Here they raise, naming the argument (on CPU always; elsewhere with
``mldl.checks(True)``, since the check reads the values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks
from . import _reduction

__all__ = ["CTCLoss", "ctc"]


def _lengths(x: Tensor | Sequence[int] | int, name: str, n: int | None, fn: str) -> Tensor:
    """Lengths as an int64 tensor of shape (N,) (or () for unbatched input)."""
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.long if _all_ints(x) else None)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"{fn}: {name}: expected integer lengths (a tensor or a sequence of ints), "
                f"got {type(x).__name__} {x!r}"
            ) from None
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{fn}: {name}: expected integer lengths, got {x.dtype}")
    want = () if n is None else (n,)
    if tuple(x.shape) != want:
        raise ValueError(f"{fn}: {name}: expected shape {want}, got {tuple(x.shape)}")
    return x.long()


def _check_ctc_values(
    targets: Tensor,
    input_lengths: Tensor,
    target_lengths: Tensor,
    t_max: int,
    num_classes: int,
    blank: int,
    padded: bool,
    fn: str,
) -> None:
    """Lengths fit the tensors they describe; labels within the lengths are classes other
    than ``blank`` (what lies beyond a padded row's length is padding, never read)."""
    fits = (input_lengths >= 0) & (input_lengths <= t_max)
    if input_lengths.numel() and not bool(fits.all()):
        raise ValueError(
            f"{fn}: input_lengths: expected values in [0, {t_max}] (T), got "
            f"[{int(input_lengths.min())}, {int(input_lengths.max())}]"
        )
    width = targets.shape[-1] if padded else targets.numel()
    fits = (target_lengths >= 0) & (target_lengths <= width)
    if target_lengths.numel() and not bool(fits.all()):
        raise ValueError(
            f"{fn}: target_lengths: expected values in [0, {width}], got "
            f"[{int(target_lengths.min())}, {int(target_lengths.max())}]"
        )
    if padded:
        within = torch.arange(width, device=targets.device) < target_lengths.unsqueeze(-1).to(
            targets.device
        )
        labels = targets[within]
    else:
        total = int(target_lengths.sum())
        if total != targets.numel():
            raise ValueError(
                f"{fn}: targets: the concatenated targets hold {targets.numel()} labels but "
                f"target_lengths sum to {total}"
            )
        labels = targets
    _checks.class_indices(labels, num_classes, "targets", fn)
    if bool((labels == blank).any()):
        raise ValueError(
            f"{fn}: targets: the blank label {blank} may not appear within a target sequence "
            "(only as padding beyond target_lengths)"
        )


def _all_ints(x: object) -> bool:
    """A (possibly empty) list or tuple of ints, or an int: lengths given in Python."""
    if isinstance(x, (list, tuple)):
        return all(isinstance(v, int) and not isinstance(v, bool) for v in x)
    return isinstance(x, int) and not isinstance(x, bool)


def _no_frames_or_no_batch(
    log_probs: Tensor, target_lengths: Tensor, reduction: str, zero_infinity: bool
) -> Tensor:
    """CTC where PyTorch's kernel refuses an empty ``log_probs``: with no sequences the
    reduction of nothing (mean NaN, sum 0); with no frames, an empty target has the empty
    alignment (probability 1, loss 0) and any other target none (loss inf)."""
    loss = torch.where(target_lengths == 0, 0.0, math.inf).to(log_probs.dtype)
    if zero_infinity:
        loss = torch.where(torch.isinf(loss), 0.0, loss)
    loss = loss + 0.0 * log_probs.sum()  # keep the graph: the gradient is zero
    if reduction == "mean":
        return _reduction.reduce(loss / target_lengths.clamp_min(1), "mean")
    return _reduction.reduce(loss, reduction)


def ctc(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths: Tensor | Sequence[int] | int,
    target_lengths: Tensor | Sequence[int] | int,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> Tensor:
    r"""CTC loss: :math:`-\log \sum_{\pi \in \mathcal{B}^{-1}(y)} \prod_t p_t(\pi_t)`.

    Sums over every alignment :math:`\pi` of the target :math:`y` to the input frames that
    collapses to :math:`y` after merging repeats and deleting blanks. ``'mean'`` divides
    each sequence's loss by its target length (at least 1), then averages, as in PyTorch.
    An impossible alignment (a target longer than its input allows) has infinite loss;
    ``zero_infinity=True`` sets it (and its gradient) to 0.

    ``log_probs`` must be the output of ``log_softmax`` inside the autograd graph: PyTorch's
    CTC backward returns the gradient with respect to the logits before that
    ``log_softmax`` (:math:`e^{lp} - \gamma`, pytorch #52241), which is only right when a
    ``log_softmax`` follows it in the graph.

    Shape:
        log_probs: :math:`(T, N, C)` or :math:`(T, C)` log-probabilities (``log_softmax``
        over C); targets: :math:`(N, S)` padded or the concatenation of all targets
        :math:`(\sum_n S_n)` (:math:`(S)` unbatched), labels in :math:`[0, C)` other than
        ``blank``; input_lengths, target_lengths: :math:`(N)` (scalars unbatched);
        output: scalar or :math:`(N)`.

    >>> import torch
    >>> lp = torch.full((2, 1, 2), 0.5).log()  # two frames, blank and one label
    >>> ctc(lp, torch.tensor([[1]]), [2], [1], reduction="sum")  # 3 alignments of 1/4
    tensor(0.2877)
    """
    fn = "ctc"
    _reduction.check(reduction, fn)
    _checks.floating(log_probs, "log_probs", fn)
    _checks.ndim(log_probs, (2, 3), "log_probs", fn)
    t_max, c = log_probs.shape[0], log_probs.shape[-1]
    n = log_probs.shape[1] if log_probs.dim() == 3 else None
    blank = _checks.integer(blank, "blank", fn, low=0, high=c - 1)
    input_lengths = _lengths(input_lengths, "input_lengths", n, fn)
    target_lengths = _lengths(target_lengths, "target_lengths", n, fn)
    _checks.tensor(targets, "targets", fn)
    _checks.same_device({"log_probs": log_probs, "targets": targets}, fn)
    if n is None:
        _checks.ndim(targets, (1,), "targets", fn)
    elif targets.dim() == 2 and targets.shape[0] != n:
        raise ValueError(
            f"{fn}: targets: expected {n} padded rows, got shape {tuple(targets.shape)}"
        )
    else:
        _checks.ndim(targets, (1, 2), "targets", fn)
    # An unbatched target is read like one padded row: its first target_length labels.
    padded = n is None or targets.dim() == 2
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"{fn}: targets: expected integer labels, got {targets.dtype}")
    targets = targets.long()
    if targets.device.type == "cpu" or _checks.checks_enabled():
        _check_ctc_values(targets, input_lengths, target_lengths, t_max, c, blank, padded, fn)
    _checks.values(log_probs, _checks.LOG_PROBABILITY_INPUT, "log_probs", fn)
    if log_probs.numel() == 0:
        return _no_frames_or_no_batch(log_probs, target_lengths, reduction, zero_infinity)
    return F.ctc_loss(
        log_probs,
        targets,
        input_lengths,
        target_lengths,
        blank=blank,
        reduction=reduction,
        zero_infinity=zero_infinity,
    )


class CTCLoss(nn.Module):
    """Module form of :func:`ctc`."""

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__()
        self.blank = _checks.integer(blank, "blank", "CTCLoss", low=0)
        self.zero_infinity = zero_infinity
        self.reduction = _reduction.check(reduction, "CTCLoss")

    def forward(
        self,
        log_probs: Tensor,
        targets: Tensor,
        input_lengths: Tensor | Sequence[int],
        target_lengths: Tensor | Sequence[int],
    ) -> Tensor:
        return ctc(
            log_probs,
            targets,
            input_lengths,
            target_lengths,
            self.blank,
            self.reduction,
            self.zero_infinity,
        )
