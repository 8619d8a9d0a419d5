"""Linear-chain CRF on CPU: mldl's ``LinearChainCRF`` against pytorch-crf (``torchcrf.CRF``).

Batch 64, length 100, 20 tags, float32, a padding mask (the first sequence full, the others
of random lengths from 50 to 100), the same parameters in both modules.

* NLL forward + backward: ours ``crf(em, tags, mask, reduction="sum")``, theirs
  ``-crf(em, tags, mask)`` (pytorch-crf returns the log-likelihood, summed by default); the
  gradient reaches the emissions and the three parameter tensors in both.
* Viterbi: ours ``crf.decode(em, mask)`` (a (B, T) tensor padded with -1 and the scores),
  theirs ``crf.decode(em, mask)`` (a list of lists), both under ``torch.no_grad()``.

Before timing, each pair is checked to compute the same thing: the NLL to rtol 1e-5, the
gradients of the emissions and of the parameters to 1e-4 relative, or absolute near 0
(pytorch-crf works in float32 log space, mldl in float64), the decoded paths exactly. mldl's
value checks are off (the default): the production path is timed. Each task is timed with
one intra-op thread and with torch's default count, each in a fresh process.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchcrf

import mldl
from mldl.pgm import LinearChainCRF

from ._harness import table, time_in_fresh_process

B, T, K = 64, 100, 20
TARGET = 0.5  # the goal: mldl in at most half pytorch-crf's time, for each task
ROUNDS = 9
NOISY = 0.25  # flag a ratio whose interquartile range is wider than this fraction of it
TASKS = {"nll": "NLL forward + backward", "viterbi": "Viterbi decode"}
PARAMS = ("transitions", "start_transitions", "end_transitions")


def _setup(seed: int = 0):
    """The two modules, with the same parameters, and the inputs (seeded)."""
    mldl.checks(False)
    gen = torch.Generator().manual_seed(seed)
    ours = LinearChainCRF(K, batch_first=True)
    theirs = torchcrf.CRF(K, batch_first=True)
    with torch.no_grad():
        for name in PARAMS:
            value = torch.randn(getattr(ours, name).shape, generator=gen) * 0.5
            getattr(ours, name).copy_(value)
            getattr(theirs, name).copy_(value)
    emissions = 2 * torch.randn(B, T, K, generator=gen)
    tags = torch.randint(0, K, (B, T), generator=gen)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=gen)
    lengths[0] = T  # pytorch-crf: the first timestep on, a full-length sequence present
    mask = torch.arange(T) < lengths[:, None]
    return ours, theirs, emissions, tags, mask


def _nll_case(module, loss_fn, emissions) -> Callable[[], object]:
    def case():
        for p in module.parameters():
            p.grad = None
        em = emissions.detach().requires_grad_()
        loss = loss_fn(em)
        loss.backward()
        grads = [getattr(module, n).grad for n in PARAMS]
        return loss.detach(), em.grad, grads

    return case


def _decode_case(module, emissions, mask) -> Callable[[], object]:
    def case():
        with torch.no_grad():
            return module.decode(emissions, mask)

    return case


def cases(task: str, threads: int = 0) -> dict[str, Callable[[], object]]:
    """mldl's and pytorch-crf's call for ``task``: the factory the fresh process calls.
    ``threads``: torch's intra-op threads there (0: torch's default)."""
    if threads:
        torch.set_num_threads(threads)
    ours, theirs, emissions, tags, mask = _setup()
    if task == "nll":
        return {
            "mldl": _nll_case(ours, lambda em: ours(em, tags, mask, reduction="sum"), emissions),
            "pytorch-crf": _nll_case(theirs, lambda em: -theirs(em, tags, mask), emissions),
        }
    return {
        "mldl": _decode_case(ours, emissions, mask),
        "pytorch-crf": _decode_case(theirs, emissions, mask),
    }


def check_agreement(task: str) -> None:
    """Both cases compute the same loss and gradients, or decode the same paths."""
    got = {name: case() for name, case in cases(task).items()}
    if task == "nll":
        (l1, g1, p1), (l2, g2, p2) = got["mldl"], got["pytorch-crf"]
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-4)
        for a, b in zip(p1, p2, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)
        return
    (paths, _), lists = got["mldl"], got["pytorch-crf"]
    for row, expected in zip(paths.tolist(), lists, strict=True):
        if row[: len(expected)] != expected or any(t != -1 for t in row[len(expected) :]):
            raise AssertionError("crf benchmark: mldl and pytorch-crf decode different paths")


# -------------------------------------------------------------------------------- run

NOTES = """\
## Linear-chain CRF (`benchmarks/crf.py`)

CPU, float32, batch {b}, length {t}, {k} tags, a padding mask (lengths {lo}–{t}, the first
sequence full); pytorch-crf {version} with the same parameters. NLL: forward + backward of
mldl's `crf(em, tags, mask, reduction="sum")` against pytorch-crf's `-crf(em, tags, mask)`
(its log-likelihood, summed by default), gradients into the emissions and the three
parameter tensors. Viterbi: `crf.decode(em, mask)` in both (mldl returns a padded tensor,
pytorch-crf a list of lists), under `torch.no_grad()`. Before timing, the losses (rtol
1e-5), gradients (1e-4) and decoded paths (exactly) were checked to agree.

Time: each task and thread count in a fresh process, {rounds} rounds of interleaved calls
after a warm-up, median and interquartile range; `mldl ÷ pytorch-crf` is the per-round ratio
(below 1: mldl is faster). Threads: torch's intra-op threads (`default` is torch's own
choice on this machine). On a shared 2-core machine the two-thread rows are noisy: a
second thread that waits for a busy core slows both libraries down, by different amounts."""


def run() -> str:
    default = torch.get_num_threads()
    rows, summary, noisy = [], [], []
    for task, title in TASKS.items():
        check_agreement(task)
        for threads, label in ((1, "1"), (0, f"default ({default})")):
            where = "1 thread" if threads == 1 else f"{label} threads"
            timings = time_in_fresh_process(
                __name__, "cases", task, threads, anchor="pytorch-crf", rounds=ROUNDS
            )
            ratio, r1, r3 = timings.ratio("mldl")
            if r3 - r1 > NOISY * ratio:
                noisy.append(f"{title}, {where}")
            cells = []
            for name in ("mldl", "pytorch-crf"):
                q1, q3 = (1e3 * q for q in timings.iqr(name))
                cells.append(f"{1e3 * timings.median(name):.1f} ({q1:.1f}–{q3:.1f})")
            rows.append([title, label, *cells, f"{ratio:.2f} ({r1:.2f}–{r3:.2f})"])
            verdict = "met" if ratio <= TARGET else "**not met**"
            summary.append(f"- {title}, {where}: mldl ÷ pytorch-crf = {ratio:.2f} ({verdict})")
    header = [
        "task",
        "threads",
        "mldl ms, median (IQR)",
        "pytorch-crf ms, median (IQR)",
        "mldl ÷ pytorch-crf, median (IQR)",
    ]
    notes = NOTES.format(b=B, t=T, k=K, lo=T // 2, version=_version(), rounds=ROUNDS)
    target = f"Target: each task in ≤ {TARGET}× pytorch-crf's time.\n" + "\n".join(summary)
    parts = [notes, table(header, rows), target]
    if noisy:
        parts.append(f"Noisy (ratio IQR wider than {NOISY:.0%} of the ratio): {'; '.join(noisy)}.")
    return "\n\n".join(parts)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytorch-crf")
    except PackageNotFoundError:  # pragma: no cover
        return getattr(torchcrf, "__version__", "?")
