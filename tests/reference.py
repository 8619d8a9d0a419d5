r"""Float64 reference implementations of every loss in :mod:`mldl.losses`, as the notes and
the docs write the formulas (and, in the separate section at the end, of every normalization
layer in :mod:`mldl.norm`).

Written independently of the library: element-wise float64 tensor arithmetic and plain
loops, no ``torch.nn.functional`` loss and nothing from ``mldl``. Each function returns the
*unreduced* loss (one value per element, or per sample/item where the loss is defined per
sample) and, where the mean is weighted, the per-item weights for :func:`reduce`'s
denominator. Inputs are cast to float64 first; autograd through these functions gives the
reference gradients.

Conventions shared with PyTorch (and so with mldl):

* class-index losses take input of shape ``(C,)`` or ``(N, C, d1, ...)``; the class
  dimension is 0 for 1-D input, else 1;
* ``'mean'`` is ``Σ l / Σ item_weight`` when items carry weights (class weights, ignored
  items), else ``Σ l / numel``.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

F64 = torch.float64


def _d(x: Tensor) -> Tensor:
    """Cast to float64 keeping the autograd graph."""
    return x.to(F64)


def reduce(loss: Tensor, reduction: str, item_weight: Tensor | None = None) -> Tensor:
    """PyTorch's reduction rule.

    ``'none'``: ``loss``; ``'sum'``: ``Σ l``; ``'mean'``: ``Σ l / Σ item_weight`` when item
    weights are given, else ``Σ l / numel``; ``'batchmean'`` (KL only): ``Σ l / N``, N the
    size of the first dimension (1 for a scalar).
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        if item_weight is None:
            return loss.sum() / loss.numel()
        return loss.sum() / item_weight.sum()
    if reduction == "batchmean":
        return loss.sum() / (loss.shape[0] if loss.dim() else 1)
    raise ValueError(reduction)


def _softplus(z: Tensor) -> Tensor:
    r""":math:`\log(1 + e^z)`, stably: :math:`\log(e^0 + e^z)`."""
    return torch.logaddexp(torch.zeros_like(z), z)


def _sigmoid(z: Tensor) -> Tensor:
    r""":math:`1 / (1 + e^{-z})`."""
    return 1.0 / (1.0 + torch.exp(-z))


def _log_softmax(x: Tensor, dim: int) -> Tensor:
    r""":math:`x_c - \log\sum_j e^{x_j}`, with the max subtracted first."""
    m = x.max(dim, keepdim=True).values.detach()
    return x - m - torch.log(torch.exp(x - m).sum(dim, keepdim=True))


def _pnorm(v: Tensor, p: float) -> Tensor:
    r""":math:`(\sum_i |v_i|^p)^{1/p}` over the last dimension."""
    return (v.abs() ** p).sum(-1) ** (1.0 / p)


def _times(a: Tensor, b: Tensor) -> Tensor:
    r""":math:`a \cdot b` with the measure-theory convention :math:`0 \cdot \infty = 0`
    (only where :math:`b` is infinite, so that gradients elsewhere are the product's)."""
    return torch.where((a == 0) & torch.isinf(b), torch.zeros_like(b), a * b)


# ----------------------------------------------------------------------------- regression


def l1(input: Tensor, target: Tensor) -> Tensor:
    r""":math:`l_n = |y_n - x_n|`."""
    return (_d(target) - _d(input)).abs()


def mse(input: Tensor, target: Tensor) -> Tensor:
    r""":math:`l_n = (y_n - x_n)^2`."""
    return (_d(target) - _d(input)) ** 2


def smooth_l1(input: Tensor, target: Tensor, beta: float = 1.0) -> Tensor:
    r""":math:`l_n = 0.5 d^2/\beta` if :math:`d = |x_n - y_n| < \beta`, else
    :math:`d - 0.5\beta`; :math:`\beta = 0` is L1."""
    d = (_d(input) - _d(target)).abs()
    if beta == 0:
        return d
    return torch.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)


def huber(input: Tensor, target: Tensor, delta: float = 1.0) -> Tensor:
    r""":math:`l_n = 0.5 d^2` if :math:`d = |x_n - y_n| < \delta`, else
    :math:`\delta (d - 0.5 \delta)`."""
    d = (_d(input) - _d(target)).abs()
    return torch.where(d < delta, 0.5 * d**2, delta * (d - 0.5 * delta))


def poisson_nll(
    input: Tensor, target: Tensor, log_input: bool = True, full: bool = False, eps: float = 1e-8
) -> Tensor:
    r""":math:`-\log \Pr(X = k)` under :math:`\mathrm{Poisson}(\lambda)` less :math:`\log k!`.

    ``log_input``: :math:`x = \log\lambda`, :math:`l = e^x - k x`; else :math:`x = \lambda`,
    :math:`l = x - k\log(x + \epsilon)`. ``full`` adds Stirling's
    :math:`\log k! \approx k\log k - k + \tfrac12\log(2\pi k)` for :math:`k > 1` (0 for
    :math:`k \le 1`).
    """
    x, k = _d(input), _d(target)
    loss = torch.exp(x) - k * x if log_input else x - k * torch.log(x + eps)
    if full:
        big = k > 1
        ks = torch.where(big, k, torch.full_like(k, 2.0))  # keeps log finite where masked
        stirling = ks * torch.log(ks) - ks + 0.5 * torch.log(2 * math.pi * ks)
        loss = loss + torch.where(big, stirling, torch.zeros_like(k))
    return loss


def gaussian_nll(
    input: Tensor, target: Tensor, var: Tensor | float, full: bool = False, eps: float = 1e-6
) -> Tensor:
    r""":math:`l_n = \tfrac12(\log v_n + (x_n - y_n)^2 / v_n)` [:math:`+ \tfrac12\log 2\pi`]
    with :math:`v_n = \max(\sigma^2_n, \epsilon)`.

    ``var``: a float, input's shape, input's shape without its last dimension, or with the
    last dimension 1 (one variance per sample, broadcast over the last dimension). The clamp
    passes the gradient through unchanged (straight-through), as documented: the gradient
    w.r.t. a clamped variance is the gradient w.r.t. :math:`v` at :math:`v = \epsilon`.
    """
    x, y = _d(input), _d(target)
    if not isinstance(var, Tensor):
        var = torch.full_like(x, float(var))
    v = _d(var)
    if v.shape != x.shape and v.shape == x.shape[:-1]:
        v = v.unsqueeze(-1)
    v = v + (v.clamp(min=eps) - v).detach()  # value max(v, eps), gradient of the identity
    loss = 0.5 * (torch.log(v) + (x - y) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return loss


# ------------------------------------------------------------------------- classification


def _classes_last(x: Tensor) -> Tensor:
    """(C,) -> (1, C); (N, C, d1, ...) -> (N * d1 * ..., C)."""
    if x.dim() == 1:
        return x.unsqueeze(0)
    return x.movedim(1, -1).reshape(-1, x.shape[1])


def _item_shape(x: Tensor) -> tuple[int, ...]:
    """Shape of the per-item loss: () for (C,), (N, d1, ...) for (N, C, d1, ...)."""
    return () if x.dim() == 1 else (x.shape[0], *x.shape[2:])


def _as_rows(target: Tensor) -> Tensor:
    return target.reshape(-1)


def nll(
    input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100
) -> tuple[Tensor, Tensor]:
    r""":math:`l_n = -w_{y_n} x_{n, y_n}` (0 where :math:`y_n` = ``ignore_index``).

    Returns ``(loss, item_weight)``: ``item_weight`` is :math:`w_{y_n}` (0 if ignored), the
    mean's denominator.
    """
    x = _classes_last(_d(input))
    t = _as_rows(target)
    k = x.shape[1]
    w = torch.ones(k, dtype=F64) if weight is None else _d(weight).detach()
    losses, weights = [], []
    for i in range(x.shape[0]):
        c = int(t[i])
        if c == ignore_index:
            losses.append(torch.zeros((), dtype=F64))
            weights.append(torch.zeros((), dtype=F64))
        else:
            losses.append(-w[c] * x[i, c])
            weights.append(w[c])
    shape = _item_shape(input)
    return torch.stack(losses).reshape(shape), torch.stack(weights).reshape(shape)


def smoothed_targets(
    target: Tensor,
    num_classes: int,
    label_smoothing: float = 0.0,
    smoothing: str = "uniform",
    ignore_index: int = -100,
) -> Tensor:
    r"""Target distributions q of shape ``(*target.shape, K)`` from class indices.

    ``uniform``: :math:`q = (1-\epsilon)\,\mathrm{onehot}(y) + \epsilon/K`.
    ``others``: :math:`1-\epsilon` on the target class, :math:`\epsilon/(K-1)` on each other.
    Rows whose target is ``ignore_index`` are all zero.
    """
    k, eps = num_classes, label_smoothing
    t = _as_rows(target)
    q = torch.zeros(t.numel(), k, dtype=F64)
    for i in range(t.numel()):
        c = int(t[i])
        if c == ignore_index:
            continue
        for j in range(k):
            if smoothing == "uniform":
                q[i, j] = (1 - eps) * (j == c) + eps / k
            elif smoothing == "others":
                q[i, j] = 1 - eps if j == c else eps / (k - 1)
            else:
                raise ValueError(smoothing)
    return q.reshape(*target.shape, k)


def smoothed_probabilities(
    target: Tensor, label_smoothing: float = 0.0, smoothing: str = "uniform", class_dim: int = 1
) -> Tensor:
    r"""Smoothed probability targets: ``uniform`` :math:`(1-\epsilon) t + \epsilon/K`;
    ``others`` :math:`(1-\epsilon) t + \frac{\epsilon}{K-1}(1 - t)`."""
    t, eps = _d(target), label_smoothing
    k = t.shape[class_dim]
    if smoothing == "uniform":
        return (1 - eps) * t + eps / k
    if smoothing == "others":
        return (1 - eps) * t + eps / (k - 1) * (1 - t)
    raise ValueError(smoothing)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing: str = "uniform",
) -> tuple[Tensor, Tensor | None]:
    r""":math:`l_n = -\sum_c w_c\, q_{n,c} \log \mathrm{softmax}(x_n)_c`, with
    :math:`0 \log 0 = 0` (a class of target mass 0 adds 0, even at a -inf logit).

    :math:`q` is the (smoothed) one-hot target for class indices, the (smoothed) given
    probabilities otherwise. Returns ``(loss, item_weight)`` for the mean:

    * class indices: :math:`w_{y_n}` (0 for ignored items; 1 without ``weight``);
    * probabilities with ``weight``: :math:`\sum_c w_c t_{n,c}` of the *given* (unsmoothed)
      target, so one-hot probabilities give the class-index loss (mldl's documented rule);
    * probabilities without ``weight``: ``None`` (divide by the number of items).
    """
    x = _classes_last(_d(input))
    k = x.shape[1]
    logp = _log_softmax(x, 1)
    w = torch.ones(k, dtype=F64) if weight is None else _d(weight).detach()
    shape = _item_shape(input)
    if target.is_floating_point():
        t = _classes_last(_d(target))
        q = t
        if label_smoothing:
            q = _classes_last(
                smoothed_probabilities(
                    target, label_smoothing, smoothing, 0 if input.dim() == 1 else 1
                )
            )
        loss = -_times(w * q, logp).sum(1)
        item_weight = None if weight is None else (w * t).sum(1).reshape(shape)
        return loss.reshape(shape), item_weight
    q = smoothed_targets(target, k, label_smoothing, smoothing, ignore_index).reshape(-1, k)
    loss = -_times(w * q, logp).sum(1)
    t = _as_rows(target)
    kept = t != ignore_index
    item_weight = torch.where(kept, w[t.masked_fill(~kept, 0)], torch.zeros((), dtype=F64))
    return loss.reshape(shape), item_weight.reshape(shape)


def bce(input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    r""":math:`l_n = -w_n[y_n \max(\log x_n, -100) + (1 - y_n)\max(\log(1 - x_n), -100)]`."""
    x, y = _d(input), _d(target)
    loss = -(y * torch.log(x).clamp(min=-100) + (1 - y) * torch.log(1 - x).clamp(min=-100))
    return loss if weight is None else _d(weight) * loss


def bce_with_logits(
    input: Tensor, target: Tensor, weight: Tensor | None = None, pos_weight: Tensor | None = None
) -> Tensor:
    r""":math:`l_n = w_n[p\, y_n \log(1 + e^{-x_n}) + (1 - y_n)\log(1 + e^{x_n})]`.

    With :math:`0 \cdot \infty = 0` this is exact at :math:`x = \pm\infty`: 0 where the label
    agrees with the sign of the logit (or its term has zero weight), :math:`+\infty` else.
    """
    x, y = _d(input), _d(target)
    p = torch.ones_like(x) if pos_weight is None else _d(pos_weight).expand_as(x)
    loss = _times(p * y, _softplus(-x)) + _times(1 - y, _softplus(x))
    return loss if weight is None else _times(_d(weight).expand_as(x), loss)


def focal(
    input: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float | Tensor | None = None,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing: str = "uniform",
) -> tuple[Tensor, Tensor | None]:
    r"""Softmax focal loss :math:`l_n = -\sum_c \alpha_c w_c q_{n,c} (1 - p_{n,c})^\gamma
    \log p_{n,c}`, :math:`p_n = \mathrm{softmax}(x_n)`.

    ``q`` as in :func:`cross_entropy`. ``alpha`` (scalar or per class) scales the loss but
    stays out of the mean's denominator. Returns ``(loss, item_weight)``: for class indices
    :math:`w_{y_n}` (1 without ``weight``, 0 for ignored items); for probabilities
    :math:`\sum_c w_c t_{n,c}` with ``weight``, ``None`` without.
    """
    x = _classes_last(_d(input))
    k = x.shape[1]
    logp = _log_softmax(x, 1)
    p = torch.exp(logp)
    w = torch.ones(k, dtype=F64) if weight is None else _d(weight)
    if alpha is None:
        a = torch.ones(k, dtype=F64)
    elif isinstance(alpha, Tensor) and alpha.dim() > 0:
        a = _d(alpha)
    else:
        a = torch.full((k,), float(alpha), dtype=F64)
    shape = _item_shape(input)
    if target.is_floating_point():
        t = _classes_last(_d(target))
        q = t
        if label_smoothing:
            q = _classes_last(
                smoothed_probabilities(
                    target, label_smoothing, smoothing, 0 if input.dim() == 1 else 1
                )
            )
        item_weight = None if weight is None else (w * t).sum(1).reshape(shape)
    else:
        q = smoothed_targets(target, k, label_smoothing, smoothing, ignore_index).reshape(-1, k)
        t = _as_rows(target)
        kept = t != ignore_index
        item_weight = torch.where(kept, w[t.masked_fill(~kept, 0)], torch.zeros((), dtype=F64))
        item_weight = item_weight.reshape(shape)
    loss = -_times(a * w * q, (1 - p) ** gamma * logp).sum(1)
    return loss.reshape(shape), item_weight


def sigmoid_focal(
    input: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float | Tensor | None = None,
    weight: Tensor | None = None,
    ignore_index: float = -100,
) -> tuple[Tensor, Tensor]:
    r"""Sigmoid focal loss :math:`l_n = \alpha_t (1 - p_t)^\gamma \mathrm{BCE}(x_n, y_n)`.

    :math:`p = \sigma(x)`, :math:`p_t = p y + (1 - p)(1 - y)`,
    :math:`\alpha_t = \alpha y + (1 - \alpha)(1 - y)` (1 without ``alpha``), times the element
    ``weight``. Elements whose target is ``ignore_index`` give 0 and item weight 0; the others
    item weight 1. Returns ``(loss, item_weight)``.
    """
    x, y = _d(input), _d(target)
    kept = y != ignore_index
    y = torch.where(kept, y, torch.zeros_like(y))
    p = _sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    loss = (1 - p_t) ** gamma * bce_with_logits(x, y)
    if alpha is not None:
        a = _d(alpha) if isinstance(alpha, Tensor) else float(alpha)
        loss = loss * (a * y + (1 - a) * (1 - y))
    if weight is not None:
        loss = loss * _d(weight)
    loss = torch.where(kept, loss, torch.zeros_like(loss))
    return loss, kept.to(F64)


# -------------------------------------------------------------------------------- divergence


def kl_div(input: Tensor, target: Tensor, log_target: bool = False) -> Tensor:
    r""":math:`l_n = y_n(\log y_n - x_n)` with :math:`0 \log 0 = 0`; with ``log_target``
    (:math:`y` given as a log-probability) :math:`l_n = e^{y_n}(y_n - x_n)`."""
    x, y = _d(input), _d(target)
    if log_target:
        return torch.exp(y) * (y - x)
    pos = y > 0
    y_safe = torch.where(pos, y, torch.ones_like(y))
    return torch.where(pos, y * (torch.log(y_safe) - x), torch.zeros_like(y))


# ------------------------------------------------------------------------------------ margin


def hinge_embedding(input: Tensor, target: Tensor, margin: float = 1.0) -> Tensor:
    r""":math:`l_n = x_n` for :math:`y_n = 1`, :math:`\max(0, \Delta - x_n)` for
    :math:`y_n = -1`."""
    x = _d(input)
    return torch.where(target == 1, x, (margin - x).clamp(min=0))


def cosine_embedding(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0) -> Tensor:
    r""":math:`l_n = 1 - \cos(a_n, b_n)` for :math:`y_n = 1`,
    :math:`\max(0, \cos(a_n, b_n) - \Delta)` for :math:`y_n = -1`, with
    :math:`\cos(a, b) = a \cdot b / (\lVert a \rVert \lVert b \rVert)`.

    PyTorch adds 1e-12 to each squared norm; for the non-degenerate vectors of the tests
    that moves the cosine by far less than the comparison tolerance, so the reference keeps
    the plain formula."""
    a, b = _d(input1), _d(input2)
    cos = (a * b).sum(-1) / (torch.sqrt((a * a).sum(-1)) * torch.sqrt((b * b).sum(-1)))
    return torch.where(target == 1, 1 - cos, (cos - margin).clamp(min=0))


def margin_ranking(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0) -> Tensor:
    r""":math:`l_n = \max(0, -y_n (x_{1,n} - x_{2,n}) + \Delta)`."""
    return (-_d(target) * (_d(input1) - _d(input2)) + margin).clamp(min=0)


def soft_margin(input: Tensor, target: Tensor) -> Tensor:
    r""":math:`l_n = \log(1 + e^{-y_n x_n})`, as :math:`\log(e^0 + e^{-y_n x_n})` (stable)."""
    return _softplus(-_d(target) * _d(input))


def multilabel_margin(input: Tensor, target: Tensor) -> Tensor:
    r""":math:`l_n = \sum_{j \in Y_n} \sum_{i \notin Y_n} \max(0, 1 - (x_{n,j} - x_{n,i})) / C`.

    :math:`Y_n` holds the row's target entries up to the first negative one. Returns one
    loss per row (a scalar for 1-D input)."""
    x = _d(input)
    rows = x.unsqueeze(0) if x.dim() == 1 else x
    trows = target.unsqueeze(0) if target.dim() == 1 else target
    c = rows.shape[1]
    out = []
    for r in range(rows.shape[0]):
        labels = []
        for v in trows[r].tolist():
            if v < 0:
                break
            labels.append(int(v))
        total = torch.zeros((), dtype=F64)
        for j in labels:
            for i in range(c):
                if i not in labels:
                    total = total + (1 - (rows[r, j] - rows[r, i])).clamp(min=0)
        out.append(total / c)
    loss = torch.stack(out)
    return loss[0] if x.dim() == 1 else loss


def top2_margin(
    input: Tensor,
    target: Tensor,
    margin: float = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    p: int = 1,
) -> tuple[Tensor, Tensor]:
    r""":math:`l_n = w_{y_n} \max(0, \Delta - (x_{n,y_n} - \max_{c \ne y_n} x_{n,c}))^p`.

    Returns ``(loss, item_weight)``, ``item_weight`` :math:`= w_{y_n}` (0 when ignored)."""
    x = _d(input)
    rows = x.unsqueeze(0) if x.dim() == 1 else x
    t = target.reshape(-1)
    k = rows.shape[1]
    w = torch.ones(k, dtype=F64) if weight is None else _d(weight)
    losses, weights = [], []
    for n in range(rows.shape[0]):
        y = int(t[n])
        if y == ignore_index:
            losses.append(torch.zeros((), dtype=F64))
            weights.append(torch.zeros((), dtype=F64))
            continue
        best_other = torch.stack([rows[n, c] for c in range(k) if c != y]).max()
        hinge = (margin - (rows[n, y] - best_other)).clamp(min=0)
        losses.append(w[y] * hinge**p)
        weights.append(w[y])
    shape = target.shape
    return torch.stack(losses).reshape(shape), torch.stack(weights).reshape(shape)


# ------------------------------------------------------------------------------------ metric


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6) -> Tensor:
    r""":math:`d(x_1, x_2) = \lVert x_1 - x_2 + \epsilon \rVert_p` over the last dimension
    (PyTorch's ``pairwise_distance``)."""
    return _pnorm(_d(x1) - _d(x2) + eps, p)


def triplet_margin(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    distance=None,
) -> Tensor:
    r""":math:`l_n = \max(0, d(a_n, p_n) - d(a_n, n_n) + \Delta)`; ``swap`` replaces
    :math:`d(a_n, n_n)` by :math:`\min(d(a_n, n_n), d(p_n, n_n))`.

    ``distance`` (a function of two float64 tensors) defaults to :func:`pairwise_distance`
    with ``p`` and ``eps``."""
    a, pos, neg = _d(anchor), _d(positive), _d(negative)
    if distance is None:

        def distance(u, v):
            return pairwise_distance(u, v, p, eps)

    d_pos = distance(a, pos)
    d_neg = distance(a, neg)
    if swap:
        d_neg = torch.minimum(d_neg, distance(pos, neg))
    return (d_pos - d_neg + margin).clamp(min=0)


def distance_match(
    x1: Tensor,
    x2: Tensor,
    target: Tensor,
    scale: float | Tensor = 1.0,
    offset: float | Tensor = 0.0,
    p: float = 2.0,
    eps: float = 1e-6,
) -> Tensor:
    r""":math:`l_n = \mathrm{BCE}(\sigma(z_n), y_n)` with
    :math:`z_n = b - s \lVert x_{1,n} - x_{2,n} + \epsilon \rVert_p`:
    :math:`y \log(1 + e^{-z}) + (1 - y)\log(1 + e^{z})`."""
    s = _d(scale) if isinstance(scale, Tensor) else scale
    b = _d(offset) if isinstance(offset, Tensor) else offset
    z = b - s * pairwise_distance(x1, x2, p, eps)
    y = _d(target)
    return y * _softplus(-z) + (1 - y) * _softplus(z)


# ---------------------------------------------------------------------------------- sequence


def ctc_sample(log_probs: Tensor, target: list[int], blank: int = 0) -> Tensor:
    r"""CTC loss of one sequence by brute force: :math:`-\log\sum_\pi \prod_t p_t(\pi_t)` over
    every alignment :math:`\pi \in \{0..C-1\}^T` that collapses to ``target`` (merge repeats,
    then drop blanks). ``log_probs``: ``(T, C)``. :math:`+\infty` if no alignment fits.
    Meant for tiny T and C (:math:`C^T` alignments)."""
    lp = _d(log_probs)
    t_len, c = lp.shape
    paths = []
    for path in itertools.product(range(c), repeat=t_len):
        merged = [s for i, s in enumerate(path) if i == 0 or s != path[i - 1]]
        if [s for s in merged if s != blank] == list(target):
            paths.append(path)
    if not paths:
        return torch.tensor(math.inf, dtype=F64)
    # log Π_t p_t(π_t) = Σ_t log p_t(π_t), one row per alignment
    log_path = lp[torch.arange(t_len), torch.tensor(paths)].sum(1)
    return -torch.logsumexp(log_path, 0)


def ctc(
    log_probs: Tensor,
    targets: list[list[int]],
    input_lengths: list[int],
    blank: int = 0,
    zero_infinity: bool = False,
) -> Tensor:
    r"""Per-sequence CTC losses by brute force; ``log_probs`` ``(T, N, C)``, sequence n uses
    its first ``input_lengths[n]`` frames. ``zero_infinity`` turns infinite losses into 0."""
    out = []
    for n, target in enumerate(targets):
        loss = ctc_sample(log_probs[: input_lengths[n], n], target, blank)
        if zero_infinity and math.isinf(loss.item()):
            loss = torch.zeros((), dtype=F64)
        out.append(loss)
    return torch.stack(out)


def ctc_reduce(loss: Tensor, target_lengths: list[int], reduction: str) -> Tensor:
    r"""CTC's reduction: ``'mean'`` divides each loss by its target length clamped to at
    least 1, then averages over the batch; ``'sum'`` and ``'none'`` as usual."""
    if reduction == "mean":
        lengths = torch.tensor(target_lengths, dtype=F64).clamp(min=1)
        return (loss / lengths).mean()
    return reduce(loss, reduction)


# =============================================================================================
# ----------------------------------------------------------------- normalization (mldl.norm)
# =============================================================================================
#
# Float64 references for the normalization layers, as the notes and the papers write them,
# written independently of mldl.norm: plain sums and means over explicit dimensions, no
# torch.nn.functional norm and nothing from mldl. Channels-first layout throughout: inputs
# are (N, C, *) and per-channel tensors have shape (C,). Every variance used to normalise is
# the biased one, (1/m) Σ (x - μ)²; the running averages store the unbiased one,
# σ² m/(m - 1) (PyTorch's convention). The outputs keep the autograd graph of the float64
# inputs, so autograd through them gives reference gradients.


def _channel_view(t: Tensor, x: Tensor) -> Tensor:
    """A per-channel (C,) tensor as (1, C, 1, ..., 1), broadcasting against x (N, C, *)."""
    return _d(t).reshape(1, -1, *([1] * (x.dim() - 2)))


def _moments(x: Tensor, dims: list[int]) -> tuple[Tensor, Tensor, int]:
    r"""Mean :math:`\frac1m\sum x`, biased variance :math:`\frac1m\sum (x - \mu)^2` over
    ``dims`` (kept as size-1 dimensions), and the count m. No dimensions: each value is its
    own group (mean x, variance 0; ``sum(dim=[])`` would reduce over everything)."""
    if not dims:
        return x, torch.zeros_like(x), 1
    m = 1
    for d in dims:
        m *= x.shape[d]
    mean = x.sum(dim=dims, keepdim=True) / m
    var = ((x - mean) ** 2).sum(dim=dims, keepdim=True) / m
    return mean, var, m


def _affine(xhat: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    r""":math:`\gamma_j \hat x + \beta_j` per channel (dim 1); None: 1 and 0."""
    y = xhat
    if weight is not None:
        y = y * _channel_view(weight, xhat)
    if bias is not None:
        y = y + _channel_view(bias, xhat)
    return y


def batch_dims(x: Tensor) -> list[int]:
    """The dimensions batch statistics run over: the batch and the spatial ones."""
    return [0, *range(2, x.dim())]


def batch_moments(x: Tensor) -> tuple[Tensor, Tensor, int]:
    r"""Per-channel batch statistics, the notes' :math:`\mu_j = \frac1m\sum_i x_{ij}`,
    :math:`\sigma_j^2 = \frac1m\sum_i (x_{ij} - \mu_j)^2`: mean (C,), biased var (C,), m."""
    mean, var, m = _moments(_d(x), batch_dims(x))
    return mean.flatten(), var.flatten(), m


def unbiased(var: Tensor, m: int) -> Tensor:
    r"""The unbiased variance :math:`\sigma^2 m / (m - 1)` that running averages store."""
    return _d(var) * m / (m - 1)


def running_average(running: Tensor, value: Tensor, momentum: float) -> Tensor:
    r"""PyTorch's momentum rule: :math:`(1 - \text{momentum})\,\hat x + \text{momentum}\,x_t`
    (momentum = 1/t for the cumulative average)."""
    return (1 - momentum) * _d(running) + momentum * _d(value)


def normalize_with(
    x: Tensor,
    mean: Tensor,
    var: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    r""":math:`\gamma (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta` with given per-channel
    :math:`\mu, \sigma^2` (C,): batch norm in eval, with the running statistics."""
    x = _d(x)
    xhat = (x - _channel_view(mean, x)) / torch.sqrt(_channel_view(var, x) + eps)
    return _affine(xhat, weight, bias)


def batch_norm(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    r"""Batch norm in training, the notes' formula: :math:`\hat x_{ij} = (x_{ij} - \mu_j) /
    \sqrt{\sigma_j^2 + \epsilon}`, :math:`y = \gamma_j \hat x_{ij} + \beta_j`, the statistics
    over the batch and spatial dimensions (and differentiated through)."""
    x = _d(x)
    mean, var, _ = _moments(x, batch_dims(x))
    return _affine((x - mean) / torch.sqrt(var + eps), weight, bias)


def layer_norm(
    x: Tensor,
    ndim: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    r"""Layer norm over the trailing ``ndim`` dimensions of each sample: :math:`\mu_i,
    \sigma_i^2` over the sample's features, elementwise :math:`\gamma, \beta` of the trailing
    shape."""
    x = _d(x)
    mean, var, _ = _moments(x, list(range(x.dim() - ndim, x.dim())))
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * _d(weight)
    if bias is not None:
        y = y + _d(bias)
    return y


def instance_norm(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    r"""Instance norm: per sample and channel, over the spatial dimensions of (N, C, *)."""
    x = _d(x)
    mean, var, _ = _moments(x, list(range(2, x.dim())))
    return _affine((x - mean) / torch.sqrt(var + eps), weight, bias)


def group_norm(
    x: Tensor,
    groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    r"""Group norm: the C channels of each sample split into ``groups`` consecutive groups,
    each normalised over its channels and spatial positions; per-channel affine."""
    x = _d(x)
    n, c = x.shape[:2]
    g = x.reshape(n, groups, c // groups, *x.shape[2:])
    mean, var, _ = _moments(g, list(range(2, g.dim())))
    xhat = ((g - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    return _affine(xhat, weight, bias)


def rms_norm(x: Tensor, ndim: int, weight: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    r"""RMSNorm over the trailing ``ndim`` dimensions: :math:`x/\sqrt{\epsilon +
    \frac1m\sum x^2}\cdot\gamma` (no centring, no bias)."""
    x = _d(x)
    dims = list(range(x.dim() - ndim, x.dim()))
    m = 1
    for d in dims:
        m *= x.shape[d]
    y = x / torch.sqrt((x * x).sum(dim=dims, keepdim=True) / m + eps)
    return y if weight is None else y * _d(weight)


def scale_norm(x: Tensor, g: Tensor | float, eps: float = 1e-5) -> Tensor:
    r"""ScaleNorm (Nguyen & Salazar): :math:`g\,x/\max(\lVert x \rVert_2, \epsilon)` over the
    last dimension."""
    x = _d(x)
    norm = torch.sqrt((x * x).sum(-1, keepdim=True))
    g = _d(g) if isinstance(g, Tensor) else g
    return g * x / torch.clamp(norm, min=eps)


def mean_only_batch_norm(
    x: Tensor, bias: Tensor | None = None, mean: Tensor | None = None
) -> Tensor:
    r"""Mean-only batch norm (Salimans & Kingma): :math:`x - \mu + \beta`, with the batch's
    per-channel mean (training) or a given one (eval: the running mean)."""
    x = _d(x)
    mu = _moments(x, batch_dims(x))[0] if mean is None else _channel_view(mean, x)
    y = x - mu
    return y if bias is None else y + _channel_view(bias, x)


def renorm_r_d(
    x: Tensor, mean: Tensor, var: Tensor, r_max: float, d_max: float, eps: float = 1e-5
) -> tuple[Tensor, Tensor]:
    r"""Batch Renorm's corrections, per channel, as constants (no gradient):
    :math:`r = \mathrm{clip}_{[1/r_{max}, r_{max}]}(\sigma_B/\sigma)`,
    :math:`d = \mathrm{clip}_{[-d_{max}, d_{max}]}((\mu_B - \mu)/\sigma)` with
    :math:`\sigma_B = \sqrt{\sigma_B^2 + \epsilon}` of the batch and
    :math:`\sigma = \sqrt{\text{var} + \epsilon}` of the moving averages ``mean``, ``var``."""
    mu_b, var_b, _ = batch_moments(_d(x).detach())
    sigma_b = torch.sqrt(var_b + eps)
    sigma = torch.sqrt(_d(var) + eps)
    r = torch.clamp(sigma_b / sigma, min=1.0 / r_max, max=r_max)
    d = torch.clamp((mu_b - _d(mean)) / sigma, min=-d_max, max=d_max)
    return r, d


def batch_renorm(
    x: Tensor,
    mean: Tensor,
    var: Tensor,
    r_max: float,
    d_max: float,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    r"""Batch Renorm in training (Ioffe 2017): :math:`y = \gamma\left(\frac{x -
    \mu_B}{\sigma_B} r + d\right) + \beta`, r and d from :func:`renorm_r_d` (constants in the
    backward, the paper's stop-gradient), :math:`\mu_B, \sigma_B` differentiated through."""
    x = _d(x)
    mu_b, var_b, _ = _moments(x, batch_dims(x))
    r, d = renorm_r_d(x, mean, var, r_max, d_max, eps)
    xhat = (x - mu_b) / torch.sqrt(var_b + eps)
    return _affine(xhat * _channel_view(r, x) + _channel_view(d, x), weight, bias)


def batch_instance_norm(
    x: Tensor,
    rho: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
    batch_mean: Tensor | None = None,
    batch_var: Tensor | None = None,
) -> Tensor:
    r"""Batch-Instance Norm (Nam & Kim): :math:`\gamma(\rho\,\hat x^{(B)} + (1 - \rho)\,\hat
    x^{(I)}) + \beta`, :math:`\rho` per channel clipped to [0, 1]; the batch part with the
    batch's statistics, or ``batch_mean``/``batch_var`` (eval: the running averages)."""
    x = _d(x)
    if batch_mean is None:
        mu_b, var_b, _ = _moments(x, batch_dims(x))
    else:
        mu_b, var_b = _channel_view(batch_mean, x), _channel_view(batch_var, x)
    mu_i, var_i, _ = _moments(x, list(range(2, x.dim())))
    xb = (x - mu_b) / torch.sqrt(var_b + eps)
    xi = (x - mu_i) / torch.sqrt(var_i + eps)
    p = _channel_view(torch.clamp(_d(rho), 0.0, 1.0), x)
    return _affine(p * xb + (1 - p) * xi, weight, bias)


def _softmax(z: Tensor) -> Tensor:
    r""":math:`e^{z_k - \max z}/\sum_j e^{z_j - \max z}` over a 1-D tensor."""
    e = torch.exp(z - z.max())
    return e / e.sum()


def switchable_norm(
    x: Tensor,
    mean_logits: Tensor,
    var_logits: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
    bn_mean: Tensor | None = None,
    bn_var: Tensor | None = None,
) -> Tensor:
    r"""Switchable Norm (Luo et al.): :math:`\hat x = (x - \sum_k w_k \mu_k)/\sqrt{\sum_k w'_k
    \sigma_k^2 + \epsilon}`, k over IN (per sample and channel, over space), LN (per sample,
    over channels and space) and BN (per channel, over batch and space), each moment computed
    directly over its own scope with the biased variance; :math:`w, w'` the softmax of the
    logits (2 logits: IN and LN only). BN's moments are the batch's, or ``bn_mean``/
    ``bn_var`` (eval: the running averages)."""
    x = _d(x)
    spatial = list(range(2, x.dim()))
    scopes = [_moments(x, spatial)[:2], _moments(x, list(range(1, x.dim())))[:2]]
    if len(mean_logits) == 3:
        if bn_mean is None:
            scopes.append(_moments(x, batch_dims(x))[:2])
        else:
            scopes.append((_channel_view(bn_mean, x), _channel_view(bn_var, x)))
    wm, wv = _softmax(_d(mean_logits)), _softmax(_d(var_logits))
    mean = sum(wm[k] * scopes[k][0] for k in range(len(scopes)))
    var = sum(wv[k] * scopes[k][1] for k in range(len(scopes)))
    return _affine((x - mean) / torch.sqrt(var + eps), weight, bias)


def weight_norm(v: Tensor, g: Tensor, dim: int = 0) -> Tensor:
    r"""Weight normalization (Salimans & Kingma): :math:`w = g\,v/\lVert v \rVert`, the norm
    over every dimension of v but ``dim`` (each output unit's weight vector), g of v's shape
    with size 1 in every other dimension."""
    v = _d(v)
    others = [k for k in range(v.dim()) if k != dim]
    norm = torch.sqrt((v * v).sum(dim=others, keepdim=True))
    return _d(g) * v / norm
