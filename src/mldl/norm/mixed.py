r"""Normalizations that mix statistics: Batch-Instance Normalization and Switchable
Normalization.

Both compute the per-(sample, channel) instance moments in one pass over the input and
derive the batch (and layer) moments from them, :math:`E[x^2] = \sigma^2 + \mu^2` over
equal-size groups (the official SwitchNorm's "compute once" trick, here with biased
variances throughout, so 1x1 feature maps give no NaN). The output is then one multiply-add
with per-(sample, channel) coefficients.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import _checks
from . import _stats
from .batch import _BatchStatNorm

__all__ = [
    "BatchInstanceNorm1d",
    "BatchInstanceNorm2d",
    "BatchInstanceNorm3d",
    "SwitchableNorm1d",
    "SwitchableNorm2d",
    "SwitchableNorm3d",
]


class _MixedNorm(_BatchStatNorm):
    """Instance moments, and batch moments from them (this process's or every process's) or
    from the running averages."""

    def _batch_part(self, inst: _stats.Moments, x: Tensor) -> _stats.Moments:
        """The batch moments, per channel: of this batch in training (running averages
        updated), else the running averages."""
        if (self.training and not self.frozen) or self.running_mean is None:
            m = _stats.across_processes(_stats.pool(inst, 0), self.process_group, sync=self._sync())
            self._check_batch(m, x)
            if self.training and self.track_running_stats:
                factor = self._average_factor()
                detached = _stats.Moments(m.mean.detach(), m.var.detach(), m.count)
                _stats.update_running(self.running_mean, self.running_var, detached, factor)
            return m
        return _stats.Moments(
            self.running_mean, self.running_var, torch.ones_like(self.running_mean)
        )


class _BatchInstanceNorm(_MixedNorm):
    """Batch-Instance Normalization; see :class:`BatchInstanceNorm2d`."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        rho: float = 1.0,
        sync: bool = False,
        process_group=None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            num_features,
            eps,
            momentum,
            affine,
            track_running_stats,
            sync=sync,
            process_group=process_group,
            device=device,
            dtype=dtype,
        )
        rho = _checks.number(rho, "rho", type(self).__name__, low=0.0, high=1.0)
        self.rho = nn.Parameter(torch.full((num_features,), rho, device=device, dtype=dtype))

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        inst = _stats.instance_moments(input)
        batch = self._batch_part(inst, input)
        rho = self.rho.clamp(0.0, 1.0)  # the paper's constraint; no gradient outside it
        r_bn = torch.rsqrt(batch.var + self.eps)  # (C,)
        r_in = torch.rsqrt(inst.var + self.eps)  # (N, C)
        # γ(ρ (x - μB) rB + (1 - ρ)(x - μI) rI) + β  =  x·a + b, per (sample, channel)
        a = rho * r_bn + (1 - rho) * r_in
        b = -(rho * batch.mean * r_bn + (1 - rho) * inst.mean * r_in)
        if self.weight is not None:
            a, b = a * self.weight, b * self.weight + self.bias
        return _stats.apply_affine(input, a, b)


class BatchInstanceNorm1d(_BatchInstanceNorm):
    """:class:`BatchInstanceNorm2d` for (N, C, L) input (or (N, C), where IN's part is 0)."""

    _dims = (2, 3)


class BatchInstanceNorm2d(_BatchInstanceNorm):
    r"""Batch-Instance Normalization (Nam & Kim 2018):

    .. math::
        y = \gamma\left(\rho\,\hat x^{(B)} + (1 - \rho)\,\hat x^{(I)}\right) + \beta

    a per-channel blend of batch- and instance-normalised input with a learned
    :math:`\rho \in [0, 1]` (clamped in the forward; initialised to ``rho``, 1 = pure BN as
    in the official code). The notes: ρ "tended to be close to 0 or 1"; classification
    favours BN, style transfer IN. Batch statistics come from the instance moments (one
    pass), their running averages serve eval; synchronised across processes like BatchNorm.

    Shape:
        input: :math:`(N, C, H, W)`; output: same.

    >>> import torch
    >>> x = torch.randn(4, 3, 5, 5)
    >>> bin_ = BatchInstanceNorm2d(3, rho=1.0)
    >>> torch.allclose(bin_(x), torch.nn.BatchNorm2d(3)(x), atol=1e-5)
    True
    """

    _dims = (4,)


class BatchInstanceNorm3d(_BatchInstanceNorm):
    """:class:`BatchInstanceNorm2d` for (N, C, D, H, W) input."""

    _dims = (5,)


class _SwitchableNorm(_MixedNorm):
    """Switchable Normalization; see :class:`SwitchableNorm2d`."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        using_bn: bool = True,
        sync: bool = False,
        process_group=None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            num_features,
            eps,
            momentum,
            affine,
            track_running_stats,
            sync=sync,
            process_group=process_group,
            device=device,
            dtype=dtype,
        )
        self.using_bn = bool(using_bn)
        k = 3 if self.using_bn else 2
        self.mean_weight = nn.Parameter(torch.ones(k, device=device, dtype=dtype))
        self.var_weight = nn.Parameter(torch.ones(k, device=device, dtype=dtype))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", using_bn={self.using_bn}"

    def importance(self) -> dict[str, Tensor]:
        """The softmax weights of each statistic, for the means and the variances."""
        names = ("IN", "LN", "BN")[: self.mean_weight.numel()]
        wm, wv = self.mean_weight.softmax(0), self.var_weight.softmax(0)
        return {"mean": dict(zip(names, wm, strict=True)), "var": dict(zip(names, wv, strict=True))}

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        inst = _stats.instance_moments(input)  # (N, C)
        layer = _stats.pool(inst, 1)  # (N,)
        wm, wv = self.mean_weight.softmax(0), self.var_weight.softmax(0)
        mean = wm[0] * inst.mean + wm[1] * layer.mean[:, None]
        var = wv[0] * inst.var + wv[1] * layer.var[:, None]
        if self.using_bn:
            batch = self._batch_part(inst, input)
            mean = mean + wm[2] * batch.mean
            var = var + wv[2] * batch.var
        return _stats.normalize(input, mean, var, self.weight, self.bias, self.eps)


class SwitchableNorm1d(_SwitchableNorm):
    """:class:`SwitchableNorm2d` for (N, C, L) input."""

    _dims = (2, 3)


class SwitchableNorm2d(_SwitchableNorm):
    r"""Switchable Normalization (Luo et al. 2019): a learned softmax blend of the
    instance, layer and batch statistics,

    .. math::
        \hat x = \frac{x - \sum_k w_k \mu_k}{\sqrt{\sum_k w'_k \sigma_k^2 + \epsilon}},\qquad
        k \in \{IN, LN, BN\},\quad w = \mathrm{softmax}(\text{mean\_weight}),\quad
        w' = \mathrm{softmax}(\text{var\_weight})

    All three moments come from the instance moments (one pass); the batch part keeps
    running averages for eval and synchronises across processes like BatchNorm.
    ``using_bn=False`` blends IN and LN only (the paper's choice for batch size 1).
    :meth:`importance` returns the learned weights. The notes: smaller batches lead to a
    preference for LN and IN.

    Shape:
        input: :math:`(N, C, H, W)`; output: same.

    >>> import torch
    >>> sn = SwitchableNorm2d(3)
    >>> with torch.no_grad():
    ...     _ = sn.mean_weight.copy_(torch.tensor([50.0, -50.0, -50.0]))
    ...     _ = sn.var_weight.copy_(torch.tensor([50.0, -50.0, -50.0]))
    >>> x = torch.randn(2, 3, 4, 4)
    >>> torch.allclose(sn(x), torch.nn.functional.instance_norm(x), atol=1e-5)
    True
    """

    _dims = (4,)


class SwitchableNorm3d(_SwitchableNorm):
    """:class:`SwitchableNorm2d` for (N, C, D, H, W) input."""

    _dims = (5,)
