r"""Classification losses: NLL, cross-entropy, BCE, BCE with logits, focal (softmax and sigmoid).

The notes' table is the type system here:

==================  ============  ============================================
value               range         taken by
==================  ============  ============================================
logits              (-inf, inf)   :func:`cross_entropy`, :func:`bce_with_logits`,
                                  :func:`focal`, :func:`sigmoid_focal`
probabilities       [0, 1]        :func:`bce`
log-probabilities   (-inf, 0]     :func:`nll`
==================  ============  ============================================

NLL, cross-entropy and BCE call PyTorch's kernels and match them exactly, except where noted:

* ``cross_entropy`` with probability targets, a class ``weight`` and ``reduction='mean'``
  divides by :math:`\sum_i \sum_c w_c t_{ic}` (which is :math:`\sum_i w_{y_i}` for one-hot
  targets), so one-hot probability targets give the same loss as class indices. PyTorch
  divides by N here (pytorch #107680, #61309). It also takes :math:`0 \log 0 = 0` where a
  masked logit (-inf) meets a zero target; PyTorch gives NaN.
* ``bce_with_logits`` is finite and exact at infinite logits: 0 where the label agrees with
  the logit's sign, +inf where it does not. PyTorch gives NaN there (#49844, #102894, #135359).
* ``cross_entropy`` takes ``smoothing='others'`` (ε/(K-1) to each other class) besides
  PyTorch's uniform rule; ``bce``/``bce_with_logits`` take ``label_smoothing`` (PyTorch has
  none, #91545).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks
from . import _reduction, fused
from .smoothing import effective_uniform_epsilon, smooth_binary_labels, smooth_labels

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "NLLLoss",
    "SigmoidFocalLoss",
    "bce",
    "bce_with_logits",
    "cross_entropy",
    "focal",
    "nll",
    "sigmoid_focal",
]


# ----------------------------------------------------------------- shared shape handling


def _class_dim(input: Tensor) -> int:
    """PyTorch's layout: (C,) or (N, C, d1, ...): classes on dim 0 for 1-D input, else 1."""
    return 0 if input.dim() == 1 else 1


def _target_kind(input: Tensor, target: Tensor, fn: str) -> str:
    """'probabilities' when target has input's shape (and is float), else 'indices'.

    Raises when the target's shape fits neither reading.
    """
    _checks.tensor(target, "target", fn)
    _checks.same_device({"input": input, "target": target}, fn)
    cdim = _class_dim(input)
    index_shape = input.shape[:cdim] + input.shape[cdim + 1 :]
    if target.shape == input.shape and target.is_floating_point():
        return "probabilities"
    if target.shape == index_shape and not target.is_floating_point():
        return "indices"
    raise ValueError(
        f"{fn}: target: expected class indices of shape {tuple(index_shape)} (integer) or "
        f"class probabilities of shape {tuple(input.shape)} (float), got a "
        f"{str(target.dtype).replace('torch.', '')} tensor of shape {tuple(target.shape)}"
    )


def _logits(input: Tensor, fn: str, name: str = "input") -> int:
    """Checks for softmax logits of shape (C,) or (N, C, *); returns the number of classes."""
    _checks.floating(input, name, fn)
    if input.dim() == 0:
        raise ValueError(f"{fn}: {name}: expected shape (C,) or (N, C, ...), got a scalar")
    _checks.values(input, _checks.LOGITS, name, fn)
    _checks.not_probabilities(input, name, fn, class_dim=_class_dim(input))
    return input.shape[_class_dim(input)]


def _probability_targets(target: Tensor, input: Tensor, ignore_index: int, fn: str) -> None:
    if ignore_index >= 0:
        raise ValueError(
            f"{fn}: ignore_index={ignore_index} applies to class-index targets only (PyTorch "
            "refuses it with probability targets too)"
        )
    _checks.distributions(target, _class_dim(input), "target", fn)


def _soft_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None, eps: float, reduction: str
) -> Tensor:
    r"""Cross-entropy against class probabilities, with :math:`0 \log 0 = 0`.

    PyTorch computes :math:`-\sum_c t_c \log p_c` as a product, so a masked logit
    (:math:`-\infty`) with target 0 gives NaN; here that term is 0, as in the math. The
    smoothed target is :math:`(1-\epsilon')t + \epsilon'/K`; ``'mean'`` divides by
    :math:`\sum_i \sum_c w_c t_{ic}` (the unsmoothed t), which is :math:`\sum_i w_{y_i}` for
    one-hot targets, so one-hot probabilities and class indices agree (PyTorch divides by N
    when weighted, #107680).
    """
    cdim = _class_dim(input)
    k = input.shape[cdim]
    shape = [1] * input.dim()
    shape[cdim] = k
    log_p = torch.log_softmax(input, cdim)
    q = target if eps == 0.0 else target * (1.0 - eps) + eps / k
    if weight is not None:
        q = q * weight.view(shape).to(q.dtype)
    # 0·log 0 = 0 where a masked logit (-inf) meets a zero target; elsewhere the product.
    log_p = torch.where(torch.isneginf(log_p) & (q == 0), 0.0, log_p)
    loss = -(log_p * q).sum(cdim)
    denom = None
    if weight is not None and reduction == "mean":
        denom = (target * weight.view(shape).to(target.dtype)).sum(cdim)
    return _reduction.reduce(loss, reduction, item_weight=denom)


def _smoothing_args(label_smoothing: float, smoothing: str, num_classes: int, fn: str) -> float:
    """Validate ``label_smoothing``/``smoothing``; return the equivalent uniform ε'."""
    eps = _checks.number(label_smoothing, "label_smoothing", fn, low=0.0, high=1.0)
    if smoothing == "opennmt":
        raise ValueError(
            f"{fn}: smoothing='opennmt' is a KL divergence with a padding class: use "
            "kl_div(log_softmax(input), smooth_labels(target, K, eps, 'opennmt', pad), "
            "reduction='sum') (see docs/losses.md)"
        )
    _checks.one_of(smoothing, ("uniform", "others"), "smoothing", fn)
    if smoothing == "others" and eps > 0 and num_classes < 2:
        raise ValueError(f"{fn}: smoothing='others' needs at least 2 classes, got {num_classes}")
    return effective_uniform_epsilon(eps, num_classes, smoothing)


# ------------------------------------------------------------------------------- NLL / CE


def nll(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Negative log-likelihood of class indices given log-probabilities.

    .. math::
        l_n = -w_{y_n} x_{n, y_n}, \qquad
        w_c = \text{weight}[c] \cdot 1\{c \ne \text{ignore\_index}\}

    ``'mean'`` divides by :math:`\sum_n w_{y_n}` over non-ignored items (NaN if there are
    none, as in PyTorch).

    Shape:
        input: :math:`(C)` or :math:`(N, C, d_1, ...)` log-probabilities; target: :math:`()` or
        :math:`(N, d_1, ...)` integers; output: scalar or target's shape for ``'none'``.

    >>> import torch
    >>> nll(torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]])), torch.tensor([0, 1]))
    tensor(1.4979)
    """
    fn = "nll"
    _reduction.check(reduction, fn)
    ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
    _checks.floating(input, "input", fn)
    if input.dim() == 0:
        raise ValueError(f"{fn}: input: expected shape (C,) or (N, C, ...), got a scalar")
    k = input.shape[_class_dim(input)]
    if _target_kind(input, target, fn) != "indices":
        raise ValueError(f"{fn}: target: expected integer class indices, got probabilities")
    target = _checks.class_indices(target, k, "target", fn, ignore_index=ignore_index)
    _checks.class_weight(weight, k, input, fn)
    _checks.values(input, _checks.LOG_PROBABILITY_INPUT, "input", fn)
    return F.nll_loss(input, target, weight, ignore_index=ignore_index, reduction=reduction)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    smoothing: str = "uniform",
) -> Tensor:
    r"""Cross-entropy between a target distribution and ``softmax(input)``.

    .. math::
        l_n = -\sum_c w_c\, q_{n,c} \log \frac{e^{x_{n,c}}}{\sum_j e^{x_{n,j}}}

    where :math:`q` is the one-hot target, the given probabilities, or their smoothed form:
    ``smoothing='uniform'`` (PyTorch's, the notes' ``(1-α)·y_hot + α/K``) or ``'others'``
    (ε/(K-1) to each non-target class, the notes' first snippet). Neither builds the (N, K)
    target: ``'others'`` is the uniform rule with ε' = εK/(K-1), run on PyTorch's kernel.

    ``'mean'``: for class indices :math:`\sum_n l_n / \sum_n w_{y_n}` over non-ignored items;
    for probabilities :math:`\sum_n l_n / \sum_n \sum_c w_c t_{n,c}` (N without weights).
    Probability targets use :math:`0 \log 0 = 0`: a class with target 0 adds nothing even
    when its logit is :math:`-\infty` (PyTorch gives NaN there).

    Shape:
        input: :math:`(C)` or :math:`(N, C, d_1, ...)` logits; target: :math:`()` /
        :math:`(N, d_1, ...)` integers, or input's shape as probabilities; output: scalar, or
        the per-item shape for ``'none'``.

    >>> import torch
    >>> x, y = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    >>> cross_entropy(x, y), cross_entropy(x, y, label_smoothing=0.1, smoothing="others")
    (tensor(0.2395), tensor(0.4395))
    """
    fn = "cross_entropy"
    _reduction.check(reduction, fn)
    ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
    k = _logits(input, fn)
    kind = _target_kind(input, target, fn)
    _checks.class_weight(weight, k, input, fn)
    eps = _smoothing_args(label_smoothing, smoothing, k, fn)
    if kind == "probabilities":
        _probability_targets(target, input, ignore_index, fn)
        return _soft_cross_entropy(input, target, weight, eps, reduction)
    target = _checks.class_indices(target, k, "target", fn, ignore_index=ignore_index)
    if fused.wins(input):
        opts = fused.options(label_smoothing, smoothing, k, ignore_index, weight, fn=fn)
        return fused.apply(input, target, opts, ignore_index, reduction)

    def native(eps: float) -> Tensor:
        return F.cross_entropy(
            input,
            target,
            weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=eps,
        )

    if eps <= 1.0:
        return native(eps)
    # 'others' with ε > (K-1)/K needs ε' > 1, which PyTorch refuses; the loss is affine in
    # ε', so it is extrapolated from the two ends.
    return (1.0 - eps) * native(0.0) + eps * native(1.0)


# ------------------------------------------------------------------------------------ BCE


def _binary_pair(input: Tensor, target: Tensor, weight: Tensor | None, fn: str) -> None:
    _checks.floating(input, "input", fn)
    _checks.floating(target, "target", fn)
    _checks.same_shape(input, target, ("input", "target"), fn)
    _checks.same_device({"input": input, "target": target, "weight": weight}, fn)
    if weight is not None:
        _checks.floating(weight, "weight", fn)
        _checks.broadcastable(input, weight, ("input", "weight"), fn)
        _checks.values(weight, _checks.NONNEGATIVE, "weight", fn)


def _smoothed_binary(target: Tensor, label_smoothing: float, smoothing: str, fn: str) -> Tensor:
    eps = _checks.number(label_smoothing, "label_smoothing", fn, low=0.0, high=1.0)
    _checks.one_of(smoothing, ("half", "uniform", "flip"), "smoothing", fn)
    return smooth_binary_labels(target, eps, smoothing)


def bce(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
    *,
    label_smoothing: float = 0.0,
    smoothing: str = "half",
) -> Tensor:
    r"""Binary cross-entropy on probabilities.

    .. math::
        l_n = -w_n\left[y_n \max(\log x_n, -100) + (1-y_n) \max(\log(1-x_n), -100)\right]

    The log is clamped at -100, as in PyTorch, so the loss stays finite at
    :math:`x \in \{0, 1\}` (and its gradient vanishes for saturated sigmoids: prefer
    :func:`bce_with_logits`). ``'mean'`` divides by the element count, ``weight`` only
    rescales. ``label_smoothing`` applies the ``smoothing`` convention (``'half'``,
    ``'uniform'``, ``'flip'``; see :mod:`mldl.losses.smoothing`) to the target first.

    Shape:
        input: :math:`(*)` probabilities; target: same shape, in [0, 1]; output: scalar or
        :math:`(*)`.

    >>> import torch
    >>> bce(torch.tensor([0.0, 0.5]), torch.tensor([1.0, 1.0]), reduction="none")
    tensor([100.0000,   0.6931])
    """
    fn = "bce"
    _reduction.check(reduction, fn)
    _binary_pair(input, target, weight, fn)
    _checks.values(input, _checks.PROBABILITY_INPUT, "input", fn)
    _checks.values(target, _checks.PROBABILITIES, "target", fn)
    target = _smoothed_binary(target, label_smoothing, smoothing, fn)
    if weight is not None:
        weight = weight.expand_as(input)
    return F.binary_cross_entropy(input, target, weight, reduction=reduction)


def _has_inf_on_cpu(x: Tensor) -> bool:
    """Whether a CPU tensor holds an infinity (or a NaN); True on other devices, where asking
    would be a host sync (callers then take their exact path unconditionally). One
    ``aminmax`` pass: ten times faster than ``isinf().any()`` on CPU."""
    if x.device.type != "cpu":
        return True
    if x.numel() == 0:
        return False
    lo, hi = torch.aminmax(x)
    return not (bool(hi < math.inf) and bool(lo > -math.inf))


def _all_on_cpu(mask: Tensor) -> bool:
    """Whether every element of a CPU bool tensor is True; False on other devices (no sync)."""
    return mask.device.type == "cpu" and bool(mask.all())


def _bce_with_logits_none(
    input: Tensor, target: Tensor, weight: Tensor | None, pos_weight: Tensor | None
) -> Tensor:
    """Unreduced BCE-with-logits, exact at infinite logits (PyTorch gives NaN there)."""
    loss = F.binary_cross_entropy_with_logits(
        input, target, weight, reduction="none", pos_weight=pos_weight
    )
    if not _has_inf_on_cpu(input):
        return loss
    # At x = ±inf the formula meets 0·inf. The limit is 0 when the label agrees with the
    # logit's sign (or its term has zero weight) and +inf otherwise; the gradient there is
    # that limit's gradient, 0, since the loss is flat or infinite.
    pos, neg = torch.isposinf(input), torch.isneginf(input)
    agrees = (pos & (target == 1)) | (neg & (target == 0))
    if pos_weight is not None:
        agrees |= neg & (pos_weight.expand_as(target) == 0) & (target == 1)
    if weight is not None:
        agrees |= weight.expand_as(target) == 0
    at_inf = torch.where(agrees, 0.0, math.inf).to(loss.dtype)
    return torch.where(pos | neg, at_inf, loss)


def bce_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
    *,
    label_smoothing: float = 0.0,
    smoothing: str = "half",
) -> Tensor:
    r"""Binary cross-entropy on logits: sigmoid and BCE in one stable step.

    .. math::
        l_n = -w_n\left[p_n y_n \log\sigma(x_n) + (1-y_n)\log(1-\sigma(x_n))\right]
            = w_n\left[p_n y_n\,\mathrm{softplus}(-x_n) + (1-y_n)\,\mathrm{softplus}(x_n)\right]

    with ``pos_weight`` :math:`p` (broadcast over the last dimension, one per class). Exact
    at infinite logits (0 where the label agrees, +inf where not), where PyTorch gives NaN.
    ``label_smoothing`` applies the ``smoothing`` convention (``'half'``, ``'uniform'``,
    ``'flip'``) to the target first.

    Shape:
        input: :math:`(*)` logits; target: same shape, in [0, 1]; output: scalar or :math:`(*)`.

    >>> import torch
    >>> bce_with_logits(torch.tensor([float("inf"), -30.0]), torch.tensor([1.0, 1.0]),
    ...                 reduction="none")
    tensor([ 0., 30.])
    """
    fn = "bce_with_logits"
    _reduction.check(reduction, fn)
    _binary_pair(input, target, weight, fn)
    if pos_weight is not None:
        _checks.floating(pos_weight, "pos_weight", fn)
        _checks.broadcastable(input, pos_weight, ("input", "pos_weight"), fn)
        _checks.values(pos_weight, _checks.NONNEGATIVE, "pos_weight", fn)
    _checks.values(input, _checks.BINARY_LOGITS, "input", fn)
    _checks.not_probabilities(input, "input", fn, class_dim=None)
    _checks.values(target, _checks.PROBABILITIES, "target", fn)
    target = _smoothed_binary(target, label_smoothing, smoothing, fn)
    # On CPU the scan for infinities costs one read; when there are none, PyTorch's fused
    # kernel (with its own reduction) is the fastest path.
    if not _has_inf_on_cpu(input):
        return F.binary_cross_entropy_with_logits(
            input, target, weight, reduction=reduction, pos_weight=pos_weight
        )
    return _reduction.reduce(_bce_with_logits_none(input, target, weight, pos_weight), reduction)


# ---------------------------------------------------------------------------------- focal


def _at_least_float32(x: Tensor) -> Tensor:
    """Half-precision inputs are computed in float32; float32 and float64 stay as they are."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _log1mexp(a: Tensor) -> Tensor:
    r""":math:`\log(1 - e^{a})` for :math:`a \le 0`, accurate at both ends (Mächler 2012)."""
    return torch.where(a > -math.log(2.0), torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


def _modulation(log_p: Tensor, gamma: float) -> Tensor:
    r""":math:`(1-p)^\gamma` computed as :math:`\exp(\gamma \log(1-p))`: finite for any
    :math:`\gamma \ge 0`, exactly 1 for :math:`\gamma = 0`, exactly 0 at :math:`p = 1`."""
    if gamma == 0.0:
        return torch.ones_like(log_p)
    return torch.exp(gamma * _log1mexp(log_p))


def _p_log_p_over_1mp(log_p: Tensor) -> Tensor:
    r""":math:`p \log p / (1-p)`, with its limits: -1 at :math:`p=1`, 0 at :math:`p=0`."""
    denom = -torch.expm1(log_p)
    ratio = torch.exp(log_p) * log_p / torch.where(denom == 0, 1.0, denom)
    ratio = torch.where(denom == 0, -1.0, ratio)
    return torch.where(torch.isneginf(log_p), 0.0, ratio)


class _SoftmaxFocalIndex(torch.autograd.Function):
    r"""Softmax focal loss for class indices, per row: :math:`-c\,(1-p_y)^\gamma \log p_y`.

    The backward is closed-form, :math:`\partial l/\partial z = h_y(\delta_y - p)` with
    :math:`h_y = c\,(1-p_y)^\gamma(\gamma\, p_y \log p_y/(1-p_y) - 1)`, finite where autograd
    of the formula gives NaN (at :math:`p_y = 1`, and for :math:`\gamma < 1`).

    One (N, K) tensor in all: the forward's softmax p, which the first backward turns into
    the gradient in place. :math:`\log p_y` comes from :math:`\mathrm{lse} = \max_j x_j -
    \log \max_j p_j` (softmax keeps the arg-max, and :math:`\max_j p_j \ge 1/K`, so this is
    as accurate as ``logsumexp`` and much faster on CPU than ``logsumexp`` or
    ``log_softmax``). A later backward through the same graph (``retain_graph``,
    ``gradcheck``) recomputes p from the saved logits.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, coef: Tensor, gamma: float) -> Tensor:
        x = _at_least_float32(logits)
        p = torch.softmax(x, dim=-1)
        lse = x.amax(dim=-1) - torch.log(p.amax(dim=-1))
        log_py = x.gather(-1, target.unsqueeze(-1)).squeeze(-1) - lse
        coef = coef.to(log_py.dtype)
        loss = -coef * _modulation(log_py, gamma) * log_py
        ctx.save_for_backward(logits, log_py, target, coef)
        ctx.gamma, ctx.p = gamma, p if ctx.needs_input_grad[0] else None
        return torch.where(coef == 0, 0.0, loss)

    @staticmethod
    def backward(ctx, grad: Tensor):
        logits, log_py, target, coef = ctx.saved_tensors
        h = coef * _modulation(log_py, ctx.gamma) * (ctx.gamma * _p_log_p_over_1mp(log_py) - 1)
        h = torch.where(coef == 0, 0.0, h) * grad
        p, ctx.p = ctx.p, None  # the first backward takes the forward's p and uses it up
        if p is None:
            p = torch.softmax(_at_least_float32(logits), dim=-1)
        grad_logits = p.mul_(-h.unsqueeze(-1))
        grad_logits.scatter_add_(-1, target.unsqueeze(-1), h.unsqueeze(-1))
        return grad_logits.to(logits.dtype), None, None, None


class _SoftmaxFocalDense(torch.autograd.Function):
    r"""Softmax focal loss for a dense target, per row:
    :math:`-\sum_c c_c (1-p_c)^\gamma \log p_c`, with :math:`0 \log 0 = 0` where
    :math:`c_c = 0`. Backward: :math:`h - p\sum_c h_c` with
    :math:`h_c = c_c (1-p_c)^\gamma(\gamma\, p_c\log p_c/(1-p_c) - 1)`; the coefficient's
    gradient is :math:`-(1-p_c)^\gamma \log p_c`."""

    @staticmethod
    def forward(ctx, logits: Tensor, coef: Tensor, gamma: float) -> Tensor:
        log_p = torch.log_softmax(_at_least_float32(logits), dim=-1)
        coef = coef.to(log_p.dtype)
        terms = coef * _modulation(log_p, gamma) * log_p
        ctx.save_for_backward(log_p, coef)
        ctx.gamma, ctx.dtype = gamma, logits.dtype
        return -torch.where(coef == 0, 0.0, terms).sum(-1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        log_p, coef = ctx.saved_tensors
        m = _modulation(log_p, ctx.gamma)
        g = grad.unsqueeze(-1)
        h = torch.where(coef == 0, 0.0, coef * m * (ctx.gamma * _p_log_p_over_1mp(log_p) - 1))
        h = h * g
        grad_logits = h - log_p.exp() * h.sum(-1, keepdim=True)
        grad_coef = None
        if ctx.needs_input_grad[1]:
            grad_coef = -(m * log_p) * g
        return grad_logits.to(ctx.dtype), grad_coef, None


def _alpha_vector(alpha: float | Tensor | None, k: int, like: Tensor, fn: str) -> Tensor | None:
    if alpha is None:
        return None
    if isinstance(alpha, Tensor) and alpha.dim() > 0:
        _checks.floating(alpha, "alpha", fn)
        if alpha.shape != (k,):
            raise ValueError(
                f"{fn}: alpha: expected a scalar or a 1-D tensor with one entry per class "
                f"({k}), got shape {tuple(alpha.shape)}"
            )
        _checks.values(alpha, _checks.NONNEGATIVE, "alpha", fn)
        return alpha.to(device=like.device)
    a = _checks.number(alpha, "alpha", fn, low=0.0)
    return torch.full((k,), a, device=like.device)


def focal(
    input: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float | Tensor | None = None,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    smoothing: str = "uniform",
) -> Tensor:
    r"""Softmax focal loss (Lin et al. 2017) for multi-class targets.

    .. math::
        l_n = -\sum_c \alpha_c\, w_c\, q_{n,c}\,(1-p_{n,c})^\gamma \log p_{n,c},
        \qquad p_n = \mathrm{softmax}(x_n)

    :math:`q` is the one-hot target, the given probabilities or their smoothed form (as in
    :func:`cross_entropy`). :math:`(1-p)^\gamma` is computed in log space and the gradient
    in closed form, so :math:`\gamma < 1` and saturated logits stay finite. ``gamma=0`` with
    ``alpha=None`` is :func:`cross_entropy` exactly.

    * ``alpha``: the paper's balancing factor, a scalar (every class) or one per class; it
      scales the loss and does not enter the mean's denominator. kornia's convention (class
      0 is background and gets 1-α) is ``alpha=torch.tensor([1-a, a, a, ...])``.
    * ``weight``: PyTorch's class weight; it scales the loss and the mean divides by
      :math:`\sum_n w_{y_n}`, as in :func:`cross_entropy`.
    * ``'mean'``: over non-ignored items (weighted by ``weight``), like :func:`cross_entropy`.
      ``alpha`` and ``weight`` are constants (no gradient flows to them).

    Shape:
        input: :math:`(C)` or :math:`(N, C, d_1, ...)` logits; target: class indices
        :math:`(N, d_1, ...)` or probabilities of input's shape; output: scalar, or the
        per-item shape for ``'none'``.

    >>> import torch
    >>> x, y = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    >>> focal(x, y, gamma=0.0), focal(x, y, gamma=2.0)
    (tensor(0.2395), tensor(0.0109))
    """
    fn = "focal"
    _reduction.check(reduction, fn)
    ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
    gamma = _checks.number(gamma, "gamma", fn, low=0.0)
    k = _logits(input, fn)
    kind = _target_kind(input, target, fn)
    _checks.class_weight(weight, k, input, fn)
    eps = _smoothing_args(label_smoothing, smoothing, k, fn)  # the uniform-rule ε'
    alpha_vec = _alpha_vector(alpha, k, input, fn)
    cdim = _class_dim(input)
    item_shape = input.shape[:cdim] + input.shape[cdim + 1 :]
    rows = input.movedim(cdim, -1).reshape(-1, k)
    ct = torch.promote_types(input.dtype, torch.float32)  # the dtype we compute in

    class_coef = None  # α_c w_c, or None when both are absent
    for v in (alpha_vec, weight):
        if v is not None:
            v = v.to(ct)
            class_coef = v if class_coef is None else class_coef * v

    if kind == "indices":
        target = _checks.class_indices(target, k, "target", fn, ignore_index=ignore_index)
        t = target.reshape(-1)
        kept = t != ignore_index
        safe = t.masked_fill(~kept, 0)
        denom = kept.to(ct) if weight is None else weight.to(ct)[safe] * kept
        if eps == 0.0:
            coef = kept.to(ct) if class_coef is None else class_coef[safe] * kept
            loss = _SoftmaxFocalIndex.apply(rows, safe, coef, gamma)
        else:
            q = smooth_labels(t, k, label_smoothing, smoothing, ignore_index, dtype=ct)
            coef = q if class_coef is None else q * class_coef
            loss = _SoftmaxFocalDense.apply(rows, coef, gamma)
    else:
        _probability_targets(target, input, ignore_index, fn)
        q = target.movedim(cdim, -1).reshape(-1, k).to(ct)
        denom = None if weight is None else (q * weight.to(ct)).sum(-1)
        if eps > 0.0:
            q = q * (1.0 - eps) + eps / k
        coef = q if class_coef is None else q * class_coef
        loss = _SoftmaxFocalDense.apply(rows, coef, gamma)
    loss = loss.reshape(item_shape)
    if denom is not None:
        denom = denom.reshape(item_shape)
    return _reduction.reduce(loss, reduction, item_weight=denom).to(input.dtype)


def _log_1m_pt(x: Tensor, t: Tensor) -> Tensor:
    r""":math:`\log(1-p_t) = \log(t\,\sigma(-x) + (1-t)\,\sigma(x))` as a log-sum-exp of
    log-sigmoids; at :math:`x = \pm\infty` its limits :math:`\log(1-t)` and :math:`\log t`,
    with no gradient (there the loss is 0 or infinite)."""
    finite_x = torch.where(torch.isinf(x), 0.0, x)
    log_1m_pt = torch.logaddexp(
        torch.log(t) + F.logsigmoid(-finite_x), torch.log1p(-t) + F.logsigmoid(finite_x)
    )
    log_1m_pt = torch.where(torch.isposinf(x), torch.log1p(-t), log_1m_pt)
    return torch.where(torch.isneginf(x), torch.log(t), log_1m_pt)


def _sigmoid_focal_exact(x: Tensor, t: Tensor, gamma: float) -> Tensor:
    """The unweighted sigmoid focal loss by autograd of its log-space form: exact at infinite
    logits, where :class:`_SigmoidFocal` is not used."""
    loss = _bce_with_logits_none(x, t, None, None)
    return loss if gamma == 0.0 else loss * torch.exp(gamma * _log_1m_pt(x, t))


class _SigmoidFocal(torch.autograd.Function):
    r"""Sigmoid focal loss :math:`c\,u^\gamma\,\mathrm{BCE}(x, t)` for finite logits, with
    :math:`u = 1 - p_t = t\,\sigma(-x) + (1-t)\,\sigma(x)` and a constant weight c
    (``None`` for 1).

    :math:`u` is a ``lerp`` of the two sigmoids, exact at t in {0, 1} (no cancellation), and
    the backward is closed-form,

    .. math::
        \partial l/\partial x = c\,u^\gamma\left[(\sigma(x) - t)
            + \gamma\,\mathrm{BCE}\,\frac{\sigma(x)\sigma(-x)}{u}(1 - 2t)\right]

    where :math:`\sigma(x)\sigma(-x)/u \le 1`, so :math:`\gamma < 1` needs no
    :math:`u^{\gamma-1}` (which autograd of the formula meets, and overflows).
    """

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, coef: Tensor, gamma: float) -> Tensor:
        s, s_neg = torch.sigmoid(x), torch.sigmoid(-x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        u = torch.lerp(s, s_neg, t)
        m = u.pow(gamma) if gamma else None
        ctx.save_for_backward(t, coef, s, s_neg, u, ce, m)
        ctx.gamma = gamma
        loss = ce if m is None else ce * m
        if coef is None:
            return loss.clone() if m is None else loss
        return loss * coef if m is None else loss.mul_(coef)

    @staticmethod
    def backward(ctx, grad: Tensor):
        t, coef, s, s_neg, u, ce, m = ctx.saved_tensors
        d = s - t
        if m is not None:
            r = (s * s_neg).div_(u).nan_to_num_(0.0)  # σ(x)σ(-x)/u; 0/0 where u underflows
            d = d.add_(r.mul_(ce).mul_(1.0 - 2.0 * t).mul_(ctx.gamma)).mul_(m)
        if coef is not None:
            d = d.mul_(coef)
        return d.mul_(grad), None, None, None


def sigmoid_focal(
    input: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float | Tensor | None = None,
    weight: Tensor | None = None,
    ignore_index: float = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    smoothing: str = "half",
) -> Tensor:
    r"""Sigmoid focal loss for binary and multi-label targets (RetinaNet's form).

    .. math::
        l_n = \alpha_t\,(1-p_t)^\gamma\,\mathrm{BCE}(x_n, y_n), \qquad
        1 - p_t = y\,\sigma(-x) + (1-y)\,\sigma(x), \qquad \alpha_t = \alpha y + (1-\alpha)(1-y)

    :math:`1-p_t` is a ``lerp`` of :math:`\sigma(\pm x)` (exact for hard labels) and the
    gradient is closed-form, so soft labels, :math:`\gamma<1` and extreme logits stay
    finite; infinite logits (detected on CPU; on accelerators always, to avoid a host sync)
    take an exact log-space path instead. ``gamma=0`` with ``alpha=None`` is
    :func:`bce_with_logits` exactly. ``alpha``: a scalar in [0, 1], or one per class (last
    dimension); ``None`` (the default, as in optax) applies none; torchvision's default is
    0.25. Elements whose target equals ``ignore_index`` are left out of the loss and of the
    mean's denominator. ``weight`` rescales elements (broadcast), as in :func:`bce`.
    ``target`` is treated as a constant (no gradient).

    Shape:
        input: :math:`(*)` logits; target: same shape, in [0, 1] or ``ignore_index``;
        output: scalar or :math:`(*)`.

    >>> import torch
    >>> x = torch.tensor([-18.6, 0.51, 2.94, -12.8])  # Keras' BinaryFocalCrossentropy example
    >>> sigmoid_focal(x, torch.tensor([0.0, 1.0, 0.0, 0.0]), gamma=2.0)
    tensor(0.6912)
    """
    fn = "sigmoid_focal"
    _reduction.check(reduction, fn)
    gamma = _checks.number(gamma, "gamma", fn, low=0.0)
    _binary_pair(input, target, weight, fn)
    if target.requires_grad:
        raise ValueError(f"{fn}: target: must not require grad (targets are constants here)")
    ignore_index = _checks.number(ignore_index, "ignore_index", fn)
    _checks.values(input, _checks.BINARY_LOGITS, "input", fn)
    _checks.not_probabilities(input, "input", fn, class_dim=None)
    x = _at_least_float32(input)
    kept = target != ignore_index
    if _all_on_cpu(kept):  # nothing ignored: no mask to apply
        t, kept, coef = target, None, None
    else:
        t, coef = target.masked_fill(~kept, 0.0), kept.to(x.dtype)
    _checks.values(t, _checks.PROBABILITIES, "target", fn)
    t = _smoothed_binary(t, label_smoothing, smoothing, fn).to(x.dtype)

    # coef = α_t · weight, 0 where ignored; None when it would be all ones.
    if alpha is not None:
        if isinstance(alpha, Tensor) and alpha.dim() > 0:
            _checks.floating(alpha, "alpha", fn)
            _checks.broadcastable(input, alpha, ("input", "alpha"), fn)
            _checks.values(alpha, _checks.PROBABILITIES, "alpha", fn)
            a = alpha.to(x.dtype)
        else:
            a = _checks.number(alpha, "alpha", fn, low=0.0, high=1.0)
        alpha_t = t * (2 * a - 1) + (1 - a)  # α t + (1 - α)(1 - t)
        coef = alpha_t if coef is None else coef * alpha_t
    if weight is not None:
        w = weight.to(x.dtype)
        coef = w if coef is None else coef * w
    if _has_inf_on_cpu(x):
        loss = _sigmoid_focal_exact(x, t, gamma)
        if coef is not None:
            loss = loss * coef
        if kept is not None:  # 0·inf at an ignored element is still 0
            loss = torch.where(kept, loss, 0.0)
    else:
        loss = _SigmoidFocal.apply(x, t, coef, gamma)
    item_weight = None if kept is None else kept.to(x.dtype)
    return _reduction.reduce(loss, reduction, item_weight=item_weight).to(input.dtype)


# ------------------------------------------------------------------------------- modules


def _smoothing_options(label_smoothing: float, smoothing: str, fn: str) -> tuple[float, str]:
    """A module's label-smoothing settings, checked when it is built (the variant against
    every convention; the loss itself refuses one that does not apply to it)."""
    eps = _checks.number(label_smoothing, "label_smoothing", fn, low=0.0, high=1.0)
    _checks.one_of(smoothing, ("uniform", "others", "half", "flip"), "smoothing", fn)
    return eps, smoothing


class NLLLoss(nn.Module):
    """Module form of :func:`nll`."""

    def __init__(
        self, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__()
        fn = "NLLLoss"
        self.register_buffer("weight", _checks.optional_tensor(weight, "weight", fn))
        self.ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
        self.reduction = _reduction.check(reduction, fn)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return nll(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy`."""

    def __init__(
        self,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        smoothing: str = "uniform",
    ) -> None:
        super().__init__()
        fn = "CrossEntropyLoss"
        self.register_buffer("weight", _checks.optional_tensor(weight, "weight", fn))
        self.ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
        self.reduction = _reduction.check(reduction, fn)
        self.label_smoothing, self.smoothing = _smoothing_options(label_smoothing, smoothing, fn)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(
            input,
            target,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
            smoothing=self.smoothing,
        )


class BCELoss(nn.Module):
    """Module form of :func:`bce`."""

    def __init__(
        self,
        weight: Tensor | None = None,
        reduction: str = "mean",
        *,
        label_smoothing: float = 0.0,
        smoothing: str = "half",
    ) -> None:
        super().__init__()
        fn = "BCELoss"
        self.register_buffer("weight", _checks.optional_tensor(weight, "weight", fn))
        self.reduction = _reduction.check(reduction, fn)
        self.label_smoothing, self.smoothing = _smoothing_options(label_smoothing, smoothing, fn)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return bce(
            input,
            target,
            self.weight,
            self.reduction,
            label_smoothing=self.label_smoothing,
            smoothing=self.smoothing,
        )


class BCEWithLogitsLoss(nn.Module):
    """Module form of :func:`bce_with_logits`."""

    def __init__(
        self,
        weight: Tensor | None = None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
        *,
        label_smoothing: float = 0.0,
        smoothing: str = "half",
    ) -> None:
        super().__init__()
        fn = "BCEWithLogitsLoss"
        self.register_buffer("weight", _checks.optional_tensor(weight, "weight", fn))
        self.register_buffer("pos_weight", _checks.optional_tensor(pos_weight, "pos_weight", fn))
        self.reduction = _reduction.check(reduction, fn)
        self.label_smoothing, self.smoothing = _smoothing_options(label_smoothing, smoothing, fn)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return bce_with_logits(
            input,
            target,
            self.weight,
            self.reduction,
            self.pos_weight,
            label_smoothing=self.label_smoothing,
            smoothing=self.smoothing,
        )


class FocalLoss(nn.Module):
    """Module form of :func:`focal` (softmax, multi-class)."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Tensor | None = None,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        smoothing: str = "uniform",
    ) -> None:
        super().__init__()
        fn = "FocalLoss"
        self.gamma = _checks.number(gamma, "gamma", fn, low=0.0)
        if isinstance(alpha, Tensor):
            self.register_buffer("alpha", alpha)
        else:
            self.alpha = None if alpha is None else _checks.number(alpha, "alpha", fn, low=0)
        self.register_buffer("weight", _checks.optional_tensor(weight, "weight", fn))
        self.ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
        self.reduction = _reduction.check(reduction, fn)
        self.label_smoothing, self.smoothing = _smoothing_options(label_smoothing, smoothing, fn)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return focal(
            input,
            target,
            self.gamma,
            self.alpha,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
            smoothing=self.smoothing,
        )


class SigmoidFocalLoss(nn.Module):
    """Module form of :func:`sigmoid_focal` (binary / multi-label)."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Tensor | None = None,
        weight: Tensor | None = None,
        ignore_index: float = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        smoothing: str = "half",
    ) -> None:
        super().__init__()
        fn = "SigmoidFocalLoss"
        self.gamma = _checks.number(gamma, "gamma", fn, low=0.0)
        if isinstance(alpha, Tensor):
            self.register_buffer("alpha", alpha)
        else:
            self.alpha = (
                None if alpha is None else _checks.number(alpha, "alpha", fn, low=0, high=1)
            )
        self.register_buffer("weight", _checks.optional_tensor(weight, "weight", fn))
        self.ignore_index = _checks.number(ignore_index, "ignore_index", fn)
        self.reduction = _reduction.check(reduction, fn)
        self.label_smoothing, self.smoothing = _smoothing_options(label_smoothing, smoothing, fn)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return sigmoid_focal(
            input,
            target,
            self.gamma,
            self.alpha,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
            smoothing=self.smoothing,
        )
