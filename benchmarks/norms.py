"""Normalization layers, forward + backward in training mode on CPU: mldl against PyTorch's
layers and against the papers' formulas left to autograd.

Input (N, C, H, W) = (32, 64, 32, 32) float32 (2,097,152 values, 8 MiB) for the image
layers; ScaleNorm and RMSNorm normalise the last dimension of a (B, T, D) = (64, 128, 256)
float32 tensor, the same number of values. A call is one training step of the layer alone:
the input requires grad, the loss is ``(y * cotangent).sum()`` with a fixed random
cotangent, and the backward computes the input's and the parameters' gradients (parameter
gradients reset to None before each call, so none is accumulated). Batch-statistic layers
update their running statistics, as in training.

The cases, in groups; each group is timed in its own fresh process, its cases interleaved,
and every group also times the anchor, ``torch.nn.BatchNorm2d`` on the image input, so that
each case's ratio to it is taken round by round in the same process:

* mldl's ``BatchNorm2d`` (stats='auto'), ``GroupNorm`` (32 groups), ``LayerNorm`` over
  (C, H, W) and ``InstanceNorm2d`` (affine) against their PyTorch twins.
* ``BatchRenorm2d`` (r_max=3, d_max=5, no ramp) against :class:`PaperBatchRenorm2d`: the
  paper's formula under autograd (batch moments from ``torch.var_mean``, r and d computed
  without gradient and clipped, ``(x - μ_B)/σ_B · r + d``, the affine).
* ``BatchInstanceNorm2d`` against :class:`PaperBatchInstanceNorm2d`: ``F.batch_norm`` plus
  ``F.instance_norm`` blended by ρ, as the official code does.
* ``SwitchableNorm2d`` against :class:`OfficialSwitchNorm2d`: the official code's approach
  (instance moments with ``x.mean``/``x.var`` over H·W, layer and batch moments from them,
  softmax weights, then normalise), with biased variances, mldl's convention.
* ``MeanOnlyBatchNorm2d``, ``ScaleNorm`` and ``RMSNorm`` against the formula written out
  (and ``torch.nn.RMSNorm``): informative rows.

The twins hold the same running statistics as mldl's layers and update them the same way
(momentum 0.1, unbiased variance stored), so both do the same work. Before timing, every
mldl layer is checked against its twin from the same state: output and input gradient (rtol
1e-4, atol 1e-4 of the reference's largest entry, for float32 sums over up to 32,768 values,
with per-channel offsets up to ±7), parameter gradients (rtol 1e-3, atol 1e-3 of the largest
entry: ρ's and the softmax weights' gradients are sums over all 2M values) and the running
statistics after the call. The parameters are random (the same in both), and so are the
input's per-channel scale and offset, chosen so that Batch Renorm's r and d clip in some
channels and not others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import mldl
from mldl import norm

from ._harness import peak_memory, table, time_in_fresh_process

N, C, H, W = 32, 64, 32, 32
SEQ = (64, 128, 256)  # (B, T, D) for ScaleNorm and RMSNorm: as many values as (N, C, H, W)
EPS = 1e-5
MOMENTUM = 0.1
R_MAX, D_MAX = 3.0, 5.0
ROUNDS = 21
MIN_SECONDS = 0.1  # each measurement: about this long, then averaged per call
NOISY = 0.25  # flag a ratio whose interquartile range is wider than this fraction of it
ANCHOR = "bn"  # the key of torch.nn.BatchNorm2d in every group

# ----------------------------------------------------------------- the papers' formulas


def _update_running(module: nn.Module, mean: Tensor, var: Tensor, count: int) -> None:
    """PyTorch's rule, as mldl's layers do it: lerp by the momentum, unbiased variance."""
    with torch.no_grad():
        module.running_mean.lerp_(mean.detach(), MOMENTUM)
        module.running_var.lerp_(var.detach() * (count / (count - 1)), MOMENTUM)


class _Twin(nn.Module):
    """Affine parameters and running statistics under PyTorch's names, so that the state
    of mldl's layer loads into its twin."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def _channel(self, t: Tensor) -> Tensor:
        return t.view(1, -1, 1, 1)


class PaperBatchRenorm2d(_Twin):
    r"""Batch Renormalization (Ioffe 2017, Algorithm 1) under autograd:
    :math:`y = \gamma\,(\frac{x - \mu_B}{\sigma_B} r + d) + \beta` with
    :math:`\sigma_B = \sqrt{\mathrm{var}_B + \epsilon}`, r and d clipped and treated as
    constants. The moving averages that give r and d (``renorm_mean``, ``renorm_var``) are
    kept apart from the inference statistics, as mldl (and Keras) keep them."""

    def __init__(self, c: int, renorm_momentum: float = 0.01) -> None:
        super().__init__(c)
        self.renorm_momentum = renorm_momentum
        self.register_buffer("renorm_mean", torch.zeros(c))
        self.register_buffer("renorm_var", torch.ones(c))

    def forward(self, x: Tensor) -> Tensor:
        var, mu = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        sigma_b = torch.sqrt(var + EPS)
        with torch.no_grad():
            sigma = torch.sqrt(self.renorm_var + EPS)
            r = (sigma_b / sigma).clamp(1 / R_MAX, R_MAX)
            d = ((mu - self.renorm_mean) / sigma).clamp(-D_MAX, D_MAX)
            self.renorm_mean.lerp_(mu, self.renorm_momentum)
            self.renorm_var.lerp_(var, self.renorm_momentum)
        _update_running(self, mu, var, x.numel() // x.shape[1])
        ch = self._channel
        x_hat = (x - ch(mu)) / ch(sigma_b) * ch(r) + ch(d)
        return ch(self.weight) * x_hat + ch(self.bias)


class PaperBatchInstanceNorm2d(_Twin):
    r"""Batch-Instance Normalization (Nam & Kim 2018) as the official code computes it:
    ``F.batch_norm`` with weight γρ plus ``F.instance_norm`` with weight γ(1 - ρ), ρ clamped
    to [0, 1] (there by the optimizer, here in the forward, as mldl does)."""

    def __init__(self, c: int) -> None:
        super().__init__(c)
        self.rho = nn.Parameter(torch.ones(c))

    def forward(self, x: Tensor) -> Tensor:
        rho = self.rho.clamp(0.0, 1.0)
        out_bn = F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight * rho,
            self.bias,
            True,
            MOMENTUM,
            EPS,
        )
        out_in = F.instance_norm(x, weight=self.weight * (1 - rho), eps=EPS)
        return out_bn + out_in


class OfficialSwitchNorm2d(_Twin):
    """Switchable Normalization (Luo et al. 2019) as the official ``SwitchNorm2d`` computes
    it: IN moments over H·W, LN and BN moments from them (E[x²] = σ² + μ²), softmax-weighted
    mean and variance, ``(x - mean) / sqrt(var + eps)``, the affine. One change: biased
    instance variances (``correction=0``), mldl's convention (the official unbiased
    ``x.var`` costs the same and gives NaN on 1×1 maps)."""

    def __init__(self, c: int) -> None:
        super().__init__(c)
        self.mean_weight = nn.Parameter(torch.ones(3))
        self.var_weight = nn.Parameter(torch.ones(3))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        x = x.view(n, c, -1)
        mean_in = x.mean(-1, keepdim=True)
        var_in = x.var(-1, keepdim=True, correction=0)
        mean_ln = mean_in.mean(1, keepdim=True)
        temp = var_in + mean_in**2
        var_ln = temp.mean(1, keepdim=True) - mean_ln**2
        mean_bn = mean_in.mean(0, keepdim=True)
        var_bn = temp.mean(0, keepdim=True) - mean_bn**2
        _update_running(self, mean_bn.view(-1), var_bn.view(-1), n * h * w)
        mw, vw = self.mean_weight.softmax(0), self.var_weight.softmax(0)
        mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
        var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
        x = (x - mean) / (var + EPS).sqrt()
        return x.view(n, c, h, w) * self._channel(self.weight) + self._channel(self.bias)


class MeanOnlyFormula(nn.Module):
    """Mean-only batch normalization written out: ``x - x.mean((0, 2, 3)) + b``, with the
    running mean updated as mldl's layer does."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean((0, 2, 3))
        with torch.no_grad():
            self.running_mean.lerp_(mean, MOMENTUM)
        return x - mean.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ScaleNormFormula(nn.Module):
    """ScaleNorm written out: ``g · x / max(‖x‖, eps)`` over the last dimension."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.tensor(math.sqrt(d)))

    def forward(self, x: Tensor) -> Tensor:
        return self.g * x / x.norm(dim=-1, keepdim=True).clamp_min(EPS)


class RMSNormFormula(nn.Module):
    """RMSNorm written out: ``x · rsqrt(mean(x²) + eps) · γ``, eps the float32 machine
    epsilon (``torch.nn.RMSNorm``'s default, which mldl's keeps)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: Tensor) -> Tensor:
        eps = torch.finfo(x.dtype).eps
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight


# ------------------------------------------------------------------------------ groups


@dataclass(frozen=True)
class Group:
    """A group of cases timed together: the anchor, mldl's layer, its twin and any extra
    cases. ``layers`` maps each case (but the anchor) to its label and a constructor;
    ``twin`` names the case mldl's layer is checked against and compared to (the anchor's
    key for BatchNorm); ``target`` is (``'twin'`` or ``'bn'``, the most mldl ÷ that)."""

    title: str
    layers: dict[str, tuple[str, Callable[[], nn.Module]]]
    twin: str
    target: tuple[str, float] | None = None
    seq: bool = False  # input (B, T, D) instead of (N, C, H, W)


GROUPS = {
    "batchnorm": Group(
        "BatchNorm2d",
        {"mldl": ("mldl BatchNorm2d (stats='auto')", lambda: norm.BatchNorm2d(C))},
        twin=ANCHOR,
        target=("twin", 1.05),
    ),
    "groupnorm": Group(
        "GroupNorm, 32 groups",
        {
            "mldl": ("mldl GroupNorm", lambda: norm.GroupNorm(32, C)),
            "torch": ("torch.nn.GroupNorm", lambda: nn.GroupNorm(32, C)),
        },
        twin="torch",
        target=("twin", 1.05),
    ),
    "layernorm": Group(
        "LayerNorm over (C, H, W)",
        {
            "mldl": ("mldl LayerNorm", lambda: norm.LayerNorm([C, H, W])),
            "torch": ("torch.nn.LayerNorm", lambda: nn.LayerNorm([C, H, W])),
        },
        twin="torch",
        target=("twin", 1.05),
    ),
    "instancenorm": Group(
        "InstanceNorm2d, affine",
        {
            "mldl": ("mldl InstanceNorm2d", lambda: norm.InstanceNorm2d(C, affine=True)),
            "torch": ("torch.nn.InstanceNorm2d", lambda: nn.InstanceNorm2d(C, affine=True)),
        },
        twin="torch",
        target=("twin", 1.05),
    ),
    "batchrenorm": Group(
        "Batch Renorm, r_max=3, d_max=5",
        {
            "mldl": ("mldl BatchRenorm2d", lambda: norm.BatchRenorm2d(C, r_max=R_MAX, d_max=D_MAX)),
            "paper": ("paper's formula, autograd", lambda: PaperBatchRenorm2d(C)),
        },
        twin="paper",
        target=("bn", 1.2),
    ),
    "batchinstance": Group(
        "Batch-Instance Norm",
        {
            "mldl": ("mldl BatchInstanceNorm2d", lambda: norm.BatchInstanceNorm2d(C)),
            "paper": ("BN + IN blended by ρ (official code)", lambda: PaperBatchInstanceNorm2d(C)),
        },
        twin="paper",
        target=("bn", 2.5),
    ),
    "switchable": Group(
        "Switchable Norm",
        {
            "mldl": ("mldl SwitchableNorm2d", lambda: norm.SwitchableNorm2d(C)),
            "official": ("official code's approach, autograd", lambda: OfficialSwitchNorm2d(C)),
        },
        twin="official",
        target=("bn", 2.5),
    ),
    "meanonly": Group(
        "Mean-only BatchNorm",
        {
            "mldl": ("mldl MeanOnlyBatchNorm2d", lambda: norm.MeanOnlyBatchNorm2d(C)),
            "formula": ("x - x.mean((0, 2, 3)) + b", lambda: MeanOnlyFormula(C)),
        },
        twin="formula",
    ),
    "scalenorm": Group(
        "ScaleNorm, (64, 128, 256)",
        {
            "mldl": ("mldl ScaleNorm", lambda: norm.ScaleNorm(SEQ[-1])),
            "formula": ("g·x / max(‖x‖, eps)", lambda: ScaleNormFormula(SEQ[-1])),
        },
        twin="formula",
        seq=True,
    ),
    "rmsnorm": Group(
        "RMSNorm, (64, 128, 256)",
        {
            "mldl": ("mldl RMSNorm", lambda: norm.RMSNorm(SEQ[-1])),
            "formula": ("x·rsqrt(mean(x²) + eps)·γ", lambda: RMSNormFormula(SEQ[-1])),
            "torch": ("torch.nn.RMSNorm", lambda: nn.RMSNorm(SEQ[-1])),
        },
        twin="formula",
        seq=True,
    ),
}

ANCHOR_LABEL = "torch.nn.BatchNorm2d (anchor)"


def labels(group: str) -> dict[str, str]:
    """Each case's label, the anchor's first."""
    return {ANCHOR: ANCHOR_LABEL} | {k: v[0] for k, v in GROUPS[group].layers.items()}


# ------------------------------------------------------------------------------ cases


def inputs(seq: bool) -> tuple[Tensor, Tensor]:
    """The input and the cotangent (seeded). Image input: each channel has its own scale
    (0.25 to 4) and offset (-7 to 7), so that Batch Renorm's r and d clip in some
    channels (its moving averages start at mean 0, variance 1)."""
    gen = torch.Generator().manual_seed(0)
    if seq:
        x = torch.randn(SEQ, generator=gen)
    else:
        scale = torch.exp(2.8 * torch.rand(C, generator=gen) - 1.4).view(1, C, 1, 1)
        shift = (14 * torch.rand(C, generator=gen) - 7).view(1, C, 1, 1)
        x = torch.randn(N, C, H, W, generator=gen) * scale + shift
    return x, torch.randn(x.shape, generator=gen)


def layers(group: str) -> dict[str, nn.Module]:
    """Fresh layers of the group, anchor included, in training mode. mldl's layer gets
    random parameters (seeded), and the other cases its state: the same parameters and
    running statistics wherever the names match."""
    spec = GROUPS[group]
    built = {ANCHOR: nn.BatchNorm2d(C)} | {k: make() for k, (_, make) in spec.layers.items()}
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in built["mldl"].named_parameters():
            if name == "rho":
                p.copy_(torch.rand(p.shape, generator=gen))
            elif name == "bias":
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.mul_(1 + 0.3 * torch.randn(p.shape, generator=gen))
        state = built["mldl"].state_dict()
        for key, layer in built.items():
            if key != "mldl":
                for name, t in [*layer.named_parameters(), *layer.named_buffers()]:
                    if name in state and state[name].shape == t.shape:
                        t.copy_(state[name])
    return {k: layer.train() for k, layer in built.items()}


def _forward_backward(layer: nn.Module, x: Tensor, cotangent: Tensor) -> Callable[[], object]:
    params = list(layer.parameters())

    def case() -> tuple[Tensor, Tensor]:
        for p in params:
            p.grad = None
        z = x.detach().requires_grad_()
        y = layer(z)
        (y * cotangent).sum().backward()
        return y.detach(), z.grad

    return case


def cases(group: str) -> dict[str, Callable[[], object]]:
    """Forward + backward of each case of ``group`` on the same seeded input (the anchor on
    the image input): the factory :func:`benchmarks._harness.time_in_fresh_process` calls."""
    mldl.checks(False)
    spec = GROUPS[group]
    image, image_cot = inputs(seq=False)
    x, cot = inputs(seq=True) if spec.seq else (image, image_cot)
    return {
        key: (
            _forward_backward(layer, image, image_cot)
            if key == ANCHOR
            else _forward_backward(layer, x, cot)
        )
        for key, layer in layers(group).items()
    }


def case(group: str, key: str) -> Callable[[], object]:
    """One case, for :func:`benchmarks._harness.peak_memory`'s fresh process."""
    return cases(group)[key]


def check_agreement(group: str) -> None:
    """mldl's layer and its twin, from the same state, give the same output, input and
    parameter gradients and running statistics after one call (tolerances: the module's
    docstring), or raise. So do the group's extra cases."""
    spec = GROUPS[group]
    x, cot = inputs(spec.seq)
    built = layers(group)
    ref_key = spec.twin
    results = {}
    for key in [k for k in built if k != ANCHOR] + ([ANCHOR] if ref_key == ANCHOR else []):
        y, grad = _forward_backward(built[key], x, cot)()
        params = {n: p.grad for n, p in built[key].named_parameters()}
        buffers = {n: b for n, b in built[key].named_buffers() if n != "num_batches_tracked"}
        results[key] = (y, grad, params, buffers)
    ref_y, ref_grad, ref_params, ref_buffers = results[ref_key]
    for key, (y, grad, params, buffers) in results.items():
        what = f"norms {group}: {key} vs {ref_key}"

        def close(a, b, part, rtol=1e-4, scale=1e-4, what=what):
            atol = scale * b.abs().max().item()
            torch.testing.assert_close(
                a, b, rtol=rtol, atol=atol, msg=lambda m: f"{what}, {part}: {m}"
            )

        close(y, ref_y, "output")
        close(grad, ref_grad, "input gradient")
        for name in params.keys() & ref_params.keys():
            close(params[name], ref_params[name], f"gradient of {name}", rtol=1e-3, scale=1e-3)
        for name in buffers.keys() & ref_buffers.keys():
            close(buffers[name], ref_buffers[name], f"buffer {name}")


# -------------------------------------------------------------------------------- run


NOTES = """\
## Normalization layers (`benchmarks/norms.py`)

Forward + backward in training mode on CPU, float32: input (N, C, H, W) = ({n}, {c}, {h},
{w}) requiring grad, loss `(y * cotangent).sum()` with a fixed random cotangent, parameter
gradients reset before each call, running statistics updated. ScaleNorm and RMSNorm: the
last dimension of a (B, T, D) = {seq} input, as many values as the image input (so their
÷ BN column compares equal sizes, different layouts).

Twins: PyTorch's layer where PyTorch has one; else the paper's formula left to autograd,
written in the benchmark: Batch Renorm from Algorithm 1 (`torch.var_mean`, r and d detached
and clipped, `(x - μ_B)/σ_B · r + d`, affine); Batch-Instance Norm as its official code
(`F.batch_norm` with weight γρ + `F.instance_norm` with weight γ(1 - ρ)); Switchable Norm
as its official code (IN moments by `x.mean`/`x.var` over H·W, LN and BN moments from them,
softmax weights, normalise; biased variances, mldl's convention). The twins keep and update
the same running statistics. Before timing, each mldl layer was checked against its twin
from the same random state: output, input gradient (rtol 1e-4, atol 1e-4 of the largest
entry), parameter gradients (1e-3) and running statistics.

Time: each group of cases in a fresh process whose heap keeps freed memory (see
`STEADY_HEAP` in `_harness.py`), interleaved with `torch.nn.BatchNorm2d` on the image input
(the anchor, timed in every group), {rounds} rounds after a warm-up, median and
interquartile range; the ratios are medians (IQR) of per-round ratios in that group's process.
The anchor's row is its time in the BatchNorm2d group; across the groups' processes its
median ranged over {bn_lo:.2f}–{bn_hi:.2f} ms. Extra peak: what a fresh process's resident
memory grows by during one call (median of three, after a warm-up call): the input excluded,
the output, the saved activations and the gradients included (one input-sized float32 tensor
is {mib:.0f} MiB)."""


def run() -> str:
    rows, summary, noisy, bn_ms = [], [], [], []
    for group, spec in GROUPS.items():
        check_agreement(group)
        timings = time_in_fresh_process(
            __name__, "cases", group, anchor=ANCHOR, rounds=ROUNDS, min_seconds=MIN_SECONDS
        )
        bn_ms.append(1e3 * timings.median(ANCHOR))
        for key, label in labels(group).items():
            if key == ANCHOR and group != "batchnorm":
                continue  # one row for the anchor: its time in the BatchNorm2d group
            ms = 1e3 * timings.median(key)
            q1, q3 = (1e3 * q for q in timings.iqr(key))
            ratios = []
            for to in (ANCHOR, spec.twin):
                ratio, r1, r3 = timings.ratio(key, to=to)
                ratios.append("1" if key == to else f"{ratio:.2f} ({r1:.2f}–{r3:.2f})")
                flag = f"{label} ÷ {labels(group)[to]}"
                if key != to and r3 - r1 > NOISY * ratio and flag not in noisy:
                    noisy.append(flag)
            mib = peak_memory(__name__, "case", group, key) / 2**20
            rows.append(
                [
                    spec.title,
                    f"**{label}**" if key == "mldl" else label,
                    f"{ms:.2f} ({q1:.2f}–{q3:.2f})",
                    *ratios,
                    f"{mib:.1f}",
                ]
            )
        if spec.target is not None:
            against, limit = spec.target
            to = ANCHOR if against == "bn" else spec.twin
            ratio, r1, r3 = timings.ratio("mldl", to=to)
            whom = labels(group)[to].replace(" (anchor)", "")
            verdict = "met" if ratio <= limit else "**not met**"
            if r1 <= limit < r3:
                verdict += " (the IQR straddles the target)"
            summary.append(
                f"- {labels(group)['mldl']} ≤ {limit}× {whom}: {ratio:.2f} "
                f"(IQR {r1:.2f}–{r3:.2f}), {verdict}"
            )

    header = ["group", "case", "ms per call, median (IQR)", "÷ native BatchNorm2d"]
    header += ["÷ twin (the group's `1`)", "extra peak MiB"]
    notes = NOTES.format(
        n=N,
        c=C,
        h=H,
        w=W,
        seq=SEQ,
        rounds=ROUNDS,
        bn_lo=min(bn_ms),
        bn_hi=max(bn_ms),
        mib=N * C * H * W * 4 / 2**20,
    )
    parts = [notes, table(header, rows), "Targets (median per-round ratio):\n" + "\n".join(summary)]
    if noisy:
        parts.append(f"Noisy (ratio IQR wider than {NOISY:.0%} of the ratio): {'; '.join(noisy)}.")
    return "\n\n".join(parts)
