r"""Batch normalization with explicit statistics, Batch Renormalization, and the weight-norm
paper's mean-only batch normalization.

The notes' formula, per channel j over the m values of a mini-batch:

.. math::
    \mu_j = \frac1m \sum_i x_{ij},\qquad \sigma_j^2 = \frac1m \sum_i (x_{ij} - \mu_j)^2,\qquad
    \hat x_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}},\qquad
    y_{ij} = \gamma_j \hat x_{ij} + \beta_j

Every layer here keeps PyTorch's parameter and buffer names (``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``), so checkpoints of
``torch.nn.BatchNorm2d`` load unchanged, and computes with PyTorch's native ``batch_norm``
whenever the statistics are one process's own.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks
from . import _stats

__all__ = [
    "STATS",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "BatchRenorm1d",
    "BatchRenorm2d",
    "BatchRenorm3d",
    "MeanOnlyBatchNorm1d",
    "MeanOnlyBatchNorm2d",
    "MeanOnlyBatchNorm3d",
    "freeze_statistics",
    "recompute_statistics",
]

# How a batch-normalization layer normalises:
#   auto     PyTorch's rule: batch statistics in training (running averages updated),
#            running averages in eval
#   batch    batch statistics always, also in eval (running averages still updated in training)
#   running  running averages always; in training they keep tracking the batches
#   frozen   the stored running averages, never updated: the notes' fine-tuning question
#            ("use the mean and variance computed on the original dataset")
STATS = ("auto", "batch", "running", "frozen")


class _BatchStatNorm(nn.Module):
    """What every layer normalising with batch statistics shares: the affine parameters,
    running statistics, the momentum rule, the input check and the process group."""

    _dims: tuple[int, ...] = (2, 3, 4, 5)
    _name = "BatchNorm"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        sync: bool = False,
        process_group=None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        if not isinstance(sync, bool):
            raise TypeError(f"{fn}: sync: expected True or False, got {sync!r}")
        self.sync = sync
        # Normalise with the stored statistics and never update them (freeze_statistics).
        self._frozen = False
        self.num_features = _checks.integer(num_features, "num_features", fn, low=1)
        self.eps = _checks.number(eps, "eps", fn, low=0.0, low_open=True)
        self.momentum = (
            None if momentum is None else _checks.number(momentum, "momentum", fn, low=0, high=1)
        )
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.process_group = process_group
        factory = {"device": device, "dtype": dtype}
        if self.affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            if self.running_var is not None:  # mean-only batch norm tracks no variance
                self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )

    def _check_input(self, x: Tensor) -> None:
        fn = type(self).__name__
        _checks.floating(x, "input", fn)
        if x.dim() not in self._dims:
            want = " or ".join(f"{d}-D" for d in self._dims)
            raise ValueError(f"{fn}: input: expected {want} input (N, C, ...), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{fn}: input: expected {self.num_features} channels (dim 1), got "
                f"{x.shape[1]} in shape {tuple(x.shape)}"
            )

    # What to do instead, for the batch-size error (BatchNorm adds its stats modes).
    _one_value_hint = "use a larger batch, eval mode, or a per-sample norm such as GroupNorm"

    def _check_batch(self, m: _stats.Moments, x: Tensor) -> None:
        """Batch statistics of one value per channel are undefined (and their variance 0)."""
        if bool((m.count <= 1).any()):
            raise ValueError(
                f"{type(self).__name__}: input: expected more than 1 value per channel to "
                f"compute batch statistics, got shape {tuple(x.shape)} ({self._one_value_hint})"
            )

    def _average_factor(self) -> float:
        """Count the batch; the weight of its statistics in the running averages (momentum,
        or 1/n for the cumulative average when momentum is None)."""
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    @property
    def frozen(self) -> bool:
        """Whether the layer normalises with its stored running statistics and never updates
        them, in training too (set by :func:`freeze_statistics`)."""
        return self._frozen

    @frozen.setter
    def frozen(self, value: bool) -> None:
        self._frozen = bool(value)

    def _sync(self) -> bool:
        """Whether this call's batch statistics span every process of ``process_group``:
        when the layer was made synchronised (``sync=True``, or :func:`~mldl.norm.convert_sync`)
        and ``torch.distributed`` runs more than one process in that group."""
        return self.sync and _stats.sync_active(self.process_group)


class _BatchNorm(_BatchStatNorm):
    r"""Batch normalization with an explicit choice of statistics (``stats``, one of
    :data:`STATS`); see :class:`BatchNorm2d`."""

    _one_value_hint = (
        "use a larger batch, eval mode, stats='running' or 'frozen', or a per-sample norm "
        "such as GroupNorm"
    )

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        stats: str = "auto",
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
        self.stats = stats  # checked by the property

    @property
    def stats(self) -> str:
        return self._stats_mode

    @stats.setter
    def stats(self, value: str) -> None:
        fn = type(self).__name__
        _checks.one_of(value, STATS, "stats", fn)
        if value in ("running", "frozen") and not self.track_running_stats:
            raise ValueError(
                f"{fn}: stats={value!r} normalises with running statistics, which "
                "track_running_stats=False does not keep"
            )
        self._stats_mode = value

    def extra_repr(self) -> str:
        return super().extra_repr() + f", stats={self.stats!r}"

    @property
    def frozen(self) -> bool:
        """Whether the layer normalises with its stored statistics and never updates them
        (``stats == 'frozen'``); setting it switches between 'frozen' and 'auto'."""
        return self.stats == "frozen"

    @frozen.setter
    def frozen(self, value: bool) -> None:
        self.stats = "frozen" if value else "auto"

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        mode = self.stats
        use_batch = mode == "batch" or (
            mode == "auto" and (self.training or self.running_mean is None)
        )
        update = self.training and self.track_running_stats and mode != "frozen"
        if use_batch:
            sync = self._sync()
            m = _stats.batch_moments(input, self.process_group, sync=True) if sync else None
            self._check_batch(m if sync else _count_only(input), input)
            factor = self._average_factor() if update else 0.0
            if sync:
                if update:
                    _stats.update_running(self.running_mean, self.running_var, m, factor)
                return _stats.normalize(input, m.mean, m.var, self.weight, self.bias, self.eps)
            rm, rv = (self.running_mean, self.running_var) if update else (None, None)
            return F.batch_norm(input, rm, rv, self.weight, self.bias, True, factor, self.eps)
        # The running statistics as they were before this batch; copied when this call
        # updates them, since the backward of this call must not see the update.
        mean, var = self.running_mean, self.running_var
        if update:
            mean, var = mean.clone(), var.clone()
            with torch.no_grad():
                m = _stats.batch_moments(input, self.process_group, sync=self._sync())
            # One value per channel carries no variance: such a batch leaves them unchanged.
            if bool((m.count > 1).all()):
                factor = self._average_factor()
                _stats.update_running(self.running_mean, self.running_var, m, factor)
        return F.batch_norm(input, mean, var, self.weight, self.bias, False, 0.0, self.eps)


def _count_only(x: Tensor) -> _stats.Moments:
    """Moments carrying only the per-channel count (for the batch-size check)."""
    n = torch.tensor(float(x.shape[0] * _stats.spatial_size(x)))
    return _stats.Moments(n, n, n)


class BatchNorm1d(_BatchNorm):
    """:class:`BatchNorm2d` for (N, C) or (N, C, L) input."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    r"""Batch normalization over (N, C, H, W) input, with an explicit choice of statistics.

    ``stats`` (settable any time, e.g. ``bn.stats = "frozen"`` before fine-tuning):

    * ``'auto'``: PyTorch's rule: batch statistics in training (running averages updated
      with ``momentum``; ``None`` for a cumulative average), running averages in eval;
    * ``'batch'``: batch statistics in training and eval;
    * ``'running'``: running averages in training and eval, still updated in training;
    * ``'frozen'``: the stored running averages, never updated: the notes' "use the mean and
      variance computed on the original dataset" when fine-tuning.

    :func:`recompute_statistics` sets the running averages to the exact statistics of a
    dataset in one pass. With a ``process_group`` (see :func:`mldl.norm.convert_sync`) batch
    statistics are those of the batches of every process together, counts weighted.

    Shape:
        input: :math:`(N, C, H, W)`; output: same.

    >>> import torch
    >>> bn = BatchNorm2d(3)
    >>> x = torch.randn(8, 3, 4, 4)
    >>> torch.allclose(bn(x), torch.nn.BatchNorm2d(3)(x), atol=1e-6)
    True
    """

    _dims = (4,)


class BatchNorm3d(_BatchNorm):
    """:class:`BatchNorm2d` for (N, C, D, H, W) input."""

    _dims = (5,)


# ------------------------------------------------------------------------ Batch Renorm


class _BatchRenorm(_BatchStatNorm):
    r"""Batch Renormalization (Ioffe 2017); see :class:`BatchRenorm2d`."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        *,
        r_max: float = 3.0,
        d_max: float = 5.0,
        r_max_ramp: tuple[int, int] | None = None,
        d_max_ramp: tuple[int, int] | None = None,
        renorm_momentum: float = 0.01,
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
            True,
            sync=sync,
            process_group=process_group,
            device=device,
            dtype=dtype,
        )
        fn = type(self).__name__
        if momentum is None:
            raise ValueError(f"{fn}: momentum: expected a number in [0, 1], got None")
        self.r_max = _checks.number(r_max, "r_max", fn, low=1.0)
        self.d_max = _checks.number(d_max, "d_max", fn, low=0.0)
        self.r_max_ramp = _ramp(r_max_ramp, "r_max_ramp", fn)
        self.d_max_ramp = _ramp(d_max_ramp, "d_max_ramp", fn)
        self.renorm_momentum = _checks.number(renorm_momentum, "renorm_momentum", fn, low=0, high=1)
        factory = {"device": device, "dtype": dtype}
        self.register_buffer("renorm_mean", torch.zeros(num_features, **factory))
        self.register_buffer("renorm_var", torch.ones(num_features, **factory))

    @classmethod
    def paper_schedule(cls) -> dict:
        """The paper's relaxation: r_max = 1 and d_max = 0 for 5k steps, then linearly to 3
        (at 40k steps) and 5 (at 25k steps). Use as ``BatchRenorm2d(C, **paper_schedule())``."""
        return {
            "r_max": 3.0,
            "d_max": 5.0,
            "r_max_ramp": (5000, 40000),
            "d_max_ramp": (5000, 25000),
        }

    def reset_running_stats(self) -> None:
        super().reset_running_stats()
        if hasattr(self, "renorm_mean"):
            self.renorm_mean.zero_()
            self.renorm_var.fill_(1)

    def bounds(self) -> tuple[float, float]:
        """(r_max, d_max) at the current step (``num_batches_tracked``): 1 and 0 before a
        ramp starts, the final values after it ends, linear in between; never beyond the
        final values, however long training runs."""
        step = int(self.num_batches_tracked)
        return (
            _ramped(1.0, self.r_max, self.r_max_ramp, step),
            _ramped(0.0, self.d_max, self.d_max_ramp, step),
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", r_max={self.r_max}, d_max={self.d_max}"

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        if not self.training or self.frozen:
            return F.batch_norm(
                input,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                False,
                0.0,
                self.eps,
            )
        sync = self._sync()
        # Synchronised, the normalisation itself uses these moments (gradient and all); alone,
        # they only give r and d, and native batch_norm recomputes its own.
        with torch.set_grad_enabled(sync and torch.is_grad_enabled()):
            m = _stats.batch_moments(input, self.process_group, sync=sync)
        self._check_batch(m, input)
        factor = self._average_factor()
        r_max, d_max = self.bounds()
        with torch.no_grad():  # r and d are constants in the backward (the paper's stop-gradient)
            sigma = torch.sqrt(self.renorm_var + self.eps)
            r = (torch.sqrt(m.var + self.eps) / sigma).clamp(1.0 / r_max, r_max)
            d = ((m.mean - self.renorm_mean) / sigma).clamp(-d_max, d_max)
            detached = _stats.Moments(m.mean.detach(), m.var.detach(), m.count)
            _stats.update_running(self.running_mean, self.running_var, detached, factor)
            self.renorm_mean.lerp_(detached.mean.to(self.renorm_mean.dtype), self.renorm_momentum)
            # the same (biased) estimator as σ_B, so that r -> 1 once the averages settle
            self.renorm_var.lerp_(detached.var.to(self.renorm_var.dtype), self.renorm_momentum)
        # x̂·r + d, then the affine: folded into a native batch_norm's weight and bias.
        weight = r if self.weight is None else self.weight * r.to(self.weight.dtype)
        bias = d if self.bias is None else self.bias + self.weight * d.to(self.weight.dtype)
        if sync:
            return _stats.normalize(input, m.mean, m.var, weight, bias, self.eps)
        # the moments are already known: normalise with them in one pass, native backward
        out = _stats.batch_norm_with_moments(input, m.mean, m.var, weight, bias, self.eps)
        if out is not None:
            return out
        return F.batch_norm(
            input, None, None, weight.to(input.dtype), bias.to(input.dtype), True, 0.0, self.eps
        )


def _ramp(ramp, name: str, fn: str) -> tuple[int, int] | None:
    if ramp is None:
        return None
    if not isinstance(ramp, (tuple, list)) or len(ramp) != 2:
        raise TypeError(f"{fn}: {name}: expected (start_step, end_step), got {ramp!r}")
    start = _checks.integer(ramp[0], name, fn, low=0)
    end = _checks.integer(ramp[1], name, fn, low=start)
    return start, end


def _ramped(initial: float, final: float, ramp: tuple[int, int] | None, step: int) -> float:
    if ramp is None:
        return final
    start, end = ramp
    if step <= start:
        return initial
    if step >= end:
        return final
    return initial + (final - initial) * (step - start) / (end - start)


class BatchRenorm1d(_BatchRenorm):
    """:class:`BatchRenorm2d` for (N, C) or (N, C, L) input."""

    _dims = (2, 3)


class BatchRenorm2d(_BatchRenorm):
    r"""Batch Renormalization (Ioffe 2017) over (N, C, H, W) input.

    In training, with the batch's :math:`\mu_B, \sigma_B` and moving averages
    :math:`\mu, \sigma`,

    .. math::
        y = \gamma\left(\frac{x - \mu_B}{\sigma_B}\, r + d\right) + \beta,\qquad
        r = \mathrm{clip}_{[1/r_{max},\, r_{max}]}\frac{\sigma_B}{\sigma},\qquad
        d = \mathrm{clip}_{[-d_{max},\, d_{max}]}\frac{\mu_B - \mu}{\sigma}

    with r and d treated as constants in the backward (the notes: "not backpropagate through
    gamma and d"). They fold into the weight and bias of a native ``batch_norm`` call, so it
    costs what BatchNorm costs plus one statistics pass. ``r_max=1, d_max=0`` is BatchNorm.

    The moving averages that give r and d (``renorm_mean``, ``renorm_var``, updated with
    ``renorm_momentum``) are separate from the inference statistics (``running_mean``,
    ``running_var``, updated with ``momentum``, used in eval), as in Keras.
    ``r_max_ramp=(start, end)`` relaxes r_max from 1 at step ``start`` to ``r_max`` at
    ``end`` (likewise d_max from 0); :meth:`paper_schedule` gives the paper's. The bounds
    never exceed their final values (torchrl's grow without limit).

    Shape:
        input: :math:`(N, C, H, W)`; output: same.

    >>> import torch
    >>> brn, bn = BatchRenorm2d(3, r_max=1.0, d_max=0.0), torch.nn.BatchNorm2d(3)
    >>> x = torch.randn(8, 3, 4, 4)
    >>> torch.allclose(brn(x), bn(x), atol=1e-6)
    True
    """

    _dims = (4,)


class BatchRenorm3d(_BatchRenorm):
    """:class:`BatchRenorm2d` for (N, C, D, H, W) input."""

    _dims = (5,)


# -------------------------------------------------------------------- mean-only batch norm


class _MeanOnlyBatchNorm(_BatchStatNorm):
    r"""Mean-only batch normalization (Salimans & Kingma 2016); see
    :class:`MeanOnlyBatchNorm2d`."""

    def __init__(
        self,
        num_features: int,
        momentum: float | None = 0.1,
        bias: bool = True,
        *,
        sync: bool = False,
        process_group=None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            num_features,
            1.0,
            momentum,
            False,
            True,
            sync=sync,
            process_group=process_group,
            device=device,
            dtype=dtype,
        )
        if bias:
            self.bias = nn.Parameter(torch.zeros(num_features, device=device, dtype=dtype))
        self.register_buffer("running_var", None)  # only the mean is tracked

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, bias={self.bias is not None}"

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        shape = (1, -1) + (1,) * (input.dim() - 2)
        if self.training and not self.frozen:
            factor = self._average_factor()
            if self._sync():
                mean = _stats.batch_moments(input, self.process_group, sync=True).mean
            else:  # the variance is never used: the mean alone is one cheap reduction
                mean = _stats.batch_mean(input)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
        else:
            mean = self.running_mean
        out = input - mean.view(shape).to(input.dtype)
        return out if self.bias is None else out + self.bias.view(shape)


class MeanOnlyBatchNorm1d(_MeanOnlyBatchNorm):
    """:class:`MeanOnlyBatchNorm2d` for (N, C) or (N, C, L) input."""

    _dims = (2, 3)


class MeanOnlyBatchNorm2d(_MeanOnlyBatchNorm):
    r"""Mean-only batch normalization: :math:`y = x - \mu_B + \beta`.

    The weight-norm paper's companion: subtract the batch mean (a running average in eval),
    add a learned bias, leave the scale to weight normalization. Its mean is a gentler noise
    than BatchNorm's standard deviation, so it suits smaller batches.

    Shape:
        input: :math:`(N, C, H, W)`; output: same.

    >>> import torch
    >>> y = MeanOnlyBatchNorm2d(3)(torch.randn(4, 3, 2, 2) + 5)
    >>> bool(y.mean(dim=(0, 2, 3)).abs().max() < 1e-5)
    True
    """

    _dims = (4,)


class MeanOnlyBatchNorm3d(_MeanOnlyBatchNorm):
    """:class:`MeanOnlyBatchNorm2d` for (N, C, D, H, W) input."""

    _dims = (5,)


# ------------------------------------------------------------------ dataset statistics


def _batch_norm_layers(model: nn.Module) -> list[nn.Module]:
    """Every layer of ``model`` with batch running statistics: ours and PyTorch's."""
    kinds = (_BatchStatNorm, nn.modules.batchnorm._BatchNorm)
    return [m for m in model.modules() if isinstance(m, kinds) and m.running_mean is not None]


@torch.no_grad()
def recompute_statistics(
    model: nn.Module, loader: Iterable, *, device=None, max_batches: int | None = None
) -> nn.Module:
    """Set every batch-norm layer's running statistics to the exact mean and (unbiased)
    variance of its input over the whole dataset, in one pass over ``loader``.

    The notes' fine-tuning advice ("use the statistics of the original dataset"), done
    precisely: each layer's moments are accumulated with counts (Chan's combination), so
    uneven batches weigh what they hold, unlike an average of per-batch averages. During the
    pass every layer normalises with its batch's statistics, as in training. ``loader``
    yields input tensors or tuples whose first item is the input.

    Nothing else changes: every module's train/eval mode, every layer's ``stats``/``frozen``
    setting and every other buffer (``num_batches_tracked``, BatchRenorm's renorm
    statistics and schedule step) are as before. Returns ``model``.
    """
    layers = _batch_norm_layers(model)
    if not layers:
        return model
    totals: dict[nn.Module, _stats.Moments | None] = dict.fromkeys(layers)

    def accumulate(layer, args):
        m = _stats.local_batch_moments(args[0])
        old = totals[layer]
        if old is not None:
            m = _stats.combine(_stats.Moments(*(torch.stack(p) for p in zip(old, m, strict=True))))
        totals[layer] = m

    modes = {module: module.training for module in model.modules()}
    buffers = {
        layer: {k: b.clone() for k, b in layer.named_buffers() if b is not None} for layer in layers
    }
    settings = {
        layer: layer.stats if isinstance(layer, _BatchNorm) else layer.frozen
        for layer in layers
        if isinstance(layer, _BatchStatNorm)
    }
    hooks = [layer.register_forward_pre_hook(accumulate) for layer in layers]
    try:
        model.train()
        for layer in settings:  # during the pass every layer normalises with its batch
            if isinstance(layer, _BatchNorm):
                layer.stats = "auto"
            else:
                layer.frozen = False
        for k, batch in enumerate(loader):
            if max_batches is not None and k >= max_batches:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x.to(device) if device is not None else x)
    finally:
        for h in hooks:
            h.remove()
        for layer, setting in settings.items():
            if isinstance(layer, _BatchNorm):
                layer.stats = setting
            else:
                layer.frozen = setting
        for module, training in modes.items():
            module.training = training
        for layer, saved in buffers.items():
            for name, value in saved.items():
                getattr(layer, name).copy_(value)
    for layer, m in totals.items():
        if m is None:
            continue
        layer.running_mean.copy_(m.mean)
        if layer.running_var is not None:
            n = m.count
            layer.running_var.copy_(m.var * n / (n - 1).clamp_min(1))
    return model


def freeze_statistics(model: nn.Module, *, affine: bool = False) -> nn.Module:
    """Freeze the statistics of every batch-statistic norm of ``model``: each normalises
    with its stored running statistics and never updates them, in training too (the notes'
    fine-tuning question; Keras' ``trainable=False``). BatchNorm layers get
    ``stats='frozen'``; BatchRenorm, MeanOnlyBatchNorm, BatchInstanceNorm and SwitchableNorm
    get ``frozen=True``; PyTorch's own BatchNorm layers are replaced by mldl's first (same
    parameters, buffers and state-dict keys). With ``affine=True`` their weight and bias
    stop receiving gradients too. Returns the model (a new object only if ``model`` itself
    was a PyTorch BatchNorm layer)."""
    from .sync import convert

    model = convert(model)
    for layer in _batch_norm_layers(model):
        layer.frozen = True
        if affine:
            for p in (layer.weight, layer.bias):
                if p is not None:
                    p.requires_grad_(False)
    return model
