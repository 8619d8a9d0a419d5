"""Bayesian networks on CPU: mldl's batched exact inference and MLE fitting against pgmpy.

Networks: alarm, win95pts, hepar2 and andes from the bnlearn repository, as bundled in
pgmpy's wheel. pgmpy loads them with ``pgmpy.utils.get_example_model``; mldl reads the same
gzip files (``files("pgmpy") / "utils/example_models/NAME.bif.gz"``) with its own BIF reader.

Posterior marginals. Evidence rows are sampled from the network (seeded): a joint sample,
of which 20% of the nodes, chosen at random per row, are kept as observed. mldl computes
every variable's posterior for the whole batch in one call
(``BayesianNetwork.posterior_marginals``, a (B, n) LongTensor with -1 for unobserved).
pgmpy computes, row by row, one ``VariableElimination.query([v], evidence,
elimination_order="greedy")`` per unobserved variable v. That is the fastest correct way
to get every marginal from pgmpy: ``query(all unobserved, joint=False)`` builds the *joint*
table over all of them first and marginalises it afterwards (``ExactInference.py``: the
greedy path contracts onto every query variable; the classic path multiplies all remaining
factors), which has ~10^13 entries for alarm's first row and far more on the others. pgmpy's
``elimination_order="MinFill"`` path is 2-3x slower and not used: it can also return wrong
posteriors (a set of (factor, origin) pairs collapses two equal reduced factors, e.g. the
identical CPTs of HREKG and HRSAT on alarm reduced on HR; it depends on string hashing, so
on the process). ``BeliefPropagation`` is left out: ``calibrate()`` alone took ~60 s on
alarm on this machine (3.9-287 s in pgmpy's own asv runs) and ran out of memory on win95pts.

Agreement: before timing, every pgmpy marginal of the rows that are timed is compared with
mldl's from the batched call, state by state, matched by state *name*; the largest
absolute difference must be at most 1e-8. The two readers differ slightly: mldl
renormalises BIF rows that sum to 1 only up to rounding, pgmpy keeps them as written (up to
5e-8 apart on hepar2), so with the CPTs as read the posteriors differ by up to ~2e-8. The
check therefore gives pgmpy's model mldl's CPT values (``use_mldl_cpts``), so that both
compute the same distribution (the other way round would not do: with rows that do not sum
to 1, pgmpy's pruning of barren nodes changes the distribution); the difference with the
CPTs as read is reported too. pgmpy is timed on that model (the values do not change its
work).

Time: pgmpy's cost is linear in the number of rows and hundreds of times mldl's, so it
runs on a subset of the batch: ``chunk`` rows per call, ``ROUNDS`` chunks timed, each a
different set of rows, so every one of the ``ROUNDS * chunk`` checked rows is timed exactly
once (two more chunks warm up). mldl is timed on the whole batch, with torch's default
threads and with 1 thread, interleaved with pgmpy in one fresh process per network.

MLE: alarm's CPTs fitted to 100,000 samples drawn from it, mldl ``BayesianNetwork.fit``
(a (B, n) LongTensor of state indices) against pgmpy ``MaximumLikelihoodEstimator``
(a pandas DataFrame of state names, every variable's states passed as ``state_names``,
``get_parameters(n_jobs=1)``); the CPTs are checked equal within 1e-12 first.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import as_file, files

import numpy as np
import pandas as pd
import pgmpy
import torch
from torch import Tensor

from mldl.pgm.bayesnet import BayesianNetwork

from ._harness import Timings, peak_memory, table, time_in_fresh_process

SEED = 0
OBSERVED = 0.2  # fraction of the nodes observed in each evidence row
TOLERANCE = 1e-8  # the largest |mldl - pgmpy| allowed for a posterior probability
ROUNDS = 5
MLE_SAMPLES, MLE_SEED, MLE_TOLERANCE = 100_000, 1, 1e-12


@dataclass(frozen=True)
class Net:
    rows: int  # evidence rows in mldl's batch
    chunk: int  # rows per timed pgmpy call; ROUNDS * chunk rows are checked and timed
    target: float | None = None  # the speed-up (pgmpy ÷ mldl per row) asked for


NETWORKS = {
    "alarm": Net(rows=1000, chunk=10, target=100),
    "win95pts": Net(rows=200, chunk=4),
    "hepar2": Net(rows=200, chunk=4),
    "andes": Net(rows=100, chunk=1, target=50),
}

ONE_THREAD = "mldl, 1 thread"

# --------------------------------------------------------------------------- networks


def mldl_network(name: str) -> BayesianNetwork:
    """The network read by mldl from the gzip file bundled with pgmpy."""
    with as_file(files("pgmpy") / f"utils/example_models/{name}.bif.gz") as path:
        return BayesianNetwork.read_bif(path)


def pgmpy_network(name: str):
    """The same network as pgmpy loads it (its deprecation warning silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.utils import get_example_model

        return get_example_model(name)


def evidence_rows(bn: BayesianNetwork, rows: int, seed: int = SEED) -> Tensor:
    """(rows, n) evidence: a joint sample per row with all but a random 20% of its nodes
    set to -1 (unobserved). Sampled from the network, so no row has probability 0."""
    gen = torch.Generator().manual_seed(seed)
    x = bn.sample(rows, generator=gen)
    n = len(bn.variables)
    observed = torch.rand(rows, n, generator=gen).argsort(1)[:, : round(OBSERVED * n)]
    out = torch.full_like(x, -1)
    out.scatter_(1, observed, x.gather(1, observed))
    return out


def pgmpy_queries(bn: BayesianNetwork, rows: Tensor) -> list[tuple[dict[str, str], list[str]]]:
    """Per row, pgmpy's evidence ``{variable: state name}`` and its unobserved variables."""
    out = []
    for row in rows.tolist():
        evidence = {v: bn.states[v][s] for v, s in zip(bn.variables, row, strict=True) if s >= 0}
        out.append((evidence, [v for v in bn.variables if v not in evidence]))
    return out


def pgmpy_marginals(ve, evidence: dict[str, str], unobserved: list[str]) -> dict:
    """Every unobserved variable's posterior from pgmpy: one greedy VE query each."""
    return {
        v: ve.query([v], evidence=evidence, elimination_order="greedy", show_progress=False)
        for v in unobserved
    }


def _variable_elimination(pg):
    with warnings.catch_warnings():  # pgmpy's imports warn of its own deprecations
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.inference import VariableElimination

    return VariableElimination(pg)


# ------------------------------------------------------------------ agreement checks


def max_difference(bn: BayesianNetwork, mldl_post: dict[str, Tensor], row: int, pg_post) -> float:
    """The largest |mldl - pgmpy| over the states of every variable pgmpy returned for
    ``row``, states matched by name."""
    worst = 0.0
    for v, factor in pg_post.items():
        names = factor.state_names[v]
        ours = mldl_post[v][row, [bn.states[v].index(s) for s in names]].numpy()
        worst = max(worst, float(np.abs(ours - factor.values).max()))
    return worst


def check_inference(name: str) -> dict[str, float]:
    """mldl's batched posteriors against pgmpy's on the rows that will be timed, both on
    mldl's CPTs; raise if any probability differs by more than :data:`TOLERANCE`. Also: the
    same difference with each library's CPTs as its reader gives them, how far those CPTs
    differ, mldl's plan time and the size of pgmpy's would-be joint."""
    spec = NETWORKS[name]
    bn, pg = mldl_network(name), pgmpy_network(name)
    start = time.perf_counter()
    bn.plan()
    plan_s = time.perf_counter() - start
    rows = evidence_rows(bn, spec.rows)
    post = bn.posterior_marginals(rows)
    checked = ROUNDS * spec.chunk
    queries = pgmpy_queries(bn, rows[:checked])
    cpt = max(_cpt_difference(bn.cpts[v], pg.get_cpds(v), bn) for v in bn.variables)
    as_read = _largest_difference(name, bn, post, _variable_elimination(pg), queries) if cpt else 0
    use_mldl_cpts(pg, bn)
    same = _largest_difference(name, bn, post, _variable_elimination(pg), queries)
    if not same <= TOLERANCE:
        raise AssertionError(
            f"bayesnet {name}: mldl and pgmpy posteriors differ by {same:.3g} > {TOLERANCE}"
        )
    cards = torch.tensor([len(bn.states[v]) for v in bn.variables], dtype=torch.float64)
    joint = float(cards.log10()[rows[0] < 0].sum())
    return {
        "diff": same,
        "as_read": as_read,
        "checked": checked,
        "cpt": cpt,
        "plan_s": plan_s,
        "joint": joint,
    }


def _largest_difference(name: str, bn: BayesianNetwork, post, ve, queries) -> float:
    worst = 0.0
    for r, (evidence, unobserved) in enumerate(queries):
        pg_post = pgmpy_marginals(ve, evidence, unobserved)
        if sorted(pg_post) != sorted(unobserved):
            raise AssertionError(f"bayesnet {name}: pgmpy answered for other variables")
        worst = max(worst, max_difference(bn, post, r, pg_post))
    return worst


def _aligned(ours: Tensor, cpd, bn: BayesianNetwork) -> np.ndarray:
    """mldl's CPT of ``cpd.variable`` laid out as pgmpy's TabularCPD ``cpd`` holds it:
    axes (variable, *evidence) in pgmpy's order, states in pgmpy's order (by name)."""
    v = cpd.variable
    axes = [*bn.parents[v], v]
    for j, u in enumerate(axes):
        ours = ours.index_select(
            j, torch.tensor([bn.states[u].index(s) for s in cpd.state_names[u]])
        )
    return ours.permute([axes.index(u) for u in cpd.variables]).numpy()


def _cpt_difference(ours: Tensor, cpd, bn: BayesianNetwork) -> float:
    """max |mldl CPT - pgmpy TabularCPD| for one variable, matched by name."""
    return float(np.abs(_aligned(ours, cpd, bn) - cpd.values).max())


def use_mldl_cpts(pg, bn: BayesianNetwork) -> None:
    """Give pgmpy's model mldl's CPT values (rows renormalised where the file's sum to 1
    only up to rounding), so that both compute posteriors of the same distribution."""
    for v in bn.variables:
        cpd = pg.get_cpds(v)
        cpd.values = _aligned(bn.cpts[v], cpd, bn).copy()
    pg.check_model()


# ------------------------------------------------------------------------------ cases


def _threads(n: int) -> Callable[[], None]:
    return lambda: torch.set_num_threads(n)


def inference_cases(name: str) -> dict[str, object]:
    """mldl on the whole batch (default threads, and 1 thread), and pgmpy on the next
    chunk of the checked rows each call: the factory for the fresh timing process."""
    spec = NETWORKS[name]
    threads = torch.get_num_threads()
    bn, pg = mldl_network(name), pgmpy_network(name)
    use_mldl_cpts(pg, bn)  # as checked; the values do not change pgmpy's work
    rows = evidence_rows(bn, spec.rows)
    bn.plan()  # built once per network and cached: not part of a call
    queries = pgmpy_queries(bn, rows[: ROUNDS * spec.chunk])
    ve = _variable_elimination(pg)
    turn = {"next": 0, "rows": queries[:0]}

    def next_chunk() -> None:  # runs before each pgmpy call, outside the time
        torch.set_num_threads(threads)
        k = turn["next"] % ROUNDS
        turn["rows"] = queries[k * spec.chunk : (k + 1) * spec.chunk]
        turn["next"] += 1

    def mldl_call() -> object:
        return bn.posterior_marginals(rows)

    def pgmpy_call() -> object:
        return [pgmpy_marginals(ve, e, u) for e, u in turn["rows"]]

    cases: dict[str, object] = {"mldl": (_threads(threads), mldl_call)}
    if threads > 1:
        cases[ONE_THREAD] = (_threads(1), mldl_call)
    cases["pgmpy"] = (next_chunk, pgmpy_call)
    return cases


def mldl_batch(name: str) -> Callable[[], object]:
    """mldl's batched call, for :func:`peak_memory`."""
    bn = mldl_network(name)
    rows = evidence_rows(bn, NETWORKS[name].rows)
    bn.plan()
    return lambda: bn.posterior_marginals(rows)


def pgmpy_row(name: str) -> Callable[[], object]:
    """pgmpy's marginals for one evidence row (the first), for :func:`peak_memory`."""
    bn = mldl_network(name)
    ((evidence, unobserved),) = pgmpy_queries(bn, evidence_rows(bn, NETWORKS[name].rows)[:1])
    pg = pgmpy_network(name)
    use_mldl_cpts(pg, bn)
    ve = _variable_elimination(pg)
    return lambda: pgmpy_marginals(ve, evidence, unobserved)


# --------------------------------------------------------------------------- fitting


def fit_inputs() -> tuple[BayesianNetwork, object, Tensor, pd.DataFrame]:
    """alarm for both libraries, and MLE_SAMPLES samples from it as mldl's (B, n) tensor of
    state indices and as pgmpy's DataFrame of state names."""
    bn, pg = mldl_network("alarm"), pgmpy_network("alarm")
    data = bn.sample(MLE_SAMPLES, generator=torch.Generator().manual_seed(MLE_SEED))
    frame = pd.DataFrame(
        {
            v: np.array(bn.states[v], dtype=object)[data[:, i].numpy()]
            for i, v in enumerate(bn.variables)
        }
    )
    return bn, pg, data, frame


def _pgmpy_fit(pg, frame: pd.DataFrame, states: dict[str, list[str]]) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.estimators import MaximumLikelihoodEstimator

        return MaximumLikelihoodEstimator(pg, frame, state_names=states).get_parameters(n_jobs=1)


def fit_cases() -> dict[str, object]:
    """MLE of alarm's CPTs by mldl (default threads, 1 thread) and pgmpy."""
    threads = torch.get_num_threads()
    bn, pg, data, frame = fit_inputs()
    target = BayesianNetwork(bn.states, bn.parents, bn.cpts, name="alarm")

    def mldl_call() -> object:
        return target.fit(data)

    def pgmpy_call() -> object:
        return _pgmpy_fit(pg, frame, bn.states)

    cases: dict[str, object] = {"mldl": (_threads(threads), mldl_call)}
    if threads > 1:
        cases[ONE_THREAD] = (_threads(1), mldl_call)
    cases["pgmpy"] = (_threads(threads), pgmpy_call)
    return cases


def fit_case(which: str) -> object:
    """One fitting case, for :func:`peak_memory`."""
    return fit_cases()[which]


def check_fit() -> dict[str, float]:
    """mldl's fitted CPTs against pgmpy's; raise if they differ by more than
    MLE_TOLERANCE. Also the number of parent configurations never seen (both libraries
    give those the uniform distribution)."""
    bn, pg, data, frame = fit_inputs()
    fitted = BayesianNetwork(bn.states, bn.parents, bn.cpts).fit(data)
    cpds = _pgmpy_fit(pg, frame, bn.states)
    if sorted(c.variable for c in cpds) != sorted(bn.variables):
        raise AssertionError("bayesnet fit: pgmpy fitted other variables")
    worst = max(_cpt_difference(fitted.cpts[c.variable], c, bn) for c in cpds)
    if not worst <= MLE_TOLERANCE:
        raise AssertionError(f"bayesnet fit: CPTs differ by {worst:.3g} > {MLE_TOLERANCE}")
    counts = fitted.counts(data)
    unseen = sum(int((counts[v].sum(-1) == 0).sum()) for v in bn.variables)
    return {"diff": worst, "unseen": unseen}


# -------------------------------------------------------------------------------- run


def _ms(seconds: list[float], per: int) -> str:
    """Median (IQR) of ``seconds`` per call, in ms per one of ``per`` rows."""
    ms = [1e3 * s / per for s in seconds]
    q1, med, q3 = statistics.quantiles(ms, n=4)
    return f"{_num(med)} ({_num(q1)}–{_num(q3)})"


def _num(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:,.0f}"


def _speedup(t: Timings, mldl: str, spec: Net) -> tuple[float, float, float]:
    """pgmpy's mean time per row over every timed row ÷ mldl's median time per row; and
    the lowest and highest of the per-round ratios."""
    mldl_row = [s / spec.rows for s in t.seconds[mldl]]
    pgmpy_row = [s / spec.chunk for s in t.seconds["pgmpy"]]
    ratios = [p / m for p, m in zip(pgmpy_row, mldl_row, strict=True)]
    return statistics.mean(pgmpy_row) / statistics.median(mldl_row), min(ratios), max(ratios)


def _log(message: str) -> None:
    print(f"  bayesnet: {message}", file=sys.stderr, flush=True)


NOTES = """\
## Bayesian networks (`benchmarks/bayesnet.py`)

Every posterior marginal for a batch of evidence rows, on CPU, float64: mldl
`BayesianNetwork.posterior_marginals` (one call for the whole batch) against pgmpy
{pgmpy} `VariableElimination` (row by row, one `query([v], evidence,
elimination_order="greedy")` per unobserved variable v). Networks from the bnlearn
repository as bundled in pgmpy's wheel; mldl reads the same `.bif.gz` files. Evidence rows:
joint samples from the network (seed {seed}) with a random {pct:.0%} of the nodes kept
observed per row, so no row is impossible.

Why one query per variable: `query(all unobserved, joint=False)` builds the joint table
over all of them and marginalises it afterwards (the last column of the agreement table:
its size for row 0), which does not fit in memory. pgmpy's `elimination_order="MinFill"`
path is slower and is not used: it can return wrong posteriors (two equal reduced
factors with the same origin collapse in a set; on alarm, P(ERRCAUTER=TRUE | HR, HREKG,
HRSAT all HIGH) came out 1.13e-3 instead of 1.16e-5, depending on the process' string
hashing). `BeliefPropagation` is left out: `calibrate()` alone took ~60 s on alarm on this
machine (pgmpy's own asv: 3.9–287 s) and ran out of memory on win95pts.

Agreement, checked before timing: on every row that pgmpy is timed on, every pgmpy marginal
against mldl's from the batched call, states matched by name: the largest absolute
difference must be ≤ {tol:g}, pgmpy's model holding mldl's CPT values. The two readers
differ slightly: mldl renormalises BIF rows that sum to 1 only up to rounding, pgmpy keeps
them as written (largest CPT difference in the table); the posteriors with each library's
CPTs as read are in the table too. (Giving mldl pgmpy's values instead would not compare
like with like: with rows that do not sum to 1, pgmpy's pruning of barren nodes changes the
distribution.)

Time: one fresh process per network (heap as `STEADY_HEAP` in `_harness.py`), {rounds}
rounds of interleaved calls after a warm-up. mldl runs the whole batch each call, with
torch's default threads ({threads}) and with 1 thread; its number is the median (IQR)
time per row. pgmpy's cost is linear in the rows (one independent elimination per row and
variable) and far higher, so it runs on a subset of the same batch: each call takes the
next `chunk` rows of the checked ones; the {rounds} timed calls cover each of those rows
exactly once (two more calls warm up). pgmpy's ms per row: median (IQR) over the rounds'
chunks; its time for the batch: the mean over all timed rows × batch rows. Speed-up: that
mean ÷ mldl's median per row (in brackets: the lowest and highest per-round ratio). mldl's
contraction plan (the elimination order and junction tree, {plan}) is built once per
network, cached, and not timed. Extra peak: what a fresh process's resident memory grows by
during one call (median of three, after a warm-up call), mldl for the whole batch, pgmpy for
one row (its loop over rows keeps nothing but the results)."""

FIT_NOTES = """\
MLE: alarm's CPTs from {n:,} samples drawn from it (seed {seed}). mldl `fit(data)` takes a
(B, n) LongTensor of state indices; pgmpy `MaximumLikelihoodEstimator(model, frame,
state_names=...).get_parameters(n_jobs=1)` a pandas DataFrame of state names (each library's
own input, built outside the time; pgmpy's newer `DiscreteMLE` runs the same per-node
counting). Checked first: the CPTs agree within {tol:g} (largest difference {diff:.1g};
{unseen} parent configurations unseen, which both make uniform). {rounds} rounds,
interleaved, in a fresh process; median (IQR)."""


def run() -> str:
    threads = torch.get_num_threads()
    load_before = os.getloadavg()[0]
    speed_rows, check_rows, verdicts, plan_times = [], [], [], []
    for name, spec in NETWORKS.items():
        start = time.perf_counter()
        check = check_inference(name)
        _log(
            f"{name}: {check['checked']} rows checked, largest difference {check['diff']:.2g} "
            f"({time.perf_counter() - start:.0f} s so far)"
        )
        t = time_in_fresh_process(
            __name__,
            "inference_cases",
            name,
            anchor="mldl",
            rounds=ROUNDS,
            warmup=0.0,
            min_seconds=0.0,
        )
        _log(f"{name}: timed ({time.perf_counter() - start:.0f} s so far)")
        mldl_mib = peak_memory(__name__, "mldl_batch", name) / 2**20
        pgmpy_mib = peak_memory(__name__, "pgmpy_row", name) / 2**20
        _log(f"{name}: memory measured, {time.perf_counter() - start:.0f} s in all")
        bn = mldl_network(name)
        speed, low, high = _speedup(t, "mldl", spec)
        pgmpy_batch = statistics.mean(t.seconds["pgmpy"]) / spec.chunk * spec.rows
        row = [
            f"{name} ({len(bn.variables)} nodes, {round(OBSERVED * len(bn.variables))} observed)",
            spec.rows,
            _ms(t.seconds["mldl"], spec.rows),
        ]
        if ONE_THREAD in t.seconds:
            one, _, _ = _speedup(t, ONE_THREAD, spec)
            row.append(_ms(t.seconds[ONE_THREAD], spec.rows))
        row += [
            f"{_ms(t.seconds['pgmpy'], spec.chunk)}, {ROUNDS * spec.chunk} rows",
            f"{pgmpy_batch:,.1f}",
            f"**{speed:,.0f}×** ({low:,.0f}–{high:,.0f})",
        ]
        if ONE_THREAD in t.seconds:
            row.append(f"{one:,.0f}×")
        speed_rows.append(row)
        if spec.target is not None:
            met = "met" if speed >= spec.target else "**not met**"
            also = ""
            if ONE_THREAD in t.seconds:
                also = f"; mldl with 1 thread: {one:,.0f}×, " + (
                    "met" if one >= spec.target else "not met"
                )
            verdicts.append(
                f"- {name}, {spec.rows} rows: {speed:,.0f}× (target ≥ {spec.target:g}×: "
                f"{met}{also})"
            )
        check_rows.append(
            [
                name,
                f"{check['diff']:.1e}",
                check["checked"],
                f"{check['as_read']:.1e}",
                f"{check['cpt']:.1e}",
                f"{mldl_mib:,.1f} ({1024 * mldl_mib / spec.rows:,.0f} KiB/row)",
                f"{pgmpy_mib:,.1f}",
                f"10^{check['joint']:.0f}",
            ]
        )
        plan_times.append(f"{name} {1e3 * check['plan_s']:.0f} ms")

    start = time.perf_counter()
    fit = check_fit()
    _log(f"fit: checked ({time.perf_counter() - start:.0f} s so far)")
    ft = time_in_fresh_process(__name__, "fit_cases", anchor="mldl", rounds=ROUNDS, warmup=0.0)
    fit_rows = []
    fit_mib = {case: peak_memory(__name__, "fit_case", case) / 2**20 for case in ("mldl", "pgmpy")}
    for case in ft.seconds:
        mib = fit_mib.get(case, fit_mib["mldl"])  # the same call: threads do not change memory
        ratio = (
            "1" if case == "pgmpy" else "{:.2f} ({:.2f}–{:.2f})".format(*ft.ratio("pgmpy", case))
        )
        fit_rows.append([case, _ms(ft.seconds[case], 1), ratio, f"{mib:,.1f}"])
    _log(f"fit: checked, timed and measured in {time.perf_counter() - start:.0f} s")

    header = ["network", "batch rows", f"mldl ms/row, {threads} threads, median (IQR)"]
    if threads > 1:
        header.append("mldl 1 thread ms/row")
    header += ["pgmpy ms/row, median (IQR), rows timed", "pgmpy s for the batch"]
    header.append("speed-up pgmpy ÷ mldl (per-round range)")
    if threads > 1:
        header.append("speed-up, mldl 1 thread")
    check_header = [
        "network",
        "largest mldl − pgmpy difference (same CPTs)",
        "rows checked",
        "the same, CPTs as read",
        "largest CPT difference, as read",
        "mldl extra peak MiB, batch",
        "pgmpy extra peak MiB, one row",
        "pgmpy's joint over the unobserved (row 0), entries",
    ]
    notes = NOTES.format(
        pgmpy=pgmpy.__version__,
        seed=SEED,
        pct=OBSERVED,
        tol=TOLERANCE,
        rounds=ROUNDS,
        threads=threads,
        plan=", ".join(plan_times),
    )
    fit_notes = FIT_NOTES.format(
        n=MLE_SAMPLES, seed=MLE_SEED, tol=MLE_TOLERANCE, rounds=ROUNDS, **fit
    )
    fit_header = ["alarm MLE, 100,000 rows", "ms per fit, median (IQR)"]
    fit_header.append("speed-up pgmpy ÷ case, median (IQR) of the rounds")
    fit_header.append("extra peak MiB")
    targets = "Targets (speed-up with torch's default threads):\n" + "\n".join(verdicts)
    load = (
        f"Load average (1 min) when this section's run started and ended: {load_before:.1f} "
        f"and {os.getloadavg()[0]:.1f}, on {os.cpu_count()} logical cores. Above the core "
        "count, other processes competed for the cores; that hurts the multi-threaded mldl "
        "figures most (every parallel op waits for its slowest thread), so compare them "
        "with the 1-thread column."
    )
    parts = [
        notes,
        table(header, speed_rows),
        targets,
        table(check_header, check_rows),
        fit_notes,
        table(fit_header, fit_rows),
        load,
    ]
    return "\n\n".join(parts)
