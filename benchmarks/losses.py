"""Focal losses, forward + backward on CPU: mldl against kornia and the formula under autograd.

Softmax focal loss, N=4096 items, C=1000 classes, class-index targets, float32, α=0.25,
γ=2 and γ=0.5; sigmoid focal loss, N=4096, C=80 multi-label targets, γ=2, α=0.25.

Common footing. kornia's ``focal_loss`` (kornia/losses/focal.py) differs from
``mldl.losses.focal`` in two conventions, so each is called to compute the same number:

* α: kornia weights class 0 (background) by 1-α and every other class by α. mldl takes one
  α per class, so it gets ``alpha=[1-α, α, ..., α]``; the autograd formula uses that vector.
* ``'mean'``: kornia averages over the whole (N, C) loss map, dividing by C as well. So
  kornia runs with ``reduction='sum'`` and is divided by N, which is mldl's ``'mean'``.

The sigmoid row needs no adjusting: mldl's ``sigmoid_focal``, kornia's
``binary_focal_loss_with_logits`` and torchvision's formula all weight positives by α and
negatives by 1-α, and average over the N·C elements.

Before timing, each row checks that its cases give the same loss (rtol 1e-4) and the same
gradient. mldl's value checks are off (the default): the production path is timed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

import mldl

from ._harness import peak_memory, table, time_in_fresh_process

N, ALPHA = 4096, 0.25
TARGET = 0.5  # the project's goal: mldl's softmax focal in at most half kornia's time
ROUNDS = 21
NOISY = 0.25  # flag a ratio whose interquartile range is wider than this fraction of it

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Row:
    title: str
    kind: str  # "softmax" (class-index targets) or "sigmoid" (multi-label targets)
    gamma: float
    classes: int
    anchor: str


ROWS = {
    "softmax-g2": Row("softmax focal, γ=2, C=1000", "softmax", 2.0, 1000, anchor="kornia"),
    "softmax-g0.5": Row("softmax focal, γ=0.5, C=1000", "softmax", 0.5, 1000, anchor="kornia"),
    "sigmoid-g2": Row("sigmoid focal, γ=2, C=80", "sigmoid", 2.0, 80, anchor="autograd"),
}


# ------------------------------------------------------------------------ the formulas


def softmax_focal_formula(x: Tensor, y: Tensor, gamma: float, alpha: Tensor) -> Tensor:
    """The textbook softmax focal loss, left to autograd."""
    logp = x.log_softmax(1).gather(1, y[:, None]).squeeze(1)
    p = logp.exp()
    return (-alpha[y] * (1 - p) ** gamma * logp).mean()


def sigmoid_focal_formula(x: Tensor, t: Tensor, gamma: float, alpha: float) -> Tensor:
    """torchvision's ``sigmoid_focal_loss`` as written there, left to autograd."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    return (alpha_t * ce * (1 - p_t) ** gamma).mean()


def losses(row: Row) -> dict[str, LossFn]:
    """The row's three losses, on the common footing (see the module's docstring)."""
    g = row.gamma
    if row.kind == "sigmoid":
        return {
            "mldl": lambda x, t: mldl.losses.sigmoid_focal(x, t, gamma=g, alpha=ALPHA),
            "kornia": lambda x, t: kornia.losses.binary_focal_loss_with_logits(
                x, t, alpha=ALPHA, gamma=g, reduction="mean"
            ),
            "autograd": lambda x, t: sigmoid_focal_formula(x, t, g, ALPHA),
        }
    alpha = torch.full((row.classes,), ALPHA)
    alpha[0] = 1 - ALPHA  # kornia's convention: class 0 is the background
    return {
        "mldl": lambda x, y: mldl.losses.focal(x, y, gamma=g, alpha=alpha),
        "kornia": lambda x, y: (
            kornia.losses.focal_loss(x, y, alpha=ALPHA, gamma=g, reduction="sum") / x.shape[0]
        ),
        "autograd": lambda x, y: softmax_focal_formula(x, y, g, alpha),
    }


# ------------------------------------------------------------------------------ cases


def _forward_backward(loss_fn: LossFn, x: Tensor, target: Tensor) -> Callable[[], object]:
    def case() -> tuple[Tensor, Tensor]:
        z = x.detach().requires_grad_()
        loss = loss_fn(z, target)
        loss.backward()
        return loss.detach(), z.grad

    return case


def cases(row: str) -> dict[str, Callable[[], object]]:
    """Forward + backward of each loss of ``row`` on the same inputs (seeded): the factory
    :func:`benchmarks._harness.time_in_fresh_process` calls."""
    mldl.checks(False)
    spec = ROWS[row]
    gen = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(N, spec.classes, generator=gen)
    if spec.kind == "softmax":
        target = torch.randint(spec.classes, (N,), generator=gen)
    else:
        target = (torch.rand(N, spec.classes, generator=gen) < 0.05).float()
    return {name: _forward_backward(fn, x, target) for name, fn in losses(spec).items()}


def case(row: str, name: str) -> Callable[[], object]:
    """One case, for :func:`benchmarks._harness.peak_memory`'s fresh process."""
    return cases(row)[name]


def check_agreement(row: str, results: dict[str, tuple[Tensor, Tensor]]) -> None:
    """Every case's loss (rtol 1e-4) and gradient (rtol 1e-4, atol 1e-5 of its largest
    entry) equal the anchor's, or raise."""
    ref_loss, ref_grad = results[ROWS[row].anchor]
    atol = 1e-5 * ref_grad.abs().max().item()
    for name, (loss, grad) in results.items():
        what = f"losses {row}: {name} vs {ROWS[row].anchor}"
        torch.testing.assert_close(
            loss, ref_loss, rtol=1e-4, atol=0, msg=lambda m, w=what: f"{w}, loss: {m}"
        )
        torch.testing.assert_close(
            grad, ref_grad, rtol=1e-4, atol=atol, msg=lambda m, w=what: f"{w}, gradient: {m}"
        )


def saturated_gradient_is_finite(row: str) -> dict[str, bool]:
    """Whether each loss's gradient is finite at an item whose p_t rounds to 1 in float32."""
    spec = ROWS[row]
    x = torch.zeros(2, spec.classes)
    x[0, 0] = 30.0
    if spec.kind == "softmax":
        target = torch.tensor([0, 1])
    else:
        target = torch.zeros(2, spec.classes)
        target[0, 0] = 1.0
    finite = {}
    for name, fn in losses(spec).items():
        _, grad = _forward_backward(fn, x, target)()
        finite[name] = bool(torch.isfinite(grad).all())
    return finite


# -------------------------------------------------------------------------------- run


NOTES = """\
## Focal losses (`benchmarks/losses.py`)

Forward + backward on CPU, float32, N={n}, α={alpha}; kornia {kornia}. Softmax rows: C=1000,
class-index targets. Sigmoid row: C=80 multi-label targets (5% positives); its `autograd`
case is torchvision's formula.

Common footing (kornia's conventions, read in `kornia/losses/focal.py`): kornia weights
class 0 by 1-α and the other classes by α, so mldl gets `alpha=[1-α, α, ..., α]`; kornia's
`'mean'` also divides by C, so kornia runs with `reduction='sum'` and is divided by N. Each
row's cases were checked to give the same loss (rtol 1e-4) and gradient before timing.

Time: each row in a fresh process whose heap keeps freed memory (glibc's trim and mmap
thresholds raised, as in a training loop's steady state; see `STEADY_HEAP` in
`_harness.py`), {rounds} rounds of interleaved calls after a warm-up, median and
interquartile range; `mldl ÷ case` is the per-round ratio of mldl's time to
the case's (below 1: mldl is faster). Extra peak: what a fresh process's resident memory
grows by during one call (median of three, after a warm-up call); inputs excluded, gradient
included (one (N, C) float32 tensor is {nc_mib:.1f} MiB for C=1000). Finite grad: the
gradient at an item whose p_t rounds to 1 (a logit margin of 30)."""


def run() -> str:
    rows, summary, noisy = [], [], []
    for row, spec in ROWS.items():
        row_cases = cases(row)
        check_agreement(row, {name: fn() for name, fn in row_cases.items()})
        timings = time_in_fresh_process(__name__, "cases", row, anchor=spec.anchor, rounds=ROUNDS)
        finite = saturated_gradient_is_finite(row)
        for name in row_cases:
            ms = 1e3 * timings.median(name)
            q1, q3 = (1e3 * q for q in timings.iqr(name))
            ratio, r1, r3 = timings.ratio("mldl", to=name)
            if r3 - r1 > NOISY * ratio:
                noisy.append(f"{spec.title} / {name}")
            mib = peak_memory(__name__, "case", row, name) / 2**20
            rows.append(
                [
                    spec.title,
                    name,
                    f"{ms:.2f} ({q1:.2f}–{q3:.2f})",
                    "1" if name == "mldl" else f"{ratio:.2f} ({r1:.2f}–{r3:.2f})",
                    f"{mib:.1f}",
                    "yes" if finite[name] else "**no**",
                ]
            )
        if spec.kind == "softmax":
            ratio = timings.ratio("mldl", to="kornia")[0]
            verdict = "met" if ratio <= TARGET else "**not met**"
            summary.append(f"- {spec.title}: mldl ÷ kornia = {ratio:.2f} ({verdict})")

    header = ["benchmark", "case", "ms per call, median (IQR)", "mldl ÷ case, median (IQR)"]
    header += ["extra peak MiB", "finite grad at p_t=1"]
    notes = NOTES.format(
        n=N, alpha=ALPHA, kornia=kornia.__version__, rounds=ROUNDS, nc_mib=N * 1000 * 4 / 2**20
    )
    target = f"Target: mldl's softmax focal in ≤ {TARGET}× kornia's time.\n" + "\n".join(summary)
    parts = [notes, table(header, rows), target]
    if noisy:
        parts.append(f"Noisy (ratio IQR wider than {NOISY:.0%} of the ratio): {'; '.join(noisy)}.")
    return "\n\n".join(parts)
