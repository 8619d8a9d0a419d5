"""Label-smoothed cross-entropy, forward + backward on CPU: mldl's fused losses against
PyTorch's and the notes' snippets, under two heaps.

Cross-entropy: float32 logits, N=4096 rows, K=32000 classes (one (N, K) tensor is 500 MiB),
class-index targets, ε=0.1. The anchor is ``F.cross_entropy(x, y, label_smoothing=0.1)``.
Linear + cross-entropy: N=2048, H=256, V=32000, no bias, gradients for the hidden states
and the weight; the anchor is ``F.cross_entropy(F.linear(h, W), y, label_smoothing=0.1)``.

Each mldl case is checked against the loss it reproduces before timing (loss rtol 1e-4;
gradient rtol 2e-4 plus 1e-5 of its largest entry: a float32 softmax over 32,000 terms
carries relative errors of order √K·2⁻²⁴ ≈ 1e-5, measured up to 5e-5 between PyTorch's
log_softmax and mldl's chunks):

* the notes' ``LabelSmoothingLoss`` (ε/(K-1) on the other classes) = ``smoothing='others'``;
* the notes' ``LabelSmoothingCrossEntropy`` and timm's (from its formula) = PyTorch's rule;
* the notes' OpenNMT KL loss, on ``log_softmax``, padding class 0 (a tenth of the rows are
  padding), ``reduction='sum'`` = ``smoothing='opennmt', ignore_index=0, reduction='sum'``;
* ``fused_cross_entropy`` with and without ``inplace_backward`` = PyTorch's.

Fairness. ``inplace_backward=True`` overwrites the logits with their gradient, so every
case, not only that one, gets a fresh copy of the logits before each call, outside the
time and the memory measured (a ``(prepare, call)`` case of the harness): all cases read
logits just written to the same buffer. Gradients are taken with ``torch.autograd.grad``,
as a model's backward hands them on to the layer that made the logits; ``.backward()`` on a
leaf makes autograd copy the in-place gradient into ``.grad`` (it cannot take over a buffer
that is the leaf's own memory), a cost of where the gradient goes rather than of the loss:
the row ``mldl inplace_backward, leaf .backward()`` measures it.

Two heaps: glibc's defaults (what a process gets: every buffer above 32 MiB is mmapped, so
each (N, K) tensor a call makes costs 128,000 page faults and the kernel's zeroing) and
``STEADY_HEAP`` (freed memory stays in the heap, as in a training loop's steady state: the
computation alone).

Where the time goes (torch.profiler, once, idle machine). PyTorch's call allocates four
(N, K) tensors (log_softmax, NLL's gradient, the smoothing term's sum, log_softmax's
backward): with the default heap each costs ~100-150 ms of page faults, most of its
~0.8-1 s. mldl's allocates one (the gradient). With the steady heap, mldl's ~90 ms are
softmax ~45%, its two ``amax`` per chunk ~20%, the Python loop over 128 chunks ~12%.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tests import notes_snippets as notes
from torch import Tensor

import mldl
from mldl.losses import fused_cross_entropy, linear_cross_entropy

from ._harness import (
    DEFAULT_HEAP,
    STEADY_HEAP,
    Case,
    peak_memory,
    table,
    time_in_fresh_process,
)

N, K, EPS, PAD = 4096, 32000, 0.1, 0
LINEAR_N, HIDDEN, VOCAB = 2048, 256, 32000
HEAPS = {"default heap": DEFAULT_HEAP, "steady heap": STEADY_HEAP}
# Rounds per group and heap: the steady heap's cross-entropy calls are ~0.1-0.3 s (a default
# heap's up to 3 s) and its time target is the closest, so it gets the most.
ROUNDS = {
    "ce": {"default heap": 7, "steady heap": 15},
    "linear": {"default heap": 7, "steady heap": 7},
}
MEMORY_JOBS = 2  # peak-memory processes run side by side: each measures only its own RSS
BUSY = 0.05  # warn when other work took more than this share of the CPUs during a timing
NOISY = 0.25  # flag a ratio whose interquartile range is wider than this fraction of it

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Spec:
    loss: str  # what it computes, for the table
    reference: str | None  # the case it must equal
    padded: bool = False  # its targets have padding rows (class PAD)
    leaf_backward: bool = False  # gradient by .backward() into the leaf's .grad


def timm_label_smoothing_ce(x: Tensor, target: Tensor, smoothing: float = EPS) -> Tensor:
    """timm's ``LabelSmoothingCrossEntropy`` (timm/loss/cross_entropy.py), from its formula."""
    logprobs = F.log_softmax(x, dim=-1)
    nll_loss = -logprobs.gather(dim=-1, index=target.unsqueeze(1)).squeeze(1)
    smooth_loss = -logprobs.mean(dim=-1)
    return ((1.0 - smoothing) * nll_loss + smoothing * smooth_loss).mean()


SPECS = {
    "native": Spec("uniform ε/K, mean", None),
    "notes LabelSmoothingLoss": Spec("others ε/(K-1), mean", None),
    "mldl smoothing='others'": Spec("others ε/(K-1), mean", "notes LabelSmoothingLoss"),
    "notes LabelSmoothingCrossEntropy": Spec("uniform ε/K, mean", "native"),
    "timm LabelSmoothingCrossEntropy": Spec("uniform ε/K, mean", "native"),
    "notes OpenNMT": Spec("OpenNMT KL, pad 0, sum", None, padded=True),
    "mldl smoothing='opennmt'": Spec("OpenNMT KL, pad 0, sum", "notes OpenNMT", padded=True),
    "mldl": Spec("uniform ε/K, mean", "native"),
    "mldl inplace_backward": Spec("uniform ε/K, mean", "native"),
    "mldl inplace_backward, leaf .backward()": Spec(
        "uniform ε/K, mean", "native", leaf_backward=True
    ),
}
LINEAR_SPECS = {
    "F.linear + native": Spec("uniform ε/K, mean", None),
    "mldl linear_cross_entropy": Spec("uniform ε/K, mean", "F.linear + native"),
}


def losses() -> dict[str, LossFn]:
    """Each case's loss of (logits, targets), named as in :data:`SPECS`."""
    opennmt = notes.OpenNMTLabelSmoothingLoss(EPS, K, ignore_index=PAD)

    def inplace(x: Tensor, y: Tensor) -> Tensor:
        return fused_cross_entropy(x, y, label_smoothing=EPS, inplace_backward=True)

    return {
        "native": lambda x, y: F.cross_entropy(x, y, label_smoothing=EPS),
        "notes LabelSmoothingLoss": notes.LabelSmoothingLoss(K, EPS),
        "mldl smoothing='others'": lambda x, y: fused_cross_entropy(
            x, y, label_smoothing=EPS, smoothing="others"
        ),
        "notes LabelSmoothingCrossEntropy": notes.LabelSmoothingCrossEntropy(EPS),
        "timm LabelSmoothingCrossEntropy": timm_label_smoothing_ce,
        "notes OpenNMT": lambda x, y: opennmt(F.log_softmax(x, dim=-1), y),
        "mldl smoothing='opennmt'": lambda x, y: fused_cross_entropy(
            x, y, ignore_index=PAD, reduction="sum", label_smoothing=EPS, smoothing="opennmt"
        ),
        "mldl": lambda x, y: fused_cross_entropy(x, y, label_smoothing=EPS),
        "mldl inplace_backward": inplace,
        "mldl inplace_backward, leaf .backward()": inplace,
    }


# ------------------------------------------------------------------------------ cases


def cases(group: str = "ce") -> dict[str, Case]:
    """Forward + backward of every case of ``group`` (``"ce"`` or ``"linear"``) on the same
    seeded inputs: the factory :func:`benchmarks._harness.time_in_fresh_process` calls."""
    mldl.checks(False)
    gen = torch.Generator().manual_seed(0)
    if group == "linear":
        return _linear_cases(gen)
    x = 3 * torch.randn(N, K, generator=gen)
    target = torch.randint(K, (N,), generator=gen)
    padded = target.masked_fill(torch.rand(N, generator=gen) < 0.1, PAD)
    logits = torch.empty_like(x)  # every call's fresh copy of x: inplace_backward eats it

    def refresh() -> None:
        logits.copy_(x)

    def forward_backward(loss_fn: LossFn, y: Tensor, leaf_backward: bool = False) -> Case:
        def call() -> tuple[Tensor, Tensor]:
            z = logits.detach().requires_grad_()
            loss = loss_fn(z, y)
            if leaf_backward:
                loss.backward()
                return loss.detach(), z.grad
            (grad,) = torch.autograd.grad(loss, z)
            return loss.detach(), grad

        return refresh, call

    fns = losses()
    return {
        name: forward_backward(fns[name], padded if spec.padded else target, spec.leaf_backward)
        for name, spec in SPECS.items()
    }


def _linear_cases(gen: torch.Generator) -> dict[str, Case]:
    h = torch.randn(LINEAR_N, HIDDEN, generator=gen)
    w = 3 * torch.randn(VOCAB, HIDDEN, generator=gen) / HIDDEN**0.5
    target = torch.randint(VOCAB, (LINEAR_N,), generator=gen)
    h.requires_grad_()
    w.requires_grad_()

    def native() -> tuple[Tensor, ...]:
        loss = F.cross_entropy(F.linear(h, w), target, label_smoothing=EPS)
        return loss.detach(), *torch.autograd.grad(loss, (h, w))

    def fused() -> tuple[Tensor, ...]:
        loss = linear_cross_entropy(h, w, target, label_smoothing=EPS)
        return loss.detach(), *torch.autograd.grad(loss, (h, w))

    return {"F.linear + native": native, "mldl linear_cross_entropy": fused}


def case(group: str, name: str) -> Case:
    """One case, for :func:`benchmarks._harness.peak_memory`'s fresh process."""
    return cases(group)[name]


def check_agreement(group: str) -> None:
    """Every case with a reference gives its loss (rtol 1e-4) and gradients (rtol 2e-4, atol
    a fraction of the largest entry: 1e-5 for the logits, 1e-4 for the linear layer's, sums
    of thousands of products of both signs), or raise. Runs here, one pair at a time."""
    specs = SPECS if group == "ce" else LINEAR_SPECS
    atol_of_max = 1e-5 if group == "ce" else 1e-4
    all_cases = cases(group)

    def run(name: str) -> tuple[Tensor, ...]:
        one = all_cases[name]
        if not isinstance(one, tuple):
            return one()
        prepare, call = one
        prepare()
        return tuple(t.clone() for t in call())  # the next refresh overwrites an in-place grad

    for name, spec in specs.items():
        if spec.reference is None:
            continue
        got, want = run(name), run(spec.reference)
        what = f"cross_entropy: {name} vs {spec.reference}"
        torch.testing.assert_close(
            got[0], want[0], rtol=1e-4, atol=0, msg=lambda m, w=what: f"{w}, loss: {m}"
        )
        for g, ref in zip(got[1:], want[1:], strict=True):
            atol = atol_of_max * ref.abs().max().item()
            torch.testing.assert_close(
                g, ref, rtol=2e-4, atol=atol, msg=lambda m, w=what: f"{w}, gradient: {m}"
            )


# -------------------------------------------------------------------------------- run

NOTES = """\
## Label-smoothed cross-entropy (`benchmarks/cross_entropy.py`)

Forward + backward on CPU, float32, ε={eps}, class-index targets. Cross-entropy: N={n},
K={k} logits (one (N, K) tensor is {nk_mib:.0f} MiB); the anchor is
`F.cross_entropy(x, y, label_smoothing={eps})`. The notes' snippets run verbatim
(`tests/notes_snippets.py`); OpenNMT's on `log_softmax(x)`, with padding class {pad} (a
tenth of its rows are padding) and `reduction='sum'`, as mldl's `smoothing='opennmt'` row.
Each mldl row was checked, before timing, to give the loss (rtol 1e-4) and gradient of
the row it reproduces: 'others' the notes' `LabelSmoothingLoss`, 'opennmt' the OpenNMT
snippet, the rest PyTorch's (as do the notes' `LabelSmoothingCrossEntropy` and timm's).

Fairness: `inplace_backward=True` overwrites the logits with their gradient, so *every*
case gets a fresh copy of the logits, written to the same buffer before each call, outside
the time and memory measured. Gradients come from `torch.autograd.grad`, as a model's
backward hands them on to the layer that made the logits; the last row shows what
`.backward()` on a leaf costs: autograd copies the in-place gradient into `.grad`, since it
cannot take over memory that is the leaf's own.

Two heaps, each timing group in a fresh process: **default** is glibc's defaults, what a
process gets: every buffer above 32 MiB is mmapped, so each (N, K) tensor a call allocates
is 128,000 fresh pages, faulted in and zeroed by the kernel on every call. **steady** keeps
freed memory in the heap (`STEADY_HEAP` in `_harness.py`, a training loop's steady state):
compute alone. Interleaved rounds after a warm-up (cross-entropy: {ce_rounds[default heap]}
with the default heap, {ce_rounds[steady heap]} with the steady one; linear:
{linear_rounds[default heap]} and {linear_rounds[steady heap]}); median and interquartile
range; `÷ anchor` is the median of the per-round ratios to the anchor's time.

Extra peak: what a fresh process's resident memory grows by during one call (median of
three, after a warm-up), under each heap; inputs excluded (the logits too, so the in-place
gradient is free), gradients included. The steady heap's peaks can be higher: a freed
buffer stays resident until a later one reuses it, and one that does not fit the holes
left by those freed before it grows the heap instead."""

LINEAR_NOTES = """\
Linear + cross-entropy: N={n} tokens, H={h}, V={v}, no bias; gradients for the hidden
states and the weight; the anchor is `F.cross_entropy(F.linear(h, W), y,
label_smoothing={eps})`, the (N, V) logits are {nv_mib:.0f} MiB."""


def _cell(median: float, q1: float, q3: float, digits: int = 0) -> str:
    return f"{median:.{digits}f} ({q1:.{digits}f}–{q3:.{digits}f})"


def _cpu_seconds() -> tuple[float, float]:
    """CPU seconds the machine has been busy (hypervisor steal included) and those this
    process and its finished children used (Linux)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait
    ours = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        ours += usage.ru_utime + usage.ru_stime
    return busy, ours


def _timed_with_others(group: str, anchor: str, heap: str):
    """The group's timings under ``heap``, and the share of the machine's CPU time that other
    work (other processes, hypervisor steal) took meanwhile: the timing's contention."""
    (busy, ours), start = _cpu_seconds(), time.perf_counter()
    timing = time_in_fresh_process(
        __name__, "cases", group, anchor=anchor, heap=HEAPS[heap], rounds=ROUNDS[group][heap]
    )
    (busy_after, ours_after), wall = _cpu_seconds(), time.perf_counter() - start
    others = (busy_after - busy) - (ours_after - ours)
    return timing, max(0.0, others / (wall * os.cpu_count()))


def _group(group: str, anchor: str, specs: dict[str, Spec]):
    """Time and measure the memory of ``group`` under each heap: its table rows; each case's
    ratios to the anchor keyed by (case, "time"|"memory", heap); noisy ratios; and the
    share of the CPUs other work took during each timing."""
    timings, busy = {}, {}
    for h in HEAPS:
        timings[h], busy[h] = _timed_with_others(group, anchor, h)
    with ThreadPoolExecutor(MEMORY_JOBS) as pool:  # after the timing: never beside it
        peaks = {
            (h, n): pool.submit(peak_memory, __name__, "case", group, n, heap=heap)
            for h, heap in HEAPS.items()
            for n in specs
        }
    memory = {h: {n: peaks[h, n].result() / 2**20 for n in specs} for h in HEAPS}
    rows, ratios, noisy = [], {}, []
    for name, spec in specs.items():
        row = [name, spec.loss]
        for h, timing in timings.items():
            ms = (1e3 * s for s in (timing.median(name), *timing.iqr(name)))
            ratio = timing.ratio(name)
            ratios[name, "time", h] = ratio[0]
            if name != anchor and ratio[2] - ratio[1] > NOISY * ratio[0]:
                noisy.append(f"{name} ({h})")
            row += [_cell(*ms), "1" if name == anchor else _cell(*ratio, digits=2)]
        for h, mib in memory.items():
            ratios[name, "memory", h] = mib[name] / mib[anchor]
        row.append(" / ".join(f"{mib[name]:.1f}" for mib in memory.values()))
        row.append(" / ".join(f"{ratios[name, 'memory', h]:.3g}" for h in memory))
        rows.append(row)
    return rows, ratios, noisy, busy


def run() -> str:
    check_agreement("ce")
    check_agreement("linear")
    ce_rows, ratios, noisy, ce_busy = _group("ce", "native", SPECS)
    linear_rows, linear_ratios, linear_noisy, linear_busy = _group(
        "linear", "F.linear + native", LINEAR_SPECS
    )
    ratios |= linear_ratios
    noisy += linear_noisy
    busy = {f"cross-entropy, {h}": b for h, b in ce_busy.items()}
    busy |= {f"linear, {h}": b for h, b in linear_busy.items()}

    header = ["case", "loss"]
    for h in HEAPS:
        header += [f"ms, {h}: median (IQR)", "÷ anchor (IQR)"]
    header += ["extra peak MiB, " + " / ".join(HEAPS), "÷ anchor's"]

    def verdict(case: str, what: str, limit: float, label: str) -> str:
        cells = []
        for h in HEAPS:
            r = ratios[case, what, h]
            cells.append(f"{h}: {r:.3g} ({'met' if r <= limit else '**not met**'})")
        return f"- {label} ≤ {limit}× the anchor's: " + "; ".join(cells)

    targets = [
        "Targets (ratio to the anchor, under each heap):",
        verdict("mldl", "time", 0.6, "`fused_cross_entropy` time"),
        verdict("mldl", "memory", 0.4, "`fused_cross_entropy` extra peak"),
        verdict("mldl inplace_backward", "memory", 0.05, "`inplace_backward=True` extra peak"),
        verdict("mldl linear_cross_entropy", "memory", 0.25, "`linear_cross_entropy` extra peak"),
        verdict("mldl linear_cross_entropy", "time", 1.3, "`linear_cross_entropy` time"),
    ]
    notes_text = NOTES.format(
        eps=EPS,
        n=N,
        k=K,
        nk_mib=N * K * 4 / 2**20,
        pad=PAD,
        ce_rounds=ROUNDS["ce"],
        linear_rounds=ROUNDS["linear"],
    )
    linear_text = LINEAR_NOTES.format(
        n=LINEAR_N, h=HIDDEN, v=VOCAB, eps=EPS, nv_mib=LINEAR_N * VOCAB * 4 / 2**20
    )
    parts = [notes_text, table(header, ce_rows), linear_text, table(header, linear_rows)]
    parts.append("\n".join(targets))
    contention = "; ".join(f"{what} {share:.0%}" for what, share in busy.items())
    parts.append(
        f"CPU time other work took during each timing (other processes, steal): {contention}."
    )
    if max(busy.values()) > BUSY:
        parts.append(
            f"**Warning**: above {BUSY:.0%}, other work competed for the CPUs during the timing; "
            "the times and ratios above are not the machine's alone."
        )
    if noisy:
        parts.append(f"Noisy (ratio IQR wider than {NOISY:.0%} of the ratio): {'; '.join(noisy)}.")
    return "\n\n".join(parts)
