"""Regression losses: L1, MSE, SmoothL1, Huber, Poisson NLL, Gaussian NLL.

All but the ``weight`` option call PyTorch's native kernels. Where we differ from PyTorch:

* ``input`` and ``target`` must have the same shape. PyTorch only warns and broadcasts,
  which turns an (N, 1) prediction and an (N,) target into an (N, N) loss.
* ``weight`` (any shape that broadcasts to ``input``) gives the weighted mean
  ``Σ w l / Σ w`` for every loss here; PyTorch 2.13 has a same-shape ``weight`` for
  l1/mse (same rule) and huber (which divides by the element count instead), and PyTorch
  2.4 has none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks
from . import _reduction

__all__ = [
    "GaussianNLLLoss",
    "HuberLoss",
    "L1Loss",
    "MSELoss",
    "PoissonNLLLoss",
    "SmoothL1Loss",
    "gaussian_nll",
    "huber",
    "l1",
    "mse",
    "poisson_nll",
    "smooth_l1",
]


def _pair(input: Tensor, target: Tensor, fn: str) -> None:
    """Shared checks for (prediction, target) regression pairs."""
    _checks.floating(input, "input", fn)
    _checks.floating(target, "target", fn)
    _checks.same_shape(input, target, ("input", "target"), fn)
    _checks.same_device({"input": input, "target": target}, fn)
    _checks.values(input, _checks.REAL, "input", fn)
    _checks.values(target, _checks.REAL, "target", fn)


def _weighted(loss: Tensor, weight: Tensor | None, reduction: str, fn: str) -> Tensor:
    """Apply an element weight, then reduce with the weighted mean ``Σ w l / Σ w``."""
    if weight is None:
        return _reduction.reduce(loss, reduction)
    _checks.floating(weight, "weight", fn)
    _checks.broadcastable(loss, weight, ("input", "weight"), fn)
    _checks.same_device({"input": loss, "weight": weight}, fn)
    _checks.values(weight, _checks.NONNEGATIVE, "weight", fn)
    weight = weight.expand_as(loss)
    return _reduction.reduce(loss * weight, reduction, item_weight=weight)


def l1(
    input: Tensor, target: Tensor, reduction: str = "mean", *, weight: Tensor | None = None
) -> Tensor:
    r"""Mean absolute error: :math:`l_n = |y_n - x_n|`.

    Args:
        input: predictions :math:`x`, real values.
        target: targets :math:`y`, same shape as ``input``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        weight: element weights broadcast to ``input``; ``'mean'`` is then ``Σ w l / Σ w``.

    Shape:
        input: :math:`(*)`; target: same shape; output: scalar, or :math:`(*)` for ``'none'``.

    >>> import torch
    >>> l1(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
    tensor(1.5000)
    """
    fn = "l1"
    _reduction.check(reduction, fn)
    _pair(input, target, fn)
    if weight is None:
        return F.l1_loss(input, target, reduction=reduction)
    return _weighted(F.l1_loss(input, target, reduction="none"), weight, reduction, fn)


def mse(
    input: Tensor, target: Tensor, reduction: str = "mean", *, weight: Tensor | None = None
) -> Tensor:
    r"""Mean squared error: :math:`l_n = (y_n - x_n)^2`.

    The notes: MSE is the cross-entropy between the empirical distribution and a Gaussian
    model of fixed variance; :func:`gaussian_nll` with ``var=1`` is ``mse / 2`` plus a
    constant.

    Shape:
        input: :math:`(*)`; target: same shape; output: scalar, or :math:`(*)` for ``'none'``.

    >>> import torch
    >>> mse(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
    tensor(2.5000)
    """
    fn = "mse"
    _reduction.check(reduction, fn)
    _pair(input, target, fn)
    if weight is None:
        return F.mse_loss(input, target, reduction=reduction)
    return _weighted(F.mse_loss(input, target, reduction="none"), weight, reduction, fn)


def smooth_l1(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    beta: float = 1.0,
    *,
    weight: Tensor | None = None,
) -> Tensor:
    r"""Smooth L1: squared below ``beta``, absolute above.

    .. math::
        l_n = \begin{cases} 0.5 (x_n - y_n)^2 / \beta & |x_n - y_n| < \beta \\
                            |x_n - y_n| - 0.5 \beta & \text{otherwise} \end{cases}

    ``beta = 0`` is exactly L1; a negative ``beta`` raises. ``smooth_l1 = huber / beta``.

    Shape:
        input: :math:`(*)`; target: same shape; output: scalar, or :math:`(*)` for ``'none'``.

    >>> import torch
    >>> smooth_l1(torch.tensor([0.5, 3.0]), torch.tensor([0.0, 0.0]), reduction="none")
    tensor([0.1250, 2.5000])
    """
    fn = "smooth_l1"
    _reduction.check(reduction, fn)
    beta = _checks.number(beta, "beta", fn, low=0.0)
    _pair(input, target, fn)
    if weight is None:
        return F.smooth_l1_loss(input, target, reduction=reduction, beta=beta)
    loss = F.smooth_l1_loss(input, target, reduction="none", beta=beta)
    return _weighted(loss, weight, reduction, fn)


def huber(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    *,
    weight: Tensor | None = None,
) -> Tensor:
    r"""Huber loss: :math:`0.5 d^2` for :math:`|d| < \delta`, else :math:`\delta(|d| - 0.5\delta)`.

    ``delta`` must be positive. ``huber(delta=b) = b * smooth_l1(beta=b)``.

    Shape:
        input: :math:`(*)`; target: same shape; output: scalar, or :math:`(*)` for ``'none'``.

    >>> import torch
    >>> huber(torch.tensor([0.5, 3.0]), torch.tensor([0.0, 0.0]), reduction="none")
    tensor([0.1250, 2.5000])
    """
    fn = "huber"
    _reduction.check(reduction, fn)
    delta = _checks.number(delta, "delta", fn, low=0.0, low_open=True)
    _pair(input, target, fn)
    if weight is None:
        return F.huber_loss(input, target, reduction=reduction, delta=delta)
    loss = F.huber_loss(input, target, reduction="none", delta=delta)
    return _weighted(loss, weight, reduction, fn)


def poisson_nll(
    input: Tensor,
    target: Tensor,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> Tensor:
    r"""Negative log-likelihood of counts :math:`k` under :math:`\mathrm{Poisson}(\lambda)`.

    .. math::
        -\log \Pr(X = k) = \lambda - k \log\lambda + \log(k!)

    ``log_input=True`` takes :math:`x = \log\lambda` and computes :math:`e^x - k x`;
    ``log_input=False`` takes :math:`\lambda \ge 0` and computes
    :math:`\lambda - k \log(\lambda + \epsilon)`. The constant :math:`\log(k!)` is left out
    unless ``full=True``, which adds Stirling's approximation
    :math:`k\log k - k + \tfrac12\log(2\pi k)` for :math:`k > 1` (0 for :math:`k \le 1`, as in
    PyTorch).

    Shape:
        input: :math:`(*)`; target: same shape, counts :math:`\ge 0`; output: scalar or
        :math:`(*)`.

    >>> import torch
    >>> poisson_nll(torch.tensor([2.0]), torch.tensor([2.0]), log_input=False, reduction="sum")
    tensor(0.6137)
    """
    fn = "poisson_nll"
    _reduction.check(reduction, fn)
    eps = _checks.number(eps, "eps", fn, low=0.0)
    _checks.floating(input, "input", fn)
    _checks.floating(target, "target", fn)
    _checks.same_shape(input, target, ("input", "target"), fn)
    _checks.same_device({"input": input, "target": target}, fn)
    _checks.values(input, _checks.REAL if log_input else _checks.NONNEGATIVE, "input", fn)
    _checks.values(target, _checks.NONNEGATIVE, "target", fn)
    return F.poisson_nll_loss(
        input, target, log_input=log_input, full=full, eps=eps, reduction=reduction
    )


def gaussian_nll(
    input: Tensor,
    target: Tensor,
    var: Tensor | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    r"""Negative log-likelihood of ``target`` under :math:`\mathcal{N}(\text{input}, \text{var})`.

    .. math::
        l_n = \tfrac12\left(\log \max(\sigma_n^2, \epsilon)
              + \frac{(x_n - y_n)^2}{\max(\sigma_n^2, \epsilon)}\right)
              \;[+\; \tfrac12 \log 2\pi \text{ if full}]

    This is the notes' :math:`H(\hat p_{data}, g)` term by term. The variance is clamped at
    ``eps`` (a clamp, not an addition) without stopping its gradient, as in PyTorch.
    ``var`` may be a float, a tensor of ``input``'s shape, one with the last dimension
    dropped or of size 1 (one variance per sample).

    Shape:
        input: :math:`(N, *)`; target: same shape; var: see above; output: scalar or
        :math:`(N, *)`.

    >>> import torch
    >>> gaussian_nll(torch.zeros(3), torch.zeros(3), 0.25, eps=1.0)  # clamp, not add
    tensor(0.)
    """
    fn = "gaussian_nll"
    _reduction.check(reduction, fn)
    eps = _checks.number(eps, "eps", fn, low=0.0)
    _pair(input, target, fn)
    if isinstance(var, Tensor):
        _checks.floating(var, "var", fn)
        _checks.same_device({"input": input, "var": var}, fn)
        if var.dim() == 0 and input.dim() > 1:  # one variance for all, like a float
            var = var.expand_as(input)
    else:
        v = _checks.number(var, "var", fn, low=0.0)
        var = torch.full_like(input, v)
    _checks.values(var, _checks.NONNEGATIVE, "var", fn)
    shape_ok = var.shape == input.shape or (
        input.dim() > 0 and (var.shape == input.shape[:-1] or var.shape == (*input.shape[:-1], 1))
    )
    if not shape_ok:
        raise ValueError(
            f"{fn}: var: expected shape {tuple(input.shape)} or {tuple(input.shape[:-1])} "
            f"or {(*input.shape[:-1], 1)}, got {tuple(var.shape)}"
        )
    return F.gaussian_nll_loss(input, target, var, full=full, eps=eps, reduction=reduction)


# ----------------------------------------------------------------------------- modules


class L1Loss(nn.Module):
    """Module form of :func:`l1`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction.check(reduction, "L1Loss")

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return l1(input, target, self.reduction, weight=weight)


class MSELoss(nn.Module):
    """Module form of :func:`mse`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction.check(reduction, "MSELoss")

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return mse(input, target, self.reduction, weight=weight)


class SmoothL1Loss(nn.Module):
    """Module form of :func:`smooth_l1`."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__()
        self.reduction = _reduction.check(reduction, "SmoothL1Loss")
        self.beta = _checks.number(beta, "beta", "SmoothL1Loss", low=0.0)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return smooth_l1(input, target, self.reduction, self.beta, weight=weight)


class HuberLoss(nn.Module):
    """Module form of :func:`huber`."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__()
        self.reduction = _reduction.check(reduction, "HuberLoss")
        self.delta = _checks.number(delta, "delta", "HuberLoss", low=0.0, low_open=True)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return huber(input, target, self.reduction, self.delta, weight=weight)


class PoissonNLLLoss(nn.Module):
    """Module form of :func:`poisson_nll`."""

    def __init__(
        self,
        log_input: bool = True,
        full: bool = False,
        eps: float = 1e-8,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.log_input, self.full = log_input, full
        self.eps = _checks.number(eps, "eps", "PoissonNLLLoss", low=0.0)
        self.reduction = _reduction.check(reduction, "PoissonNLLLoss")

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return poisson_nll(input, target, self.log_input, self.full, self.eps, self.reduction)


class GaussianNLLLoss(nn.Module):
    """Module form of :func:`gaussian_nll`."""

    def __init__(self, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__()
        self.full = full
        self.eps = _checks.number(eps, "eps", "GaussianNLLLoss", low=0.0)
        self.reduction = _reduction.check(reduction, "GaussianNLLLoss")

    def forward(self, input: Tensor, target: Tensor, var: Tensor | float) -> Tensor:
        return gaussian_nll(input, target, var, self.full, self.eps, self.reduction)
